"""Admission: at most a few requests decode and embed at once; the others wait briefly, then get a 503.

Each request that decodes audio holds one of :class:`Admission`'s slots from
the moment its uploads are opened until its embeddings (or its diarization)
are done.  A request that finds every slot taken waits up to
``wait_seconds`` for one; past that it is refused with ``503 busy`` and a
``Retry-After`` header, so that a burst of uploads costs the server a bounded
amount of memory and queued work instead of growing with the number of
clients.  The request bodies themselves are spooled to temporary files
before admission (:mod:`.uploads`), so a slow client never holds a slot.
"""

from __future__ import annotations

import asyncio
import math
import os
from contextlib import asynccontextmanager
from typing import AsyncIterator, Optional

from .errors import ServiceError

__all__ = ["Admission", "default_max_concurrent", "SLOT_MEMORY_BYTES"]

SLOT_MEMORY_BYTES = 64 * 1024 * 1024
"""Memory set aside per admitted request when sizing the default from the memory available: what one
request holds besides the model (an upload's decoding block and window, a diarized recording)."""


def _available_memory() -> Optional[int]:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes (None where there is none)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_max_concurrent(cores: Optional[int] = None, available: Optional[int] = None) -> int:
    """Requests admitted at once by default: one per :data:`SLOT_MEMORY_BYTES` of the memory available, at
    least 1, at most ``max(16, 4 x cores)``.  The network runs one batch at a time whatever this is, and at most
    one window of audio (:meth:`redimnet.embedding.pipeline.EmbeddingPipeline.capped`); the slots let
    concurrent short requests share batches (16 recordings per batch by default) while bounding what waits."""
    cores = _cores() if cores is None else cores
    available = _available_memory() if available is None else available
    most = max(16, 4 * max(1, cores))
    slots = most if available is None else available // SLOT_MEMORY_BYTES
    return int(min(most, max(1, slots)))


class Admission:
    """At most ``slots`` requests at once (``async with admission.slot(): ...``); the others wait up to
    ``wait_seconds``, then :meth:`slot` raises :class:`ServiceError` 503 ``busy`` with ``Retry-After``."""

    def __init__(self, slots: int, wait_seconds: float):
        if int(slots) < 1:
            raise ValueError(f"slots must be at least 1, got {slots}")
        if not wait_seconds >= 0:
            raise ValueError(f"wait_seconds must be 0 or more, got {wait_seconds}")
        self.slots = int(slots)
        self.wait_seconds = float(wait_seconds)
        self.busy = 0
        """Requests holding a slot now."""
        self.refused = 0
        """Requests refused with 503 so far."""
        self._semaphore = asyncio.Semaphore(self.slots)

    @property
    def retry_after(self) -> int:
        """Seconds a refused client is told to wait (``Retry-After``)."""
        return max(1, math.ceil(self.wait_seconds))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the ``async with`` block (waiting up to ``wait_seconds`` for it)."""
        if self._semaphore.locked():
            try:
                await asyncio.wait_for(self._semaphore.acquire(), timeout=self.wait_seconds)
            except asyncio.TimeoutError:
                self.refused += 1
                raise ServiceError(
                    503,
                    "busy",
                    f"the service is busy: {self.slots} request(s) with audio are being processed and this one "
                    f"waited {self.wait_seconds:g} s for its turn; send it again in {self.retry_after} s",
                    headers={"Retry-After": str(self.retry_after)},
                ) from None
        else:
            await self._semaphore.acquire()
        self.busy += 1
        try:
            yield
        finally:
            self.busy -= 1
            self._semaphore.release()
