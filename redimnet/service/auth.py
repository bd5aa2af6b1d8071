"""Who may reach and change the service: the allowed ``Host`` names, one bearer token, and where it may listen.

Read endpoints are open; write endpoints (enrol, delete) need
``Authorization: Bearer <token>``.  The token comes from an environment
variable (:data:`TOKEN_ENV`) or a file, never from the command line (where
other users of the machine could read it in the process list).  Tokens are
compared in constant time.  Without a token the service refuses to listen on
anything but a loopback address.

Every request must name an allowed host in its ``Host`` header
(:class:`AllowedHosts`): ``localhost`` and loopback addresses by default, more
with ``serve --allowed-host``.  A web page that points its own domain name at
127.0.0.1 (DNS rebinding) sends that domain as ``Host`` and is refused, so it
cannot read a service on the visitor's machine.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from pathlib import Path
from typing import Iterable, Optional

from ..errors import InvalidArgumentError
from .errors import ServiceError

__all__ = ["TOKEN_ENV", "MIN_TOKEN_LENGTH", "AllowedHosts", "load_token", "is_loopback", "check_bearer"]

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


def host_key(text: str) -> Optional[str]:
    """A ``Host`` header or an allowed-host entry as compared: lower case, port and brackets removed,
    addresses in their canonical form (``[::1]:8000`` -> ``::1``); ``None`` when it is not a host name."""
    value = text.strip().lower()
    if not value.startswith("["):
        try:
            return str(ipaddress.ip_address(value))  # an address without a port (IPv6 unbracketed too)
        except ValueError:
            pass
    else:
        address, bracket, port = value[1:].partition("]")
        if not bracket or (port and not (port.startswith(":") and port[1:].isdigit())):
            return None
        try:
            return str(ipaddress.ip_address(address))
        except ValueError:
            return None
    name, colon, port = value.partition(":")
    if (colon and not port.isdigit()) or not name or any(c.isspace() or c in "/@\\" for c in name):
        return None
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name


class AllowedHosts:
    """The ``Host`` names the service answers: ``localhost`` and loopback addresses, plus ``extra``.

    An entry of ``extra`` is a name or address, with or without a port (ports
    are not compared); ``*`` allows any host (no DNS-rebinding defence: only
    behind a proxy that checks the name itself).  Raises
    :class:`redimnet.errors.InvalidArgumentError` for an entry that is not a host name.
    """

    def __init__(self, extra: Iterable[str] = ()):
        self.any = False
        self.names = {"localhost"}
        for entry in extra:
            if entry.strip() == "*":
                self.any = True
                continue
            key = host_key(entry)
            if key is None:
                raise InvalidArgumentError(f"--allowed-host {entry!r} is not a host name (e.g. speakers.example.org)")
            self.names.add(key)

    def allows(self, header: Optional[str]) -> bool:
        """True when a request with this ``Host`` header (``None``: none sent) may be answered."""
        if self.any:
            return True
        key = host_key(header) if header else None
        if key is None:
            return False
        return key in self.names or is_loopback(key)
