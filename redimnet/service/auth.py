"""Who may change the speaker database: one bearer token, and where the service may listen without it.

Read endpoints are open; write endpoints (enrol, delete) need
``Authorization: Bearer <token>``.  The token comes from an environment
variable (:data:`TOKEN_ENV`) or a file, never from the command line (where
other users of the machine could read it in the process list).  Tokens are
compared in constant time.  Without a token the service refuses to listen on
anything but a loopback address.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from pathlib import Path
from typing import Optional

from ..errors import InvalidArgumentError
from .errors import ServiceError

__all__ = ["TOKEN_ENV", "MIN_TOKEN_LENGTH", "load_token", "is_loopback", "check_bearer"]

TOKEN_ENV = "REDIMNET_SERVICE_TOKEN"
"""The environment variable read for the write token when no token file is given."""

MIN_TOKEN_LENGTH = 16
"""Shortest token accepted (characters): a guessable token is no protection."""


def load_token(token_file: Optional[str] = None, env: str = TOKEN_ENV) -> Optional[str]:
    """The write token from ``token_file`` (first line) or from ``$env``; ``None`` when neither is set.

    Raises :class:`redimnet.errors.InvalidArgumentError` for an unreadable or
    empty file and for a token shorter than :data:`MIN_TOKEN_LENGTH` or with
    white space or control characters inside.
    """
    if token_file is not None:
        try:
            text = Path(token_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise InvalidArgumentError(
                f"cannot read the token file {token_file}: {getattr(error, 'strerror', None) or error}"
            ) from None
        token, source = (text.splitlines() or [""])[0].strip(), f"token file {token_file}"
    else:
        token, source = os.environ.get(env, "").strip(), f"${env}"
        if not token:
            return None
    if len(token) < MIN_TOKEN_LENGTH:
        raise InvalidArgumentError(
            f"the token in {source} is {len(token)} characters long; use at least "
            f'{MIN_TOKEN_LENGTH} random characters (e.g. python -c "import secrets; '
            'print(secrets.token_urlsafe(32))")'
        )
    if any(c.isspace() or not c.isprintable() for c in token):
        raise InvalidArgumentError(f"the token in {source} contains white space or control characters")
    return token


def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bearer(header: Optional[str], token: Optional[str]) -> None:
    """Raise a 401/403 :class:`ServiceError` unless ``header`` is ``Bearer <token>`` (constant-time compare)."""
    if token is None:
        raise ServiceError(
            403,
            "writes_disabled",
            "this service was started without a token, so enrolling and deleting are disabled; "
            f"start it with ${TOKEN_ENV} or --token-file",
        )
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise ServiceError(401, "unauthorized", "this endpoint needs the header 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8")):
        raise ServiceError(401, "unauthorized", "wrong token")
