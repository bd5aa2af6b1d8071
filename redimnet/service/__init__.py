"""The speaker-recognition HTTP service (``redimnet serve``); needs the ``serve`` extra.

* :mod:`.app` -- :func:`create_app`: the versioned JSON endpoints (``/v1/...``), the web page at ``/``
  and the OpenAPI document at ``/openapi.json``;
* :mod:`.batcher` -- :class:`Batcher`: concurrent requests' recordings embedded together, off the event loop;
* :mod:`.uploads` -- forms read within size limits, uploaded files spooled to anonymous temporary files;
* :mod:`.admission` -- :class:`Admission`: at most a few requests with audio at once, the others wait, then 503;
* :mod:`.auth` -- the write token and the loopback rule;
* :mod:`.storage` -- :class:`SpeakerStore`: what the service needs from speaker storage.

See ``docs/service.md``.
"""

from ..speakers.store import SpeakerStore
from .admission import Admission
from .app import Service, ServiceSettings, create_app
from .auth import TOKEN_ENV, load_token
from .batcher import Batcher
from .errors import ServiceError

__all__ = [
    "Admission",
    "Batcher",
    "Service",
    "ServiceError",
    "ServiceSettings",
    "SpeakerStore",
    "TOKEN_ENV",
    "create_app",
    "load_token",
]
