"""Recordings read block by block at 16 kHz mono, so memory does not grow with their length.

:class:`AudioSource` wraps a file (decoded and resampled block by block by
:class:`redimnet.audio.AudioFile`) or a waveform already in memory.
:meth:`AudioSource.blocks` can be called several times: the diarization
pipeline reads a file twice (voice activity, then embeddings) instead of
holding hours of samples.
"""

import os
from typing import Iterable, Iterator, Optional, cast

import numpy as np

from .read import TARGET_SAMPLE_RATE, AudioFile, prepare_waveform

BLOCK_SECONDS = 30.0


class AudioSource:
    """A recording, read in blocks of 16 kHz mono float32 samples.

    ``source``: a path, or a waveform (numpy array / torch tensor ``[T]`` or
    ``[channels, T]``) at ``sample_rate``.  ``channel`` picks one channel
    instead of averaging them.  ``block_seconds``: the size of the blocks
    read.  Problems raise :class:`redimnet.AudioError`.
    """

    def __init__(
        self,
        source,
        sample_rate: int = TARGET_SAMPLE_RATE,
        channel: Optional[int] = None,
        name: Optional[str] = None,
        block_seconds: float = BLOCK_SECONDS,
    ):
        self.file: Optional[AudioFile] = None
        self.wave: Optional[np.ndarray] = None
        self.block_seconds = float(block_seconds)
        if isinstance(source, (str, os.PathLike)):
            self.file = AudioFile(source, channel=channel, block_frames=None)
            self.file.block_frames = max(1, int(self.block_seconds * self.file.sample_rate))
            self.name = name or self.file.path.stem
            self.samples = self.file.length
        else:
            self.name = name or "waveform"
            self.wave = prepare_waveform(source, sample_rate, channel=channel, where=self.name)
            self.samples = len(self.wave)

    @property
    def duration(self) -> float:
        """Length in seconds (from the file header for files)."""
        return self.samples / TARGET_SAMPLE_RATE

    def blocks(self) -> Iterator[np.ndarray]:
        """Consecutive 16 kHz mono float32 blocks of about ``block_seconds`` (the last one shorter)."""
        if self.file is not None:
            yield from self.file.blocks()
            return
        wave = cast(np.ndarray, self.wave)  # set whenever there is no file
        step = max(1, int(self.block_seconds * TARGET_SAMPLE_RATE))
        for first in range(0, len(wave), step):
            yield wave[first : first + step]


def spans_of_blocks(
    blocks: Iterator[np.ndarray], starts: Iterable[int], lengths: Iterable[int]
) -> Iterator[np.ndarray]:
    """Samples ``[start, start + length)`` of the stream that ``blocks`` yields, one span after another.

    ``starts`` must not decrease.  Audio before a span's start is dropped once it has been read (but
    no block is read before a span needs it), so memory holds about one span and one block however
    long the stream.  A span reaching past the end of the stream comes back short.  The spans are
    views: copy one to keep it.  Blocks after the last span are left for the caller.
    """
    buffer = np.zeros(0, dtype=np.float32)
    buffer_start = 0  # stream index of buffer[0]
    exhausted = False
    for start, length in zip(starts, lengths):
        start = int(start)
        end = start + int(length)
        while True:
            drop = min(start - buffer_start, len(buffer))
            if drop > 0:
                buffer, buffer_start = buffer[drop:], buffer_start + drop
            if exhausted or buffer_start + len(buffer) >= end:
                break
            try:
                buffer = np.concatenate([buffer, next(blocks)])
            except StopIteration:
                exhausted = True
        yield buffer[start - buffer_start : end - buffer_start]
