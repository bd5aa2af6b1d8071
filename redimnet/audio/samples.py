"""Samples in memory to the waveform the network takes, and the rules every input follows.

Integer PCM becomes float in [-1, 1) (:func:`to_float32`), channels are
averaged or one is picked (:func:`to_mono`), any rate is resampled to
:data:`TARGET_SAMPLE_RATE` with ``soxr`` (:func:`resample`), silence can be
trimmed (:func:`trim_silence`).  The rules: :func:`check_samples` (no NaN,
infinity or absurd magnitude, wherever audio enters), a plausible sample rate,
and :func:`check_signal_level` (a signal below :data:`SILENCE_FLOOR_DBFS`
carries no speaker).  :func:`prepare_waveform` applies all of it to an array.
Files and bytes are decoded in :mod:`redimnet.audio.read`, which uses these.
"""

from typing import Optional, Tuple, Union

import numpy as np

from ..errors import AUDIO, RedimnetError

TARGET_SAMPLE_RATE = 16000
"""The sample rate every ReDimNet model expects."""


SILENCE_FLOOR_DBFS = -80.0
"""Signals whose RMS level (after resampling, relative to full scale 1.0) is below this are silence.

-80 dBFS is an RMS of 1e-4, about three 16-bit steps: far below any recorded
speech (typically -40 to -15 dBFS), above digital silence and dither.
"""


class AudioError(RedimnetError):
    """An audio input cannot be used (unreadable, empty, corrupt, too short, non-finite, ...)."""

    category = AUDIO


def _integer_to_float(data: np.ndarray) -> np.ndarray:
    if data.dtype == np.uint8:
        return (data.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(data.dtype, np.signedinteger):
        return (data.astype(np.float64) / float(2 ** (8 * data.dtype.itemsize - 1))).astype(np.float32)
    if np.issubdtype(data.dtype, np.unsignedinteger):
        half = float(2 ** (8 * data.dtype.itemsize - 1))
        return ((data.astype(np.float64) - half) / half).astype(np.float32)
    raise AudioError(f"unsupported sample type {data.dtype}")


def to_float32(data: np.ndarray, where: str = "waveform") -> np.ndarray:
    """Samples as float32: integer PCM is scaled to [-1, 1), floats are cast."""
    data = np.asarray(data)
    if data.dtype == np.bool_ or not (np.issubdtype(data.dtype, np.number)):
        raise AudioError(f"{where}: samples must be numbers, got dtype {data.dtype}")
    if np.issubdtype(data.dtype, np.complexfloating):
        raise AudioError(f"{where}: samples must be real numbers, got dtype {data.dtype}")
    if np.issubdtype(data.dtype, np.integer):
        return _integer_to_float(data)
    with np.errstate(over="ignore", invalid="ignore"):  # out-of-range values become inf, reported later
        return data.astype(np.float32, copy=False)


def to_mono(data: np.ndarray, channel: Optional[int] = None, where: str = "waveform") -> np.ndarray:
    """``[channels, T]`` -> ``[T]``: the mean over channels, or channel ``channel`` (0-based)."""
    if data.ndim == 1:
        if channel not in (None, 0, -1):
            raise AudioError(f"{where}: has 1 channel, cannot pick channel {channel}")
        return data
    if data.ndim != 2:
        raise AudioError(f"{where}: expected samples shaped [T] or [channels, T], got shape {tuple(data.shape)}")
    channels = data.shape[0]
    if data.size == 0:
        raise AudioError(f"{where}: contains no samples (shape {tuple(data.shape)})")
    if channel is not None:
        if not -channels <= channel < channels:
            raise AudioError(
                f"{where}: has {channels} channel(s), cannot pick channel {channel} (channels are numbered from 0)"
            )
        return np.ascontiguousarray(data[channel])
    if channels == 1:
        return data[0]
    return data.mean(axis=0, dtype=np.float64).astype(np.float32)


def resample(wave: np.ndarray, sample_rate: float, target_rate: float = TARGET_SAMPLE_RATE) -> np.ndarray:
    """Resample a mono float32 waveform with soxr (high quality)."""
    if sample_rate == target_rate or wave.size == 0:
        return wave
    import soxr

    return soxr.resample(wave, sample_rate, target_rate, quality="HQ").astype(np.float32, copy=False)


def frame_length(sample_rate: int, frame_seconds: float) -> int:
    """Samples in a frame of ``frame_seconds`` (at least one)."""
    return max(1, int(round(frame_seconds * sample_rate)))


def trim_bounds(energy: np.ndarray, frame: int, length: int, threshold_db: float) -> Tuple[int, int]:
    """``(start, stop)`` samples kept by silence trimming, from per-frame mean energies."""
    if len(energy) < 2:
        return 0, length
    peak = energy.max()
    if peak <= 0:
        return 0, length
    loud = np.flatnonzero(10.0 * np.log10(np.maximum(energy, 1e-30) / peak) > threshold_db)
    return int(loud[0] * frame), int(min(length, (loud[-1] + 1) * frame))


def trim_silence(
    wave: np.ndarray, sample_rate: int = TARGET_SAMPLE_RATE, threshold_db: float = -40.0, frame_seconds: float = 0.025
) -> np.ndarray:
    """Cut leading and trailing frames whose energy is ``threshold_db`` below the loudest frame.

    Silence inside the recording is kept.  An all-silent (or all-zero)
    waveform is returned unchanged, so the caller decides what to do with it.
    """
    frame = frame_length(sample_rate, frame_seconds)
    count = len(wave) // frame
    energy = np.square(wave[: count * frame].astype(np.float64)).reshape(count, frame).mean(axis=1)
    start, stop = trim_bounds(energy, frame, len(wave), threshold_db)
    return wave[start:stop]


class SignalLevel:
    """Running RMS level of a signal given block by block (for :func:`check_signal_level`)."""

    def __init__(self):
        self.samples = 0
        self.energy = 0.0

    def add(self, block: np.ndarray) -> None:
        """Account for the samples of ``block``."""
        block = np.asarray(block, dtype=np.float64).ravel()  # float64: no overflow for huge samples
        self.samples += block.size
        # not np.dot: that is BLAS, whose threads then spin for a while after every block -- in a decoding
        # worker that took a core's worth of CPU from the model (einsum sums in its own loop, one thread)
        self.energy += float(np.einsum("i,i->", block, block))

    @property
    def dbfs(self) -> float:
        """RMS level in dB relative to full scale (``-inf`` for all zeros)."""
        if self.samples == 0 or self.energy <= 0:
            return float("-inf")
        return 10.0 * float(np.log10(self.energy / self.samples))

    @property
    def silent(self) -> bool:
        """True below :data:`SILENCE_FLOOR_DBFS`: no speaker to embed (see :func:`check_signal_level`)."""
        return self.dbfs < SILENCE_FLOOR_DBFS

    @classmethod
    def of(cls, wave: np.ndarray) -> "SignalLevel":
        """The level of a whole signal."""
        level = cls()
        level.add(wave)
        return level


def check_signal_level(level: Union[SignalLevel, np.ndarray], where: str = "waveform") -> None:
    """Raise :class:`AudioError` ("no speech signal") when the signal is below :data:`SILENCE_FLOOR_DBFS`.

    ``level`` is a :class:`SignalLevel` fed with the signal, or the 16 kHz
    signal itself.  This is the one rule that keeps silence from being
    embedded (two silent files would otherwise score as the same speaker).
    """
    if not isinstance(level, SignalLevel):
        level = SignalLevel.of(level)
    if level.silent:
        what = "all samples are zero" if level.energy <= 0 else f"RMS level {level.dbfs:.1f} dBFS"
        raise AudioError(
            f"{where}: no speech signal ({what}; the floor is {SILENCE_FLOOR_DBFS:g} dBFS); "
            "check that the right file/channel was given and that the recording is not muted"
        )


MIN_SAMPLE_RATE = 1000


MAX_SAMPLE_RATE = 384_000
"""Sample rates outside ``MIN_SAMPLE_RATE`` .. ``MAX_SAMPLE_RATE`` Hz are refused (384 kHz: the highest rate
audio interfaces record at; a header claiming more is a broken or hostile file)."""


MAX_SAMPLE_MAGNITUDE = float(2**31)
"""Largest sample magnitude accepted (the input policy of :func:`check_samples`).

Float samples belong in [-1, 1]; louder ones are accepted up to 2**31, which covers integer PCM of up to
32 bits stored in a float array without scaling (the network's features are close to scale-invariant, so
such input still embeds).  Larger values are refused: the features overflow far below float32's limit."""


def check_samples(data, where: str = "waveform", damaged: bool = False) -> None:
    """The input policy for samples, the same wherever audio enters (files, uploads, arrays).

    Raises :class:`AudioError` when a sample is NaN or infinite, or larger in
    magnitude than :data:`MAX_SAMPLE_MAGNITUDE`.  Integer PCM always passes
    (it is scaled to [-1, 1)).  ``damaged``: the samples were decoded from a
    file (the message then says the file is damaged, not how to clean an array).
    """
    data = np.asarray(data)
    if data.size == 0 or not np.issubdtype(data.dtype, np.floating):
        return
    with np.errstate(invalid="ignore", over="ignore"):
        peak = float(np.max(np.abs(data)))
    if peak <= MAX_SAMPLE_MAGNITUDE:
        return
    finite = np.isfinite(data)
    if not finite.all():
        bad = int(data.size - np.count_nonzero(finite))
        fix = "the file is damaged" if damaged else "clean the audio first"
        raise AudioError(f"{where}: {bad} sample(s) are NaN or infinite; {fix}")
    bad = int(np.count_nonzero(np.abs(data) > MAX_SAMPLE_MAGNITUDE))
    raise AudioError(
        f"{where}: {bad} sample(s) are larger than {MAX_SAMPLE_MAGNITUDE:.3g} in magnitude (the largest is "
        f"{peak:.3g}); float samples belong in [-1, 1]: scale the audio before using it"
    )


def checked_rate(sample_rate, where: str) -> int:
    """``sample_rate`` as an int when it is a plausible audio rate, else :class:`AudioError` naming ``where``."""
    if (
        isinstance(sample_rate, bool)
        or not isinstance(sample_rate, (int, np.integer, float))
        or not np.isfinite(sample_rate)
        or int(sample_rate) != sample_rate
        or sample_rate <= 0
    ):
        raise AudioError(f"{where}: the sample rate must be a positive whole number of Hz, got {sample_rate!r}")
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"{where}: a sample rate of {int(sample_rate)} Hz is not plausible for audio "
            f"(accepted: {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz); check the rate passed in"
        )
    return int(sample_rate)


def prepare_waveform(
    waveform,
    sample_rate: int = TARGET_SAMPLE_RATE,
    channel: Optional[int] = None,
    trim: bool = False,
    where: str = "waveform",
) -> np.ndarray:
    """A waveform given in memory -> mono float32 16 kHz ``[T]``.

    ``waveform`` is a numpy array or torch tensor shaped ``[T]`` or
    ``[channels, T]`` (integer PCM or float).  Raises :class:`AudioError` on
    empty or oddly shaped input and on samples the input policy refuses
    (:func:`check_samples`).
    """
    sample_rate = checked_rate(sample_rate, where)
    if hasattr(waveform, "detach") and hasattr(waveform, "cpu"):  # torch tensor
        waveform = waveform.detach().cpu()
        if getattr(waveform, "dtype", None) is not None and "bfloat16" in str(waveform.dtype):
            waveform = waveform.float()
        waveform = waveform.numpy()
    try:
        data = np.asarray(waveform)
    except (ValueError, TypeError) as error:
        raise AudioError(f"{where}: not an array of samples ({error})") from None
    if np.issubdtype(data.dtype, np.floating):
        check_samples(data, where)  # before float32, where values past its range would become infinite
    data = to_float32(data, where)
    wave = to_mono(data, channel, where)
    if wave.size == 0:
        raise AudioError(f"{where}: contains no samples")
    wave = resample(np.ascontiguousarray(wave), sample_rate)
    if not np.all(np.isfinite(wave)):
        raise AudioError(f"{where}: the samples are too large to resample (non-finite result)")
    if trim:
        wave = trim_silence(wave)
    return np.ascontiguousarray(wave, dtype=np.float32)
