"""The :class:`Embedder`: a ReDimNet model ready to turn audio into speaker embeddings.

Long recordings.  A recording longer than ``max_seconds`` (default 60 s) is
cut into windows of ``max_seconds`` that overlap by ``overlap_seconds``
(default 10 s; the windows are spread evenly so that the first starts at the
beginning and the last ends at the end), each window is embedded, and the
embedding is the mean of the window embeddings.  Memory therefore stays
bounded by the window length, whatever the length of the recording.  Inputs
up to ``max_seconds`` are embedded whole, never padded or cropped.

Batching.  Padding changes an embedding (the front end normalises over time
and the pooling sees the padded frames), so :meth:`Embedder.embed_many` only
batches waveforms of exactly the same length (after resampling) and runs
the others one by one.  The windows of one long recording all have the same
length and are batched together.
"""

import math
import os
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Union

import numpy as np
import torch

from .audio import TARGET_SAMPLE_RATE, AudioError, prepare_waveform, read_audio
from .errors import InvalidArgumentError, RedimnetError

PathLike = Union[str, os.PathLike]

_PRECISIONS = {"float32": None, "fp32": None, "float16": torch.float16, "fp16": torch.float16,
               "half": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def cosine_score(a, b) -> float:
    """Cosine similarity of two embeddings (1-D arrays or tensors)."""
    a = np.asarray(a.detach().cpu() if hasattr(a, "detach") else a, dtype=np.float64).reshape(-1)
    b = np.asarray(b.detach().cpu() if hasattr(b, "detach") else b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"cannot score embeddings of different sizes {a.shape[0]} and {b.shape[0]}")
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    if not np.isfinite(norm) or norm == 0:
        raise ValueError("cannot score a zero or non-finite embedding")
    return float(np.dot(a, b) / norm)


def minimum_samples(model: torch.nn.Module, limit: int = 1 << 16) -> int:
    """The fewest 16 kHz samples ``model`` accepts, checked by running it on low-level noise.

    The mel front end's centred STFT pads ``n_fft // 2`` samples by reflection
    on each side, which needs at least ``n_fft // 2 + 1`` samples (257 for
    every published model); the TensorFlow-style front end needs one whole
    window (``win_length``, 400).  Rather than trusting a formula, the
    formula is checked by running the model just at and below it; failing
    that, the threshold is searched: doubling until the model runs and gives a finite
    embedding (noise input), then bisecting.
    """
    device = next(model.parameters()).device
    noise = torch.randn(1, limit, generator=torch.Generator().manual_seed(0)).to(device) * 0.1

    def works(length: int) -> bool:
        try:
            with torch.inference_mode(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                output = model(noise[:, :length])
            return output.ndim == 2 and bool(torch.isfinite(output).all())
        except (RuntimeError, ValueError, IndexError):
            return False

    guess = _front_end_minimum(model)
    if guess is not None and works(guess) and (guess == 1 or not works(guess - 1)):
        return guess
    low, high = 0, 1  # invariant: works(high) once found, not works(low)
    while not works(high):
        low, high = high, high * 2
        if high > limit:
            raise InvalidArgumentError(f"the model fails on inputs of up to {limit} samples; it cannot embed audio")
    while high - low > 1:
        middle = (low + high) // 2
        if works(middle):
            high = middle
        else:
            low = middle
    return high


def _front_end_minimum(model: torch.nn.Module) -> Optional[int]:
    """The shortest input the front end's arithmetic allows, or None when unknown."""
    from .frontend.mel import MelSpectrogramFrontEnd
    from .frontend.tf_mel import TFMelFrontEnd

    frontend = getattr(model, "frontend", None)
    if isinstance(frontend, MelSpectrogramFrontEnd):
        return int(frontend.n_fft) // 2 + 1
    if isinstance(frontend, TFMelFrontEnd):
        return int(frontend.win_length)
    return None


class Embedder:
    """Speaker embeddings from waveforms and audio files.

    >>> import redimnet
    >>> embedder = redimnet.Embedder(redimnet.build("b0"))
    >>> embedder.embed(np.zeros(16000, dtype=np.float32) + 0.01, 16000).shape   # doctest: +SKIP
    (192,)

    ``device``: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... (default: cuda when
    available, else cpu).  ``precision``: ``"float32"`` (default),
    ``"float16"`` or ``"bfloat16"`` autocast (float16 only on GPU).
    ``optimize``: pass the model through
    ``redimnet.optimize.optimize_for_inference`` when that module exists.
    ``max_seconds`` / ``overlap_seconds``: how long inputs are windowed (see
    the module documentation).  ``channel``: pick one channel instead of
    averaging them.  ``trim_silence``: cut leading/trailing silence.
    ``batch_size``: the most equal-length waveforms run together.
    ``keep_freed_memory``: apply :func:`redimnet.optimize.keep_freed_memory`
    (process-wide glibc malloc setting: repeated forward passes reuse memory
    instead of page-faulting; 10-30 % faster on CPU, freed memory stays with
    the process).
    Embeddings are returned as float32 numpy arrays, raw (not normalised).
    """

    def __init__(self, model: torch.nn.Module, device: Optional[str] = None, precision: str = "float32",
                 optimize: bool = True, max_seconds: float = 60.0, overlap_seconds: float = 10.0,
                 channel: Optional[int] = None, trim_silence: bool = False, batch_size: int = 16,
                 keep_freed_memory: bool = True):
        if precision not in _PRECISIONS:
            raise InvalidArgumentError(f"unknown precision {precision!r}; choose float32, float16 or bfloat16")
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.device = torch.device(device)
        except RuntimeError as error:
            raise InvalidArgumentError(f"invalid device {device!r}: {error}") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise InvalidArgumentError(f"device {device!r} asked for, but CUDA is not available here; use --device cpu")
        self.autocast_dtype = _PRECISIONS[precision]
        if self.autocast_dtype == torch.float16 and self.device.type != "cuda":
            raise InvalidArgumentError("float16 autocast needs a GPU; use float32 or bfloat16 on the CPU")
        if not max_seconds > 0 or not overlap_seconds >= 0 or overlap_seconds >= max_seconds:
            raise InvalidArgumentError(f"need max_seconds > overlap_seconds >= 0, got max_seconds={max_seconds}, "
                             f"overlap_seconds={overlap_seconds}")
        if int(batch_size) < 1:
            raise InvalidArgumentError(f"batch_size must be at least 1, got {batch_size}")
        self.model = model.eval().to(self.device)
        self.min_samples = minimum_samples(self.model)
        self.network = self.model
        if optimize:
            try:
                from .optimize import optimize_for_inference
            except ImportError:
                pass
            else:
                try:
                    self.network = optimize_for_inference(self.model)
                except RedimnetError:  # a layer the optimiser does not handle: the plain model works
                    self.network = self.model
        self.optimized = self.network is not self.model
        if keep_freed_memory and self.device.type == "cpu":
            from .optimize.allocator import keep_freed_memory as keep
            keep()
        self.max_samples = int(round(max_seconds * TARGET_SAMPLE_RATE))
        self.overlap_samples = int(round(overlap_seconds * TARGET_SAMPLE_RATE))
        if self.max_samples < self.min_samples:
            raise InvalidArgumentError(f"max_seconds={max_seconds} is shorter than the shortest input the model takes "
                             f"({self.min_samples} samples)")
        self.channel = channel
        self.trim_silence = trim_silence
        self.batch_size = int(batch_size)

    @property
    def embed_dim(self) -> int:
        """The size of an embedding."""
        config = getattr(self.model, "config", None)
        if config is not None and getattr(config, "num_classes", None):
            return int(config.num_classes)
        return int(getattr(self.model, "embed_dim", getattr(config, "embed_dim", 0)))

    # --- waveform preparation --------------------------------------------------------------------
    def check_length(self, wave: np.ndarray, where: str = "waveform") -> np.ndarray:
        """Raise :class:`AudioError` when ``wave`` (16 kHz) is shorter than the model accepts."""
        if len(wave) < self.min_samples:
            raise AudioError(
                f"{where}: too short: {len(wave)} samples at 16 kHz ({len(wave) / TARGET_SAMPLE_RATE * 1000:.1f} ms)"
                f"{' after silence trimming' if self.trim_silence else ''}; the model needs at least "
                f"{self.min_samples} samples ({self.min_samples / TARGET_SAMPLE_RATE * 1000:.1f} ms)")
        return wave

    def load(self, path: PathLike) -> np.ndarray:
        """Read and check an audio file: mono float32 16 kHz, long enough."""
        return self.check_length(read_audio(path, channel=self.channel, trim=self.trim_silence), str(path))

    def prepare(self, waveform, sample_rate: int = TARGET_SAMPLE_RATE, where: str = "waveform") -> np.ndarray:
        """Check and convert an in-memory waveform (see :func:`redimnet.audio.prepare_waveform`)."""
        wave = prepare_waveform(waveform, sample_rate, channel=self.channel, trim=self.trim_silence, where=where)
        return self.check_length(wave, where)

    # --- the network -----------------------------------------------------------------------------
    def _autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        """Embed ``[N, T]`` equal-length 16 kHz waveforms."""
        with torch.inference_mode(), self._autocast():
            output = self.network(torch.from_numpy(np.ascontiguousarray(batch)).to(self.device))
        return output.float().cpu().numpy()

    def windows(self, length: int) -> List[int]:
        """Start samples of the windows a ``length``-sample input is cut into (``[0]`` if not cut)."""
        if length <= self.max_samples:
            return [0]
        hop = self.max_samples - self.overlap_samples
        count = math.ceil((length - self.max_samples) / hop) + 1
        starts = np.linspace(0, length - self.max_samples, count)
        return [int(round(s)) for s in starts]

    def _embed_long(self, wave: np.ndarray) -> np.ndarray:
        starts = self.windows(len(wave))
        parts = []
        for first in range(0, len(starts), self.batch_size):
            chunk = np.stack([wave[s:s + self.max_samples] for s in starts[first:first + self.batch_size]])
            parts.append(self._run(chunk))
        return np.concatenate(parts).mean(axis=0)

    def embed_prepared(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """Embed checked 16 kHz waveforms: equal lengths are batched, long ones windowed. ``[N, D]``."""
        results: List[Optional[np.ndarray]] = [None] * len(waves)
        buckets = {}
        for index, wave in enumerate(waves):
            if len(wave) > self.max_samples:
                results[index] = self._embed_long(wave)
            else:
                buckets.setdefault(len(wave), []).append(index)
        for length in sorted(buckets):
            indices = buckets[length]
            for first in range(0, len(indices), self.batch_size):
                group = indices[first:first + self.batch_size]
                output = self._run(np.stack([waves[i] for i in group]))
                for i, row in zip(group, output):
                    results[i] = row
        if not results:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        return np.stack(results).astype(np.float32, copy=False)

    # --- public API ------------------------------------------------------------------------------
    @staticmethod
    def _finite(matrix: np.ndarray, names: Sequence[str]) -> np.ndarray:
        for row, name in zip(matrix, names):
            if not np.all(np.isfinite(row)):
                raise AudioError(f"{name}: the model produced a non-finite embedding (sample values far "
                                 "outside [-1, 1]?); check the audio's level")
        return matrix

    def embed(self, waveform, sample_rate: int = TARGET_SAMPLE_RATE) -> np.ndarray:
        """The embedding ``[D]`` of one waveform (``[T]`` or ``[channels, T]``, any rate)."""
        return self._finite(self.embed_prepared([self.prepare(waveform, sample_rate)]), ["waveform"])[0]

    def embed_file(self, path: PathLike) -> np.ndarray:
        """The embedding ``[D]`` of one audio file."""
        return self._finite(self.embed_prepared([self.load(path)]), [str(path)])[0]

    def embed_files(self, paths: Iterable[PathLike]) -> np.ndarray:
        """Embeddings ``[N, D]`` of audio files, in order; raises :class:`AudioError` on the first bad file.

        For many files with per-file error reporting and parallel decoding use
        ``redimnet embed`` (:mod:`redimnet.cli.embed`).
        """
        paths = [Path(p) for p in paths]
        waves = [self.load(p) for p in paths]
        return self._finite(self.embed_prepared(waves), [str(p) for p in paths])

    def score(self, a, b) -> float:
        """Cosine similarity of two embeddings, or of two files/waveforms (16 kHz) embedded first."""
        return cosine_score(self._as_embedding(a), self._as_embedding(b))

    def _as_embedding(self, item) -> np.ndarray:
        if isinstance(item, (str, os.PathLike)):
            return self.embed_file(item)
        array = np.asarray(item.detach().cpu() if hasattr(item, "detach") else item)
        if array.ndim == 1 and array.shape[0] == self.embed_dim:
            return array
        return self.embed(array, TARGET_SAMPLE_RATE)


def embed_directory(model: torch.nn.Module, root: PathLike, utterances: Sequence[str],
                    cache: Optional[PathLike] = None, progress: bool = True, **embedder_options):
    """Embeddings of ``root/<utterance id>`` for every id, reusing and updating the ``.npz`` ``cache``.

    Returns ``(ids, matrix)``.  Raises :class:`AudioError` listing the files
    that could not be embedded (the others are saved to the cache first).
    Used by ``redimnet eval --audio-root``.
    """
    from tqdm import tqdm

    from .embeddings_io import load_embeddings, save_embeddings

    root = Path(root)
    known = {}
    if cache is not None and Path(cache).exists():
        ids, matrix = load_embeddings(cache)
        known = dict(zip(ids.tolist(), matrix))
    wanted = list(dict.fromkeys(str(u) for u in utterances))
    missing = [u for u in wanted if u not in known]
    failures = []
    if missing:
        embedder = Embedder(model, **embedder_options)
        for uid in tqdm(missing, unit="file", disable=not progress, desc="embedding"):
            try:
                known[uid] = embedder.embed_file(root / uid)
            except AudioError as error:
                failures.append(str(error))
        if cache is not None and known:
            ids = sorted(known)
            save_embeddings(cache, ids, np.stack([known[i] for i in ids]))
    if failures:
        shown = "; ".join(failures[:5]) + (f"; and {len(failures) - 5} more" if len(failures) > 5 else "")
        raise AudioError(f"{len(failures)} of {len(wanted)} file(s) under {root} could not be embedded: {shown}")
    ids = [u for u in wanted]
    return np.asarray(ids), np.stack([known[u] for u in ids]).astype(np.float32)
