"""Reading audio for the network: any file libsndfile reads, as mono float32 at 16 kHz.

* Formats: whatever ``soundfile`` (libsndfile) decodes -- WAV (PCM 8/16/24/32,
  float), FLAC, OGG/Vorbis, Opus, AIFF, MP3 (libsndfile >= 1.1), ...
* Integer PCM becomes float in [-1, 1).
* Several channels are averaged into one (or ``channel=i`` picks one).
* Any sample rate is resampled to 16 kHz with ``soxr`` (high quality).
* Optional energy-based trimming of leading and trailing silence (off by default).
* Files are decoded and resampled in blocks (:class:`AudioFile`), so reading
  a recording of any length needs memory for one block, not for the file.
* A signal whose RMS level is below :data:`SILENCE_FLOOR_DBFS` (all zeros,
  digital silence) carries no speaker: :func:`check_signal_level` refuses it.

Every problem with an input raises :class:`AudioError` naming the file and
what is wrong with it.  What happens to the samples once decoded (float, mono,
resampling, the sample policy, the silence rule) is :mod:`redimnet.audio.samples`.
"""

import errno
import io
import os
import re
from pathlib import Path
from typing import IO, Iterator, List, Optional, Tuple, Union

import numpy as np

from .lists import read_two_columns
from .samples import (  # noqa: F401 (the names below are also read from here)
    MAX_SAMPLE_MAGNITUDE,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    SILENCE_FLOOR_DBFS,
    TARGET_SAMPLE_RATE,
    AudioError,
    SignalLevel,
    check_samples,
    check_signal_level,
    checked_rate,
    frame_length,
    prepare_waveform,
    resample,
    to_float32,
    to_mono,
    trim_bounds,
    trim_silence,
)

PathLike = Union[str, os.PathLike]

BLOCK_FRAMES = 1 << 16
"""Frames (in the file's own rate) decoded from a file at a time."""


def audio_extensions() -> frozenset:
    """File name extensions (lower case, with the dot) that directory scans treat as audio."""
    import soundfile

    extensions = {"." + name.lower() for name in soundfile.available_formats()}
    extensions |= {".wav", ".flac", ".ogg", ".oga", ".opus", ".aiff", ".aif", ".mp3", ".sph"}
    extensions -= {".raw", ".mat4", ".mat5", ".htk", ".xi"}  # headerless / not speech containers
    return frozenset(extensions)


def list_audio_files(directory: PathLike, problems: Optional[List[Tuple[str, str]]] = None) -> List[Path]:
    """Audio files under ``directory`` (recursively), sorted, by extension.

    Raises :class:`AudioError` when ``directory`` is not a folder.  A
    subfolder that cannot be listed is never skipped silently: it is appended
    to ``problems`` as ``(path, reason)`` when a list is given, else it raises
    :class:`AudioError`.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise AudioError(f"{directory}: not a folder")
    extensions = audio_extensions()
    found = []
    unreadable: List[Tuple[str, str]] = []

    def report(error: OSError) -> None:
        where = error.filename if error.filename is not None else directory
        unreadable.append((str(where), f"cannot list the folder: {error.strerror or error}"))

    for root, folders, files in os.walk(directory, onerror=report):
        folders.sort()
        for name in files:
            if Path(name).suffix.lower() in extensions and not name.startswith("."):
                found.append(Path(root) / name)
    if unreadable and problems is None:
        where, why = unreadable[0]
        raise AudioError(f"{where}: {why}")
    if problems is not None:
        problems.extend(unreadable)
    return sorted(found)


MAX_CHANNELS = 64
"""The most channels a file may have (large microphone arrays have 32 or 64)."""

MAX_DECODED_SAMPLES = 1 << 34
"""The most samples (frames x channels, about 1.7e10: 100 hours of 48 kHz mono, 12 hours of 8 channels) a file
may decode to; its header is checked before decoding.  Files are decoded block by block, so this bounds the
time spent on one input, not the memory.  :class:`AudioFile` and :func:`decode_audio_bytes` take
``max_decoded_samples`` to set another bound (the HTTP service sets a much smaller one)."""

MAX_BLOCK_SAMPLES = 1 << 20
"""The most samples (frames x channels) decoded at once: a block of 1 Mi float32 samples (4 MiB) whatever
the header says about the rate and the number of channels."""


def audio_info(path: PathLike) -> Tuple[int, int, int]:
    """``(frames, sample_rate, channels)`` of an audio file without decoding it."""
    import soundfile

    path = _check_path(Path(path))
    try:
        info = soundfile.info(str(path))
    except Exception as error:  # libsndfile raises several types for undecodable files
        raise AudioError(f"{path}: {_decode_error(error)}") from None
    return info.frames, info.samplerate, info.channels


def _missing(path: Path) -> str:
    """Why an existing name cannot be followed (a link loop, a dangling link), or that it does not exist."""
    if not os.path.islink(path):
        return "no such file"
    try:
        os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "symbolic link loop (the link points, directly or not, at itself)"
        return f"broken symbolic link (it points to {os.readlink(path)}, which does not exist)"
    return "no such file"


def _check_path(path: Path) -> Path:
    if not path.exists():
        raise AudioError(f"{path}: {_missing(path)}")
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
    text = re.sub(r"\s*<[\w.]+ object at 0x[0-9a-fA-F]+>", "", text)  # data held in memory: no address
    return (
        f"not a readable audio file or corrupt/truncated ({text}); supported formats are those of "
        "libsndfile: WAV, FLAC, OGG/Vorbis, Opus, AIFF, MP3, ..."
    )


def check_header(
    where: str,
    frames: int,
    sample_rate,
    channels: int,
    max_seconds: Optional[float] = None,
    max_decoded_samples: Optional[int] = MAX_DECODED_SAMPLES,
) -> None:
    """What a file's header may claim, checked before anything is decoded (:class:`AudioError` otherwise).

    A plausible rate (:data:`MIN_SAMPLE_RATE` .. :data:`MAX_SAMPLE_RATE`), 1 to
    :data:`MAX_CHANNELS` channels, at least one frame, at most ``max_seconds``
    long and at most ``max_decoded_samples`` samples (frames x channels) to decode.
    """
    rate = checked_rate(sample_rate, where)
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(
            f"{where}: the header declares {channels} channels; at most {MAX_CHANNELS} are accepted "
            "(a damaged or hostile file?)"
        )
    if frames == 0:
        raise AudioError(f"{where}: contains no audio samples (0 frames)")
    if max_seconds is not None and frames > max_seconds * rate:
        raise AudioError(
            f"{where}: {frames / rate:.1f} s long; at most {max_seconds:g} s are accepted (cut the recording shorter)"
        )
    if max_decoded_samples is not None and frames * channels > max_decoded_samples:
        raise AudioError(
            f"{where}: the header declares {frames} frames x {channels} channels at {rate} Hz "
            f"({frames * channels:.3g} samples to decode); at most {max_decoded_samples:.3g} "
            "are accepted (fewer channels or a lower sample rate make it smaller)"
        )


class AudioStream:
    """Encoded audio read block by block as mono float32 at ``target_rate`` (16 kHz).

    The base of :class:`AudioFile` (a file) and :class:`AudioBytes` (a file's
    bytes held in memory).  Creating one reads the header only and checks it:
    decodable, a plausible rate (:data:`MIN_SAMPLE_RATE` ..
    :data:`MAX_SAMPLE_RATE`), at most :data:`MAX_CHANNELS` channels, at most
    ``max_seconds`` long, at most ``max_decoded_samples`` samples (frames x
    channels) to decode, a channel choice that exists.  :meth:`blocks`
    decodes from the start each time it is called, at most ``block_frames``
    frames (default :data:`BLOCK_FRAMES`) and :data:`MAX_BLOCK_SAMPLES`
    samples at a time, checks each block against the input policy
    (:func:`check_samples`), mixes the channels down and resamples with a
    streaming ``soxr`` resampler: the samples are those of decoding the whole
    input and resampling it at once, but memory holds one block, whatever the
    header claims (a stream that decodes to more than the limits allow is
    stopped as it goes).  ``length`` is the expected number of output samples
    (from the header); :attr:`samples_read` is the true count once
    :meth:`blocks` has finished.  With ``trim=True`` leading/trailing silence
    is cut as :func:`trim_silence` does (a first pass finds the bounds).
    """

    where: str

    def _open(self):
        """A new ``soundfile.SoundFile`` reading the input from its start."""
        raise NotImplementedError

    def _setup(
        self,
        channel: Optional[int],
        trim: bool,
        target_rate: int,
        block_frames: Optional[int],
        max_seconds: Optional[float],
        max_decoded_samples: Optional[int],
    ) -> None:
        try:
            with self._open() as handle:
                self.frames, self.sample_rate, self.channels = handle.frames, handle.samplerate, handle.channels
        except AudioError:
            raise
        except Exception as error:  # libsndfile raises several types for undecodable data
            raise AudioError(f"{self.where}: {_decode_error(error)}") from None
        self.max_seconds = max_seconds
        self.max_decoded_samples = max_decoded_samples
        self._check_header(channel)
        self.channel = channel
        self.target_rate = int(target_rate)
        self.block_frames = int(block_frames or BLOCK_FRAMES)
        self.samples_read: Optional[int] = None
        self.bounds: Optional[Tuple[int, int]] = None
        self.length = self._resampled_length(self.frames)
        if trim:
            self.bounds = self._trim_pass()
            self.length = self.bounds[1] - self.bounds[0]

    def _check_header(self, channel: Optional[int]) -> None:
        check_header(
            self.where, self.frames, self.sample_rate, self.channels, self.max_seconds, self.max_decoded_samples
        )
        if channel is not None and not -self.channels <= channel < self.channels:
            raise AudioError(
                f"{self.where}: has {self.channels} channel(s), cannot pick channel {channel} "
                f"(channels are numbered from 0)"
            )

    def _resampled_length(self, frames: int) -> int:
        if self.sample_rate == self.target_rate:
            return frames
        return int(np.floor(frames * self.target_rate / self.sample_rate + 0.5))  # what soxr produces

    def _check_decoded(self, frames: int) -> None:
        """Refuse a stream that decodes to more than the limits allow (its header understated it)."""
        too_long = self.max_seconds is not None and frames > self.max_seconds * self.sample_rate
        too_many = self.max_decoded_samples is not None and frames * self.channels > self.max_decoded_samples
        if too_long or too_many:
            raise AudioError(
                f"{self.where}: decodes to more audio than its header declares and the limits allow "
                f"(more than {frames} frames); a damaged or hostile file?"
            )

    def _decoded(self) -> Iterator[np.ndarray]:
        """Mono float32 blocks in the input's own rate."""
        step = max(1, min(self.block_frames, MAX_BLOCK_SAMPLES // self.channels))
        frames = 0
        try:
            with self._open() as handle:
                while True:
                    try:
                        data = handle.read(step, dtype="float32", always_2d=True)
                    except MemoryError:
                        raise AudioError(f"{self.where}: too large to decode in memory") from None
                    if data.shape[0] == 0:
                        return
                    frames += data.shape[0]
                    self._check_decoded(frames)
                    check_samples(data, self.where, damaged=True)
                    yield np.ascontiguousarray(to_mono(data.T, self.channel, self.where))
                    if data.shape[0] < step:
                        return
        except AudioError:
            raise
        except Exception as error:  # LibsndfileError, RuntimeError, TypeError, ValueError, ...
            raise AudioError(f"{self.where}: {_decode_error(error)}") from None

    def _resampled(self) -> Iterator[np.ndarray]:
        """Every output sample once, in blocks (without trimming)."""
        if self.sample_rate == self.target_rate:
            yield from self._decoded()
            return
        import soxr

        stream = soxr.ResampleStream(self.sample_rate, self.target_rate, 1, dtype="float32", quality="HQ")
        for wave in self._decoded():
            out = stream.resample_chunk(wave, last=False)
            if out.size:
                yield out
        out = stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        if out.size:
            yield out

    def _trim_pass(self) -> Tuple[int, int]:
        frame = frame_length(self.target_rate, 0.025)
        energies, carry, total = [], np.zeros(0, dtype=np.float64), 0
        for block in self._resampled():
            total += block.size
            joined = np.concatenate([carry, block.astype(np.float64)])
            whole = len(joined) // frame * frame
            energies.append(np.square(joined[:whole]).reshape(-1, frame).mean(axis=1))
            carry = joined[whole:]
        energy = np.concatenate(energies) if energies else np.zeros(0)
        return trim_bounds(energy, frame, total, -40.0)

    def blocks(self) -> Iterator[np.ndarray]:
        """The signal as consecutive float32 blocks; sets :attr:`samples_read` at the end."""
        first, last = self.bounds if self.bounds is not None else (0, 0)  # used only with bounds
        position = 0
        for block in self._resampled():
            start, position = position, position + block.size
            if self.bounds is not None:
                block = block[max(0, first - start) : max(0, last - start)]
                if block.size == 0:
                    continue
            if not np.all(np.isfinite(block)):
                raise AudioError(f"{self.where}: the samples are too large to resample (non-finite result)")
            yield block
        self.samples_read = (last - first) if self.bounds is not None else position

    def read(self) -> np.ndarray:
        """The whole signal as one array ``[T]``."""
        parts = list(self.blocks())
        if not parts:
            raise AudioError(f"{self.where}: contains no audio samples (0 frames)")
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


class AudioFile(AudioStream):
    """An audio file read block by block as mono float32 at ``target_rate`` (see :class:`AudioStream`).

    Opening also checks the file itself (exists, is a file, readable, not empty).
    """

    def __init__(
        self,
        path: PathLike,
        channel: Optional[int] = None,
        trim: bool = False,
        target_rate: int = TARGET_SAMPLE_RATE,
        block_frames: Optional[int] = None,
        max_seconds: Optional[float] = None,
        max_decoded_samples: Optional[int] = MAX_DECODED_SAMPLES,
    ):
        self.path = _check_path(Path(path))
        self.where = str(self.path)
        self._setup(channel, trim, target_rate, block_frames, max_seconds, max_decoded_samples)

    def _open(self):
        import soundfile

        return soundfile.SoundFile(str(self.path))


class _MemoryFile:
    """Read-only file over bytes held in memory (``bytes``, ``bytearray``): libsndfile reads into its own
    buffer (``readinto``), so the data is never copied, unlike ``io.BytesIO(bytearray)``."""

    def __init__(self, data):
        self._view = memoryview(data).cast("B")
        self._position = 0

    def seek(self, offset: int, whence: int = 0) -> int:
        base = (0, self._position, len(self._view))[whence]
        self._position = min(max(0, base + offset), len(self._view))
        return self._position

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer) -> int:
        target = memoryview(buffer).cast("B")
        count = min(len(target), len(self._view) - self._position)
        target[:count] = self._view[self._position : self._position + count]
        self._position += count
        return count

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size < 0 else min(len(self._view), self._position + size)
        data = self._view[self._position : end].tobytes()
        self._position = max(self._position, end)
        return data


class AudioBytes(AudioStream):
    """An audio file's bytes that never were a file of this machine (an upload), read like :class:`AudioFile`;
    ``where`` names it in messages (never a path).

    ``data`` is a bytes-like object (``bytes``, ``bytearray``: read in place, never copied) or a seekable
    binary file object (e.g. the temporary file an upload was spooled to; read from its start each time,
    never closed here).
    """

    def __init__(
        self,
        data: Union[bytes, bytearray, IO[bytes]],
        where: str = "upload",
        channel: Optional[int] = None,
        trim: bool = False,
        target_rate: int = TARGET_SAMPLE_RATE,
        block_frames: Optional[int] = None,
        max_seconds: Optional[float] = None,
        max_decoded_samples: Optional[int] = MAX_DECODED_SAMPLES,
    ):
        empty = data.seek(0, io.SEEK_END) == 0 if hasattr(data, "seek") else not data
        if empty:
            raise AudioError(f"{where}: the file is empty (0 bytes)")
        self.data, self.where = data, where
        self._setup(channel, trim, target_rate, block_frames, max_seconds, max_decoded_samples)

    def _open(self):
        import soundfile

        if isinstance(self.data, (bytes, bytearray, memoryview)):
            return soundfile.SoundFile(_MemoryFile(self.data))
        self.data.seek(0)
        return soundfile.SoundFile(self.data)


def decode_audio_bytes(
    data: Union[bytes, bytearray, IO[bytes]],
    where: str = "upload",
    channel: Optional[int] = None,
    max_seconds: Optional[float] = None,
    target_rate: int = TARGET_SAMPLE_RATE,
    max_decoded_samples: Optional[int] = MAX_DECODED_SAMPLES,
) -> np.ndarray:
    """Decode an audio file held in memory (``bytes``) to mono float32 at ``target_rate``, shape ``[T]``.

    For data that never was a file on this machine (an HTTP upload): nothing
    touches the file system.  The checks and messages are those of
    :class:`AudioFile` (``where`` names the input in them): a recording
    longer than ``max_seconds``, or whose header declares more than
    ``max_decoded_samples`` samples (frames x channels), is refused before
    it is decoded, and it is decoded block by block (:class:`AudioBytes`).
    """
    return AudioBytes(
        data,
        where,
        channel=channel,
        target_rate=target_rate,
        max_seconds=max_seconds,
        max_decoded_samples=max_decoded_samples,
    ).read()


def read_audio(
    path: PathLike, channel: Optional[int] = None, trim: bool = False, target_rate: int = TARGET_SAMPLE_RATE
) -> np.ndarray:
    """Decode ``path`` to mono float32 at ``target_rate`` (16 kHz), shape ``[T]``.

    Raises :class:`AudioError` for a missing, unreadable, empty, truncated or
    non-audio file, and for audio with NaN/infinite samples.  The whole
    signal is returned; to process long recordings in bounded memory iterate
    :meth:`AudioFile.blocks` instead.

    Args:
        path: the audio file (any format libsndfile reads: WAV, FLAC, OGG, MP3, ...).
        channel: keep only this channel (0-based); None averages the channels.
        trim: cut leading and trailing silence.
        target_rate: the sample rate to resample to.

    Returns:
        The samples, float32, shape ``[T]``.
    """
    return AudioFile(path, channel=channel, trim=trim, target_rate=target_rate).read()


def iter_inputs(inputs: List[PathLike], problems: Optional[List[Tuple[str, str]]] = None) -> Iterator[Tuple[str, Path]]:
    """``(utterance_id, path)`` for files and folders named on a command line.

    A folder yields its audio files keyed by their path relative to it ('/'
    separators, extension kept); a file is keyed by its file name.  A folder
    without audio raises :class:`AudioError`.  Subfolders that cannot be
    listed go to ``problems`` (see :func:`list_audio_files`).
    """
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            before = len(problems) if problems is not None else 0
            files = list_audio_files(item, problems)
            if not files and (problems is None or len(problems) == before):
                raise AudioError(
                    f"{item}: the folder contains no audio files (looked for {', '.join(sorted(audio_extensions()))})"
                )
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


def read_excerpt(
    source: Union[PathLike, bytes], target_rate: int = TARGET_SAMPLE_RATE, frames: int = -1, start: int = 0
) -> np.ndarray:
    """Mono float32 samples of a file (or of its bytes), resampled to ``target_rate``: how training reads examples.

    ``start`` / ``frames`` (in the file's own rate) read a part of the file without decoding the rest; a
    whole file is decoded block by block (:class:`AudioFile`, :class:`AudioBytes`).  The header and the
    samples follow the input policy of every reader (:func:`check_header`, :func:`check_samples`); unlike
    :func:`read_audio` the level is not checked (training counts and skips unreadable examples instead).

    Raises:
        AudioError: the file cannot be read or decoded, breaks the input policy, or holds no samples.
    """
    import io

    import soundfile

    name = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    if frames < 0 and not start:
        if isinstance(source, (bytes, bytearray)):
            return AudioBytes(source, name, target_rate=int(target_rate)).read()
        return AudioFile(source, target_rate=int(target_rate)).read()
    try:
        with soundfile.SoundFile(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source) as audio:
            rate = audio.samplerate
            check_header(name, audio.frames, rate, audio.channels)
            if start:
                audio.seek(start)
            wave = audio.read(frames=frames, dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as error:  # soundfile raises several types, including plain RuntimeError
        raise AudioError(f"cannot read audio {name}: {error}") from None
    check_samples(wave, name, damaged=True)
    wave = wave.mean(axis=1) if wave.shape[1] > 1 else wave[:, 0]
    if rate != target_rate:
        wave = resample(np.ascontiguousarray(wave, dtype=np.float32), rate, target_rate)
    if wave.size == 0:
        raise AudioError(f"audio {name} is empty")
    return np.ascontiguousarray(wave, dtype=np.float32)
