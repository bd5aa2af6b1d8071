"""Recordings read block by block at 16 kHz mono, so memory does not grow with their length.

:class:`AudioSource` wraps a file (decoded and resampled block by block by
:class:`redimnet.audio.AudioFile`) or a waveform already in memory.
:meth:`AudioSource.blocks` can be called several times: the diarization
pipeline reads a file twice (voice activity, then embeddings) instead of
holding hours of samples.
"""

import os
from typing import Iterator, Optional, cast

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
