"""The service's error: an HTTP status, a short machine-readable code and a message for people."""

from typing import Dict, Optional

from ..errors import RedimnetError

__all__ = ["ServiceError"]


class ServiceError(RedimnetError):
    """A request the service refuses; sent as ``{"error": {"code": ..., "message": ...}}`` with ``status``
    (and ``headers``, e.g. ``Retry-After`` on a 503)."""

    def __init__(self, status: int, code: str, message: str, headers: Optional[Dict[str, str]] = None):
        super().__init__(message)
        self.status, self.code, self.message = int(status), code, message
        self.headers = dict(headers or {})

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}
