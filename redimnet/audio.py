"""Reading audio for the network: any file libsndfile reads, as mono float32 at 16 kHz.

* Formats: whatever ``soundfile`` (libsndfile) decodes -- WAV (PCM 8/16/24/32,
  float), FLAC, OGG/Vorbis, Opus, AIFF, MP3 (libsndfile >= 1.1), ...
* Integer PCM becomes float in [-1, 1).
* Several channels are averaged into one (or ``channel=i`` picks one).
* Any sample rate is resampled to 16 kHz with ``soxr`` (high quality).
* Optional energy-based trimming of leading and trailing silence (off by default).

Every problem with an input raises :class:`AudioError` naming the file and
what is wrong with it.
"""

import os
from pathlib import Path
from typing import Iterator, List, Optional, Tuple, Union

import numpy as np

from .errors import RedimnetError
from .kaldi_lists import read_two_columns

PathLike = Union[str, os.PathLike]

TARGET_SAMPLE_RATE = 16000
"""The sample rate every ReDimNet model expects."""


class AudioError(RedimnetError):
    """An audio input cannot be used (unreadable, empty, corrupt, too short, non-finite, ...)."""


def audio_extensions() -> frozenset:
    """File name extensions (lower case, with the dot) that directory scans treat as audio."""
    import soundfile

    extensions = {"." + name.lower() for name in soundfile.available_formats()}
    extensions |= {".wav", ".flac", ".ogg", ".oga", ".opus", ".aiff", ".aif", ".mp3", ".sph"}
    extensions -= {".raw", ".mat4", ".mat5", ".htk", ".xi"}  # headerless / not speech containers
    return frozenset(extensions)


def list_audio_files(directory: PathLike) -> List[Path]:
    """Audio files under ``directory`` (recursively), sorted, by extension.

    Raises :class:`AudioError` when ``directory`` is not a readable folder.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise AudioError(f"{directory}: not a folder")
    extensions = audio_extensions()
    found = []
    for root, folders, files in os.walk(directory, onerror=None):
        folders.sort()
        for name in files:
            if Path(name).suffix.lower() in extensions and not name.startswith("."):
                found.append(Path(root) / name)
    return sorted(found)


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
            raise AudioError(f"{where}: has {channels} channel(s), cannot pick channel {channel} "
                             f"(channels are numbered from 0)")
        return np.ascontiguousarray(data[channel])
    if channels == 1:
        return data[0]
    return data.mean(axis=0, dtype=np.float64).astype(np.float32)


def resample(wave: np.ndarray, sample_rate: int, target_rate: int = TARGET_SAMPLE_RATE) -> np.ndarray:
    """Resample a mono float32 waveform with soxr (high quality)."""
    if sample_rate == target_rate or wave.size == 0:
        return wave
    import soxr

    return soxr.resample(wave, sample_rate, target_rate, quality="HQ").astype(np.float32, copy=False)


def trim_silence(wave: np.ndarray, sample_rate: int = TARGET_SAMPLE_RATE, threshold_db: float = -40.0,
                 frame_seconds: float = 0.025) -> np.ndarray:
    """Cut leading and trailing frames whose energy is ``threshold_db`` below the loudest frame.

    Silence inside the recording is kept.  An all-silent (or all-zero)
    waveform is returned unchanged, so the caller decides what to do with it.
    """
    frame = max(1, int(round(frame_seconds * sample_rate)))
    count = len(wave) // frame
    if count < 2:
        return wave
    energy = np.square(wave[:count * frame].astype(np.float64)).reshape(count, frame).mean(axis=1)
    peak = energy.max()
    if peak <= 0:
        return wave
    loud = np.flatnonzero(10.0 * np.log10(np.maximum(energy, 1e-30) / peak) > threshold_db)
    start, stop = loud[0] * frame, min(len(wave), (loud[-1] + 1) * frame)
    return wave[start:stop]


MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 1_000_000


def _check_rate(sample_rate, where: str) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer, float)) \
            or not np.isfinite(sample_rate) or int(sample_rate) != sample_rate or sample_rate <= 0:
        raise AudioError(f"{where}: the sample rate must be a positive whole number of Hz, got {sample_rate!r}")
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"{where}: a sample rate of {int(sample_rate)} Hz is not plausible for audio "
                         f"(accepted: {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz); check the rate passed in")
    return int(sample_rate)


def prepare_waveform(waveform, sample_rate: int = TARGET_SAMPLE_RATE, channel: Optional[int] = None,
                     trim: bool = False, where: str = "waveform") -> np.ndarray:
    """A waveform given in memory -> mono float32 16 kHz ``[T]``.

    ``waveform`` is a numpy array or torch tensor shaped ``[T]`` or
    ``[channels, T]`` (integer PCM or float).  Raises :class:`AudioError` on
    empty, non-finite or oddly shaped input.
    """
    sample_rate = _check_rate(sample_rate, where)
    if hasattr(waveform, "detach") and hasattr(waveform, "cpu"):  # torch tensor
        waveform = waveform.detach().cpu()
        if getattr(waveform, "dtype", None) is not None and "bfloat16" in str(waveform.dtype):
            waveform = waveform.float()
        waveform = waveform.numpy()
    try:
        data = np.asarray(waveform)
    except (ValueError, TypeError) as error:
        raise AudioError(f"{where}: not an array of samples ({error})") from None
    data = to_float32(data, where)
    wave = to_mono(data, channel, where)
    if wave.size == 0:
        raise AudioError(f"{where}: contains no samples")
    if not np.all(np.isfinite(wave)):
        bad = int(np.count_nonzero(~np.isfinite(wave)))
        raise AudioError(f"{where}: {bad} sample(s) are NaN or infinite; clean the audio first")
    wave = resample(np.ascontiguousarray(wave), sample_rate)
    if not np.all(np.isfinite(wave)):
        raise AudioError(f"{where}: the samples are too large to resample (non-finite result)")
    if trim:
        wave = trim_silence(wave)
    return np.ascontiguousarray(wave, dtype=np.float32)


def audio_info(path: PathLike) -> Tuple[int, int, int]:
    """``(frames, sample_rate, channels)`` of an audio file without decoding it."""
    import soundfile

    path = _check_path(Path(path))
    try:
        info = soundfile.info(str(path))
    except Exception as error:  # libsndfile raises several types for undecodable files
        raise AudioError(f"{path}: {_decode_error(error)}") from None
    return info.frames, info.samplerate, info.channels


def _check_path(path: Path) -> Path:
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path}: permission denied (the file is not readable)")
    try:
        size = path.stat().st_size
    except OSError as error:
        raise AudioError(f"{path}: cannot read: {error.strerror or error}") from None
    if size == 0:
        raise AudioError(f"{path}: the file is empty (0 bytes)")
    return path


def _decode_error(error: Exception) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (f"not a readable audio file or corrupt/truncated ({text}); supported formats are those of "
            "libsndfile: WAV, FLAC, OGG/Vorbis, Opus, AIFF, MP3, ...")


def read_audio(path: PathLike, channel: Optional[int] = None, trim: bool = False,
               target_rate: int = TARGET_SAMPLE_RATE) -> np.ndarray:
    """Decode ``path`` to mono float32 at ``target_rate`` (16 kHz), shape ``[T]``.

    Raises :class:`AudioError` for a missing, unreadable, empty, truncated or
    non-audio file, and for audio with NaN/infinite samples.
    """
    import soundfile

    path = _check_path(Path(path))
    where = str(path)
    try:
        data, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except MemoryError:
        raise AudioError(f"{path}: too large to decode in memory") from None
    except Exception as error:  # LibsndfileError, RuntimeError, TypeError, ValueError, ...
        raise AudioError(f"{path}: {_decode_error(error)}") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: contains no audio samples (0 frames)")
    _check_rate(sample_rate, str(path))
    wave = to_mono(np.ascontiguousarray(data.T), channel, where)
    if not np.all(np.isfinite(wave)):
        bad = int(np.count_nonzero(~np.isfinite(wave)))
        raise AudioError(f"{path}: {bad} sample(s) are NaN or infinite; the file is damaged")
    wave = resample(np.ascontiguousarray(wave), sample_rate, target_rate)
    if trim:
        wave = trim_silence(wave, target_rate)
    return np.ascontiguousarray(wave, dtype=np.float32)


def iter_inputs(inputs: List[PathLike]) -> Iterator[Tuple[str, Path]]:
    """``(utterance_id, path)`` for files and folders named on a command line.

    A folder yields its audio files keyed by their path relative to it ('/'
    separators, extension kept); a file is keyed by its file name.  A folder
    without audio raises :class:`AudioError`.
    """
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            files = list_audio_files(item)
            if not files:
                raise AudioError(f"{item}: the folder contains no audio files "
                                 f"(looked for {', '.join(sorted(audio_extensions()))})")
            for path in files:
                yield path.relative_to(item).as_posix(), path
        else:
            yield item.name, item


def read_scp(path: PathLike) -> List[Tuple[str, Path]]:
    """``(utterance_id, path)`` pairs from a Kaldi-style ``wav.scp`` (``ID PATH`` per line).

    Pipes (``cmd |``) and byte offsets (``file.ark:123``) are not supported.
    """
    pairs = []
    for number, utterance, audio_path in read_two_columns(path, ("UTTERANCE_ID", "PATH"), AudioError):
        if audio_path.endswith("|"):
            raise AudioError(f"{path}:{number}: command pipes are not supported; decode to a file first")
        pairs.append((utterance, Path(audio_path)))
    return pairs
