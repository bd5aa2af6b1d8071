"""Dynamic batching: model calls of concurrent requests run together, off the event loop.

Requests hand checked 16 kHz waveforms, or audio streams whose headers were
checked (:class:`redimnet.audio.AudioStream`: decoded block by block in the
model thread), to :meth:`Batcher.submit`, which returns a
:class:`concurrent.futures.Future` per input.  One thread owns the model: it
takes the first waiting input, keeps collecting for up to ``max_wait`` seconds
or until ``max_batch`` inputs wait, and runs them all through the embedding
pipeline (``run`` of an :class:`redimnet.embedding.embedder.Embedder` or of an
:class:`redimnet.embedding.pipeline.EmbeddingPipeline`).
The pipeline's rules apply unchanged: windows of exactly equal length share a
batch (a recording longer than the embedder's ``max_seconds`` is cut into
windows of that length, so long uploads batch with each other), a too-short
or silent waveform fails alone and the others go on.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import List, Optional, Union

import numpy as np

from ..audio.read import AudioStream
from ..embedding.pipeline import Result

__all__ = ["Batcher", "BatchStats"]


@dataclass
class BatchStats:
    """Counters of what the batcher did (for ``/v1/info`` and the load benchmark)."""

    batches: int = 0
    waveforms: int = 0
    largest: int = 0


class Batcher:
    """Collects waveforms from concurrent requests and embeds them together in one model thread.

    ``embedder``: anything with the pipeline's ``run(inputs)`` (an Embedder, an EmbeddingPipeline)."""

    def __init__(self, embedder, max_batch: int = 16, max_wait: float = 0.005):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if max_wait < 0:
            raise ValueError(f"max_wait must be 0 or more, got {max_wait}")
        self.embedder = embedder
        self.max_batch = int(max_batch)
        self.max_wait = float(max_wait)
        self.stats = BatchStats()
        self._queue: "queue.Queue[Optional[tuple]]" = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="redimnet-model", daemon=True)
        self._thread.start()

    def submit(self, wave: Union[np.ndarray, AudioStream]) -> "Future[Result]":
        """Queue one checked mono float32 16 kHz waveform (or an opened audio stream); the future's result is
        its pipeline :class:`Result`."""
        future: "Future[Result]" = Future()
        self._queue.put((wave, future))
        return future

    @property
    def alive(self) -> bool:
        """True while the model thread runs."""
        return self._thread.is_alive()

    def close(self) -> None:
        """Finish the waveforms already queued, then stop the model thread."""
        self._queue.put(None)
        self._thread.join()

    # --- the model thread ------------------------------------------------------------------------
    def _collect(self, first: tuple) -> tuple:
        jobs = [first]
        deadline = time.monotonic() + self.max_wait
        stop = False
        while len(jobs) < self.max_batch:
            left = deadline - time.monotonic()
            try:
                job = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                stop = True
                break
            jobs.append(job)
        return jobs, stop

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs, stop = self._collect(first)
            self._run([job for job in jobs if job[1].set_running_or_notify_cancel()])
            if stop:
                return

    def _run(self, jobs: List[tuple]) -> None:
        if not jobs:
            return
        self.stats.batches += 1
        self.stats.waveforms += len(jobs)
        self.stats.largest = max(self.stats.largest, len(jobs))
        try:
            for result in self.embedder.run([wave for wave, _ in jobs]):
                jobs[result.index][1].set_result(result)
        except BaseException as error:  # a bug: every waiting request learns of it, the thread goes on
            for _, future in jobs:
                if not future.done():
                    future.set_exception(error)
