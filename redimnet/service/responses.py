"""How the service answers: error responses and what every response carries.

Errors of the package get the HTTP status and code of their category in
:data:`redimnet.errors.CATALOGUE`; the service's own refusals
(:class:`~redimnet.service.errors.ServiceError`) carry theirs.  No message
carries a path of the server's: the database is named by its file name, as
``/v1/info`` does (:func:`private_texts`).  :class:`Guard` is the outer layer
of the application: it refuses a ``Host`` that is not allowed before routing,
puts :data:`SECURITY_HEADERS` on every response (errors included), logs a
client that hangs up as one line and turns anything unexpected into a generic
500 (the traceback goes to the server's log, never to the client).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from .._utils.names import printable
from ..errors import INTERNAL, UNKNOWN_SPEAKER, RedimnetError, category_of
from ..speakers.schema import UnknownSpeakerError
from ..speakers.stores import is_url, store_label
from .auth import AllowedHosts
from .errors import ServiceError

__all__ = ["EXCEPTION_HANDLERS", "Guard", "PAGE_POLICY", "SECURITY_HEADERS", "error_response", "unknown_speaker"]

log = logging.getLogger("redimnet.service")

PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)


def unknown_speaker(name: str) -> ServiceError:
    """The 404 for a speaker that is not enrolled."""
    return ServiceError(
        UNKNOWN_SPEAKER.http_status, UNKNOWN_SPEAKER.code, f"no speaker named '{printable(name)}' is enrolled"
    )


def private_texts(db: Union[Path, str]) -> List[Tuple[str, str]]:
    """How the database's location may appear in a message, and what clients see instead (longest first):
    a file by its name (as ``/v1/info`` shows it), a database server by its kind."""
    if is_url(db):
        return [(store_label(db), "the PostgreSQL database"), (str(db), "the PostgreSQL database")]
    path = Path(db)
    forms = {str(path), str(path.absolute())}
    try:
        forms.add(str(path.resolve()))
    except OSError:
        pass
    return [(form, path.name) for form in sorted(forms - {path.name}, key=len, reverse=True)]


def error_response(
    status: int,
    code: str,
    message: str,
    private: Optional[List[Tuple[str, str]]] = None,
    headers: Optional[Dict[str, str]] = None,
) -> JSONResponse:
    """The error response; each ``(text, shown)`` of ``private`` is replaced in the message."""
    for text, shown in private or ():
        message = message.replace(text, shown)
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _private(request: Request) -> List[Tuple[str, str]]:
    return private_texts(request.app.state.service.settings.db)


async def service_error(request: Request, error: ServiceError) -> Response:
    return error_response(error.status, error.code, error.message, _private(request), error.headers)


async def redimnet_error(request: Request, error: RedimnetError) -> Response:
    """Status and code from the error's category (:data:`redimnet.errors.CATALOGUE`)."""
    category = category_of(error)
    if isinstance(error, UnknownSpeakerError):  # e.g. removed by another client after the request's check
        return error_response(category.http_status, category.code, unknown_speaker(error.name).message)
    return error_response(category.http_status, category.code, str(error), _private(request))


async def http_error(request: Request, error: HTTPException) -> Response:
    codes = {404: "not_found", 405: "method_not_allowed"}
    return error_response(
        error.status_code, codes.get(error.status_code, "http_error"), str(error.detail), _private(request)
    )


SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", PAGE_POLICY.encode()),
]
"""Headers that keep browsers from sniffing, framing or leaking; on every response."""


class Guard:
    """The outer layer of the application (pure ASGI, no buffering).

    Refuses a request whose ``Host`` is not allowed (400 ``bad_host``, before
    routing), adds :data:`SECURITY_HEADERS` to every response, logs a client
    that disconnected before its request was read as one line (info level), and
    answers anything unexpected with a generic 500 (the traceback goes to the
    log once).
    """

    def __init__(self, app, allowed_hosts: AllowedHosts):
        self.app = app
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def send_with_headers(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = dict(message, headers=list(message.get("headers", [])) + SECURITY_HEADERS)
            await send(message)

        host = next((value for name, value in scope.get("headers", ()) if name == b"host"), None)
        if not self.allowed_hosts.allows(host.decode("latin-1") if host is not None else None):
            shown = printable(host.decode("latin-1"))[:100] if host is not None else None
            message = (
                f"this service does not answer for the host '{shown}'; start it with --allowed-host "
                "NAME to add a name it is reached by"
                if shown is not None
                else "the request has no Host header"
            )
            return await error_response(400, "bad_host", message)(scope, receive, send_with_headers)
        try:
            await self.app(scope, receive, send_with_headers)
        except ClientDisconnect:
            log.info("client disconnected before sending its whole request: %s %s", scope["method"], scope["path"])
        except Exception:
            log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            if not started:
                message = "the service failed on this request; the details are in the server's log"
                await error_response(INTERNAL.http_status, INTERNAL.code, message)(scope, receive, send_with_headers)


EXCEPTION_HANDLERS: Dict[Any, Any] = {
    ServiceError: service_error,
    RedimnetError: redimnet_error,
    HTTPException: http_error,
}
"""The application's handlers of the errors a request raises."""
