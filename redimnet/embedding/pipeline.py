"""The one way audio becomes speaker embeddings: read -> resample -> windows -> batches -> model -> pooled embedding.

Every caller -- :class:`redimnet.embedding.embedder.Embedder`, ``redimnet embed``,
``redimnet eval --audio-root``, validation during training -- goes through
:class:`EmbeddingPipeline`, so they all follow the same rules:

* **Reading.**  Files are decoded and resampled to 16 kHz block by block
  (:class:`redimnet.audio.AudioFile`); so are audio streams opened by the
  caller (:class:`redimnet.audio.AudioStream`, e.g. an upload with the
  service's limits); in-memory waveforms are converted by
  :func:`redimnet.audio.prepare_waveform`.
* **Windows.**  An input of up to ``max_samples`` is one window, never padded
  or cropped.  A longer one is cut into windows of ``max_samples`` that
  overlap by at least ``overlap_samples``, spread evenly so that the first
  starts at the beginning and the last ends at the end
  (:meth:`Windowing.starts`); its embedding is the mean of the window
  embeddings.  Windows are cut from the stream as soon as their samples
  have arrived, so memory is bounded by the window length whatever the
  length of the recording.
* **Refusals** (per input, the others go on): shorter than the model
  accepts, no speech signal (:func:`redimnet.audio.check_signal_level`),
  undecodable, non-finite samples or embedding.
* **Batches.**  Padding would change an embedding (the front end normalises
  over time, the pooling sees every frame), so only windows of exactly the
  same length are batched: at most ``batch_size`` of them and at most
  ``batch_samples`` samples per batch (default :data:`BATCH_SAMPLES`;
  :meth:`EmbeddingPipeline.capped`: one window's length, so that the
  network's working memory is that of one window whatever the batch).  Inputs are read in order of
  length (file headers), so equal lengths arrive together.
* **Workers.**  With ``workers > 0``, decoding, resampling and windowing run
  in that many processes (one thread each) while the model runs in the
  calling process.  A worker hands over runs of consecutive short inputs
  together (up to :data:`HANDOVER_SAMPLES` of audio), since each hand-over
  costs the model's process a round trip; long inputs still come window by
  window.

:meth:`EmbeddingPipeline.run` yields one :class:`Result` per input, in the
order the inputs complete (``Result.index`` says which).
"""

from __future__ import annotations

import copy
import math
import os
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union, cast

import numpy as np
import torch

from .._utils import threads
from ..audio.read import TARGET_SAMPLE_RATE, AudioError, AudioFile, AudioStream, SignalLevel, check_signal_level

__all__ = [
    "BATCH_SAMPLES",
    "HANDOVER_SAMPLES",
    "Windowing",
    "Result",
    "EmbeddingPipeline",
    "windows_of",
    "too_short",
    "expected_length",
]

BATCH_SAMPLES = 64 * TARGET_SAMPLE_RATE
"""The most 16 kHz samples run through the model in one batch (64 s of audio; a batch holds at least one window)."""


HANDOVER_SAMPLES = 32 * TARGET_SAMPLE_RATE
"""Audio a decoding worker hands over at once (32 s): short inputs travel together (see ``_WorkerRecords``)."""


@dataclass(frozen=True)
class Windowing:
    """How inputs are cut: windows of ``max_samples`` overlapping by at least ``overlap_samples``."""

    max_samples: int
    overlap_samples: int

    def starts(self, length: int) -> List[int]:
        """Start samples of the windows a ``length``-sample input is cut into (``[0]`` if not cut)."""
        if length <= self.max_samples:
            return [0]
        hop = self.max_samples - self.overlap_samples
        count = math.ceil((length - self.max_samples) / hop) + 1
        return [int(round(s)) for s in np.linspace(0, length - self.max_samples, count)]


class _LengthChanged(Exception):
    """The stream held a different number of samples than its header said."""

    def __init__(self, actual: int):
        super().__init__(actual)
        self.actual = actual


def windows_of(
    blocks: Iterable[np.ndarray], length: int, windowing: Windowing, level: Optional[SignalLevel] = None
) -> Iterator[np.ndarray]:
    """The windows of a signal of ``length`` samples given as consecutive ``blocks``, as they complete.

    Holds at most one window plus one block, in one buffer reused from block
    to block.  ``level`` (if given) is fed every sample once.  Raises
    ``_LengthChanged`` when the blocks do not hold ``length`` samples.
    """
    blocks = iter(blocks)
    starts = windowing.starts(length)
    size = min(length, windowing.max_samples)
    buffer = np.empty(0, dtype=np.float32)
    filled = 0  # buffer[:filled] holds the stream from position offset on
    offset = 0
    received = 0
    next_window = 0
    for block in blocks:
        if level is not None:
            level.add(block)
        received += block.size
        if received > length:
            for rest in blocks:  # count what the source really holds
                received += rest.size
            raise _LengthChanged(received)
        if filled + block.size > buffer.size:
            grown = np.empty(max(filled + block.size, size + block.size), dtype=np.float32)
            grown[:filled] = buffer[:filled]
            buffer = grown
        buffer[filled : filled + block.size] = block
        filled += block.size
        while next_window < len(starts) and starts[next_window] + size <= received:
            begin = starts[next_window] - offset
            yield buffer[begin : begin + size].copy()
            next_window += 1
            keep_from = starts[next_window] if next_window < len(starts) else received
            drop = keep_from - offset
            buffer[: filled - drop] = buffer[drop:filled]  # numpy copies overlapping ranges correctly
            filled -= drop
            offset = keep_from
    if received != length or next_window != len(starts):
        raise _LengthChanged(received)


# --- inputs ----------------------------------------------------------------------------------------
@dataclass
class _Settings:
    """What the producer side (possibly in a worker process) needs."""

    windowing: Windowing
    min_samples: int
    channel: Optional[int]
    trim: bool
    target_rate: int = TARGET_SAMPLE_RATE


def too_short(length: int, min_samples: int, trim: bool, where: str) -> AudioError:
    """The error for an input of ``length`` 16 kHz samples when the model needs ``min_samples``."""
    return AudioError(
        f"{where}: too short: {length} samples at 16 kHz ({length / TARGET_SAMPLE_RATE * 1000:.1f} ms)"
        f"{' after silence trimming' if trim else ''}; the model needs at least "
        f"{min_samples} samples ({min_samples / TARGET_SAMPLE_RATE * 1000:.1f} ms)"
    )


def _windows(source, settings: _Settings, where: str) -> Iterator[Tuple[str, object]]:
    """``("window", array)`` records, then ``("end", (windows, samples))``; ``("reset", None)`` restarts.

    An input of one window is one record, ``("whole", (array, samples))``: half the
    records (each a round trip from a worker process) for the common short input.
    """
    if isinstance(source, np.ndarray):
        length, blocks = len(source), (lambda: iter([source]))
    elif isinstance(source, AudioStream):  # opened (and its header checked) by the caller
        length, blocks = source.length, source.blocks
    else:
        audio = AudioFile(source, channel=settings.channel, trim=settings.trim, target_rate=settings.target_rate)
        length, blocks = audio.length, audio.blocks
    for _attempt in range(2):
        if length < settings.min_samples:
            raise too_short(length, settings.min_samples, settings.trim, where)
        level = SignalLevel()
        count = 0
        try:
            if length <= settings.windowing.max_samples:  # one window: check it before the model sees it
                (window,) = windows_of(blocks(), length, settings.windowing, level)
                check_signal_level(level, where)
                yield "whole", (window, length)
                return
            else:
                for window in windows_of(blocks(), length, settings.windowing, level):
                    yield "window", window
                    count += 1
                check_signal_level(level, where)
        except _LengthChanged as changed:
            actual = changed.actual
            if _attempt or actual == length:
                raise AudioError(f"{where}: the decoded length changes from one reading to the next") from None
            length = actual  # the header was wrong: read again with the true length
            if count:
                yield "reset", None
            continue
        yield "end", (count, length)
        return


def _records(inputs: Sequence, indices: Iterable[int], settings: _Settings) -> Iterator[tuple]:
    """``(index, kind, payload)`` for every input in ``indices``; a failure is ``(index, "error", reason)``."""
    for index in indices:
        source = inputs[index]
        where = _where(source)
        try:
            for kind, payload in _windows(source, settings, where):
                yield index, kind, payload
        except AudioError as error:
            yield index, "error", _reason(error, where)
        except Exception as error:  # anything else is still one input's problem
            yield index, "error", f"unexpected {type(error).__name__}: {error}"


def _where(source) -> str:
    """How messages name an input."""
    if isinstance(source, np.ndarray):
        return "waveform"
    return source.where if isinstance(source, AudioStream) else str(source)


def _reason(error: Exception, where: str) -> str:
    text, prefix = str(error), f"{where}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def _chunks(order: Sequence[int], lengths: Sequence[int], limit: int) -> List[List[int]]:
    """``order`` cut into runs of consecutive inputs whose ``lengths`` (16 kHz samples, from the headers)
    add up to at most ``limit``: what a decoding worker hands over at once.

    The first run is one input and the runs after it may hold twice as much audio each time, so that
    the model starts as soon as possible; an input longer than ``limit`` is a run of its own.
    """
    chunks: List[List[int]] = []
    current: List[int] = []
    samples = target = 0
    for index in order:
        length = max(int(lengths[index]), 1)  # unreadable headers (-1) count as tiny
        if current and samples + length > target:
            chunks.append(current)
            target = min(limit, 2 * max(samples, target))
            current, samples = [], 0
        current.append(index)
        samples += length
    if current:
        chunks.append(current)
    return chunks


def _lists(records: Iterable[tuple], limit: int) -> Iterator[List[tuple]]:
    """Consecutive ``records`` in lists holding windows of at most about ``limit`` samples: one list for a
    run planned by :func:`_chunks`, more when the files hold more than their headers said (at least one
    record per list, so a window longer than ``limit`` travels alone)."""
    bundle: List[tuple] = []
    samples = 0
    for record in records:
        bundle.append(record)
        kind, payload = record[1], record[2]
        if kind == "window":
            samples += len(payload)
        elif kind == "whole":
            samples += len(payload[0])
        if samples >= limit:
            yield bundle
            bundle, samples = [], 0
    if bundle:
        yield bundle


class _WorkerRecords(torch.utils.data.IterableDataset):
    """The records of every ``workers``-th run of inputs (:func:`_chunks`), in a DataLoader worker process.

    Each hand-over from a worker costs the calling process a round trip through the DataLoader's
    queues (about 2 ms of wall time on a busy 2-core machine, however small the record), so the
    records of a run of short inputs travel together, as one list.  Runs are dealt to the workers in
    turn, as the DataLoader collects their lists, so inputs still arrive in order of length.  Memory
    stays bounded: a list holds at most :data:`HANDOVER_SAMPLES` of audio plus one window.
    """

    def __init__(self, inputs: Sequence, chunks: Sequence[Sequence[int]], settings: _Settings):
        super().__init__()
        self.inputs, self.chunks, self.settings = list(inputs), [list(c) for c in chunks], settings

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        mine = self.chunks if info is None else self.chunks[info.id :: info.num_workers]
        for chunk in mine:
            yield from _lists(_records(self.inputs, chunk, self.settings), HANDOVER_SAMPLES)


def expected_length(
    source: Union[str, os.PathLike, np.ndarray, AudioStream], target_rate: int = TARGET_SAMPLE_RATE
) -> int:
    """Samples at ``target_rate`` an input will have, from a file's header (-1 when it cannot be read)."""
    if isinstance(source, np.ndarray):
        return len(source)
    if isinstance(source, AudioStream):
        return source.length
    try:
        import soundfile

        info = soundfile.info(str(source))
        return int(np.floor(info.frames * target_rate / info.samplerate + 0.5))
    except Exception:  # reported when the file is read
        return -1


def _unchanged(record):
    return record


# --- results ---------------------------------------------------------------------------------------
@dataclass
class Result:
    """The outcome for input ``index``: its ``embedding`` ``[D]`` (float32), or ``error`` (the reason)."""

    index: int
    embedding: Optional[np.ndarray] = None
    error: Optional[str] = None
    samples: int = 0
    """16 kHz samples embedded (0 on error)."""


class _Item:
    __slots__ = ("total", "done", "sum", "samples", "generation", "error")

    def __init__(self):
        self.total: Optional[int] = None
        self.done = 0
        self.sum: Optional[np.ndarray] = None
        self.samples = 0
        self.generation = 0
        self.error: Optional[str] = None


class EmbeddingPipeline:
    """Turns audio files and waveforms into embeddings with ``network`` (see the module documentation).

    ``network``: a model mapping ``[N, T]`` 16 kHz waveforms to ``[N, D]``
    embeddings (plain or optimised), already on ``device`` and in eval mode.
    ``min_samples``: the shortest input it accepts.  ``autocast_dtype``:
    ``None`` or a torch dtype for autocast.  ``target_rate``: the rate
    files are resampled to (16 kHz for every ReDimNet model).  ``tuner``: a
    :class:`redimnet._utils.threads.ThreadTuner` that picks the model's CPU thread count
    pass by pass (None: the count stays as it is).  ``batch_samples``: the most
    samples in one batch (default :data:`BATCH_SAMPLES`; see :meth:`capped`).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        device: Union[str, torch.device],
        windowing: Windowing,
        min_samples: int,
        batch_size: int = 16,
        channel: Optional[int] = None,
        trim: bool = False,
        autocast_dtype: Optional[torch.dtype] = None,
        target_rate: int = TARGET_SAMPLE_RATE,
        tuner: Optional[threads.ThreadTuner] = None,
        batch_samples: Optional[int] = None,
    ):
        self.network = network
        self.tuner = tuner
        self.device = torch.device(device)
        self.windowing = windowing
        self.settings = _Settings(windowing, int(min_samples), channel, bool(trim), int(target_rate))
        self.batch_size = int(batch_size)
        self.batch_samples = int(BATCH_SAMPLES if batch_samples is None else batch_samples)
        self.autocast_dtype = autocast_dtype

    def capped(self) -> "EmbeddingPipeline":
        """This pipeline with at most one window's length of audio (``windowing.max_samples``) in a batch.

        The network's working memory grows with the audio it sees at once; capped, it is that of one
        window, however many inputs wait and however long they are.  Embeddings are those of the
        uncapped pipeline (only the grouping into batches changes).
        """
        capped = copy.copy(self)
        capped.batch_samples = self.windowing.max_samples
        return capped

    # --- the model -------------------------------------------------------------------------------
    def _autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """Embed ``[N, T]`` equal-length 16 kHz waveforms (no windowing) -> ``[N, D]`` float32."""
        if self.tuner is not None:
            self.tuner.start()
        try:
            with torch.inference_mode(), self._autocast():
                output = self.network(torch.from_numpy(np.ascontiguousarray(batch)).to(self.device))
        finally:
            if self.tuner is not None:
                self.tuner.stop(batch.size)
        if isinstance(output, tuple):  # return_all_outputs: (embedding, 1D maps)
            output = output[0]
        return output.float().cpu().numpy()

    def batch_limit(self, length: int) -> int:
        """How many windows of ``length`` samples run together."""
        return max(1, min(self.batch_size, self.batch_samples // max(1, length)))

    # --- the loop --------------------------------------------------------------------------------
    def run(
        self, inputs: Sequence[Union[str, os.PathLike, np.ndarray, AudioStream]], workers: int = 0
    ) -> Iterator[Result]:
        """One :class:`Result` per input, as inputs complete.

        ``inputs``: audio file paths, opened audio streams (:class:`redimnet.audio.AudioStream`,
        with ``workers=0``), or checked mono 16 kHz float32 waveforms
        (see :func:`redimnet.audio.prepare_waveform`).  ``workers``: processes
        decoding the files (0: in this process).  Inputs are read in order of
        length (from the file headers), so that windows of equal length
        arrive together and share a batch; a batch runs as soon as a window
        of another length arrives or it is full, while the workers decode
        what comes next.
        """
        inputs = list(inputs)
        lengths = [expected_length(source, self.settings.target_rate) for source in inputs]
        order = sorted(range(len(inputs)), key=lengths.__getitem__)
        if workers > 0 and inputs:
            chunks = _chunks(order, lengths, HANDOVER_SAMPLES)
            loader = torch.utils.data.DataLoader(
                _WorkerRecords(inputs, chunks, self.settings),
                batch_size=None,
                num_workers=min(workers, len(chunks)),
                collate_fn=_unchanged,
                worker_init_fn=threads.init_worker,
            )
            records: Iterable[tuple] = (record for bundle in loader for record in bundle)
        else:
            records = _records(inputs, order, self.settings)
        items: Dict[int, _Item] = {}
        closed = set()  # inputs already reported (a failed one may still be streaming)
        buckets: Dict[int, List[Tuple[int, int, np.ndarray]]] = {}  # window length -> waiting windows

        def finished(index: int) -> Optional[Result]:
            item = items[index]
            if item.error is not None:
                del items[index]
                closed.add(index)
                return Result(index, error=item.error)
            total = item.total
            if total is None or item.done < total:
                return None
            del items[index]
            closed.add(index)
            summed = cast(np.ndarray, item.sum)  # every window of the input has been added to it
            embedding = (summed / total).astype(np.float32)
            if not np.all(np.isfinite(embedding)):
                return Result(
                    index,
                    error="the model produced a non-finite embedding (sample values far "
                    "outside [-1, 1]?); check the audio's level",
                )
            return Result(index, embedding=embedding, samples=item.samples)

        def run_bucket(length: int) -> List[Result]:
            entries = buckets.pop(length)
            for index, generation, vector in self._forward_entries(entries):
                item = items.get(index)
                if item is None or item.generation != generation or item.error is not None:
                    continue
                if isinstance(vector, str):
                    item.error = vector
                else:
                    item.sum = vector.astype(np.float64) if item.sum is None else item.sum + vector
                    item.done += 1
            done = []
            for index in {entry[0] for entry in entries}:
                if index in items:
                    result = finished(index)
                    if result is not None:
                        done.append(result)
            return done

        for index, kind, payload in records:
            if index in closed:
                continue
            item = items.setdefault(index, _Item())
            if kind == "window" or kind == "whole":
                window = payload if kind == "window" else payload[0]
                length = len(window)
                for other in [n for n in buckets if n != length]:  # lengths come in order: no more of those
                    yield from run_bucket(other)
                bucket = buckets.setdefault(length, [])
                bucket.append((index, item.generation, window))
                if len(bucket) >= self.batch_limit(length):
                    yield from run_bucket(length)
                if kind == "window" or index in closed:
                    continue
                kind, payload = "end", (1, payload[1])  # "whole": its only window, then its end
            if kind == "reset":
                item.generation += 1
                item.done, item.sum = 0, None
                continue
            if kind == "error":
                item.error = payload
            else:  # "end"
                item.total, item.samples = payload
            result = finished(index)
            if result is not None:
                yield result
        for length in list(buckets):
            yield from run_bucket(length)
        for index in list(items):  # cannot happen unless a producer stopped early
            yield Result(index, error="the audio ended before all of its windows were read")

    def _forward_entries(self, entries):
        """``(index, generation, embedding or error text)`` for bucket entries; on failure retries one by one."""
        for first in range(0, len(entries), self.batch_limit(len(entries[0][2]))):
            group = entries[first : first + self.batch_limit(len(entries[0][2]))]
            try:
                output = self.forward(group[0][2][None] if len(group) == 1 else np.stack([w for _, _, w in group]))
                for (index, generation, _), row in zip(group, output):
                    yield index, generation, row
            except (RuntimeError, MemoryError):
                for index, generation, wave in group:
                    try:
                        yield index, generation, self.forward(wave[None])[0]
                    except (RuntimeError, MemoryError) as error:
                        yield index, generation, f"the model failed: {str(error).splitlines()[0]}"
