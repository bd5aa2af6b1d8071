"""Serving an application from a thread of the current process (notebooks, tests, screenshots).

:class:`BackgroundServer` runs uvicorn in a daemon thread on ``127.0.0.1``
(a free port unless one is given) and stops it on :meth:`stop` or at the end
of a ``with`` block.  For production use ``redimnet serve``.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Optional

__all__ = ["BackgroundServer"]


class BackgroundServer:
    """``with BackgroundServer(app) as server: ... server.url ...`` -- uvicorn in a thread, loopback only."""

    def __init__(self, app, port: Optional[int] = None, host: str = "127.0.0.1", start_timeout: float = 30.0):
        import uvicorn

        if port is None:
            with socket.socket() as sock:
                sock.bind((host, 0))
                port = sock.getsockname()[1]
        self.url = f"http://{host}:{port}"
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="redimnet-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + start_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start on {self.url}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Ask the server to finish its requests and stop; wait for its thread."""
        self._server.should_exit = True
        self._thread.join(timeout=30)

    def __enter__(self) -> "BackgroundServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
