"""The :class:`Embedder`: a ReDimNet model ready to turn audio into speaker embeddings.

The Embedder owns the model and the options; the work -- reading in blocks,
resampling, cutting long recordings into overlapping windows (default: over
60 s, windows of 60 s overlapping by 10 s, embeddings averaged), batching
equal-length windows, refusing silence -- is done by the one embedding
pipeline, :mod:`redimnet.embedding.pipeline`, which ``redimnet embed``, ``redimnet
eval --audio-root`` and training validation use as well.  Inputs up to
``max_seconds`` are embedded whole, never padded or cropped; memory is
bounded by the window length whatever the length of a recording.
"""

import os
import warnings
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, Union, cast

import numpy as np
import torch

from .._utils import threads
from .._utils.names import UnsafeNameError, check_relative_id
from ..audio import TARGET_SAMPLE_RATE, AudioError, check_signal_level, prepare_waveform, read_audio
from ..errors import InvalidArgumentError
from .pipeline import EmbeddingPipeline, Result, Windowing, too_short
from .similarity import cosine_score

PathLike = Union[str, os.PathLike]

_PRECISIONS = {
    "float32": None,
    "fp32": None,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "int8": None,  # not autocast: a quantised network (redimnet.fast.int8)
}
PRECISIONS = ("float32", "float16", "bfloat16", "int8")
"""The precisions an :class:`Embedder` (and ``--precision``) offers."""


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
            if isinstance(output, tuple):  # return_all_outputs: (embedding, 1D maps)
                output = output[0]
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
    from ..frontend.mel import MelSpectrogramFrontEnd
    from ..frontend.tf_mel import TFMelFrontEnd

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

    Embeddings are returned as float32 numpy arrays, raw (not normalised).

    Args:
        model: the network (either family; plain or already optimised).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... (default: cuda when available, else cpu).
        precision: ``"float32"`` (default); ``"float16"`` or ``"bfloat16"`` autocast (float16 only on
            GPU); ``"int8"``: the network quantised to 8-bit integers, run by OpenVINO on the
            CPU (needs ``pip install "redimnet[int8]"``; see :mod:`redimnet.fast.int8`; the
            first use of a model quantises it, about half a minute, later ones load it from the cache).
        optimize: pass the model through ``redimnet.fast.optimize.optimize_for_inference``; a
            model that cannot be optimised runs in its plain form with an
            ``OptimizationWarning`` naming the block and the reason.
        max_seconds: longer inputs are cut into windows of this length (see the module documentation).
        overlap_seconds: overlap of those windows.
        channel: pick one channel (0-based) instead of averaging them.
        trim_silence: cut leading and trailing silence.
        batch_size: the most equal-length waveforms run together.
        keep_freed_memory: apply :func:`redimnet.fast.optimize.keep_freed_memory` (process-wide
            glibc malloc setting: repeated forward passes reuse memory instead of
            page-faulting, which is faster on CPU; freed memory stays with the process).
        strict: raise ``OptimizeError`` instead of warning when optimisation fails.
        calibration: with ``precision="int8"``: audio files or folders to measure the
            activation ranges on (default: shipped and synthetic speech).
        cache_dir: with ``precision="int8"``: where the quantised model is kept (default: the
            weights cache).
        tune_threads: on the CPU, let the pipeline change PyTorch's thread count pass by pass to
            the cheapest one measured (:class:`redimnet._utils.threads.ThreadTuner`; what the command
            line does unless ``--threads`` or ``OMP_NUM_THREADS`` is given).  The count is process-wide.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        device: Optional[str] = None,
        precision: str = "float32",
        optimize: bool = True,
        max_seconds: float = 60.0,
        overlap_seconds: float = 10.0,
        channel: Optional[int] = None,
        trim_silence: bool = False,
        batch_size: int = 16,
        keep_freed_memory: bool = True,
        strict: bool = False,
        calibration: Optional[Sequence[PathLike]] = None,
        cache_dir: Optional[PathLike] = None,
        tune_threads: bool = False,
    ):
        if precision not in _PRECISIONS:
            raise InvalidArgumentError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        if calibration is not None and precision != "int8":
            raise InvalidArgumentError("calibration audio is only used with precision int8")
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
        self.precision = "int8" if precision == "int8" else str(self.autocast_dtype or torch.float32).split(".")[-1]
        if self.precision == "int8" and self.device.type != "cpu":
            raise InvalidArgumentError(
                f"int8 inference runs on the CPU, not on {device!r}; use --device cpu, or float16/bfloat16 on a GPU"
            )
        if not max_seconds > 0 or not overlap_seconds >= 0 or overlap_seconds >= max_seconds:
            raise InvalidArgumentError(
                f"need max_seconds > overlap_seconds >= 0, got max_seconds={max_seconds}, "
                f"overlap_seconds={overlap_seconds}"
            )
        if int(batch_size) < 1:
            raise InvalidArgumentError(f"batch_size must be at least 1, got {batch_size}")
        self.model = model.eval().to(self.device)
        self.min_samples = minimum_samples(self.model)
        self.network = self.model
        if self.precision == "int8":
            from ..fast.int8 import int8_network

            self.network = int8_network(self.model, calibration=calibration, cache_dir=cache_dir)
        elif optimize:
            try:
                from ..fast.optimize import OptimizeError, optimize_for_inference, warn_not_optimized
            except ImportError:
                pass
            else:
                try:
                    self.network = optimize_for_inference(self.model, strict=True)
                except OptimizeError as error:  # the plain model works: say why it is used
                    if strict:
                        raise
                    warn_not_optimized(error)
        self.optimized = self.network is not self.model
        if keep_freed_memory and self.device.type == "cpu":
            from ..fast.allocator import keep_freed_memory as keep

            keep()
        self.max_samples = int(round(max_seconds * TARGET_SAMPLE_RATE))
        self.overlap_samples = int(round(overlap_seconds * TARGET_SAMPLE_RATE))
        if self.max_samples < self.min_samples:
            raise InvalidArgumentError(
                f"max_seconds={max_seconds} is shorter than the shortest input the model takes "
                f"({self.min_samples} samples)"
            )
        self.channel = channel
        self.trim_silence = trim_silence
        self.batch_size = int(batch_size)
        self.pipeline = EmbeddingPipeline(
            self.network,
            self.device,
            Windowing(self.max_samples, self.overlap_samples),
            self.min_samples,
            batch_size=self.batch_size,
            channel=channel,
            trim=trim_silence,
            autocast_dtype=self.autocast_dtype,
            # OpenVINO's threads are set when the int8 model is compiled: only the float model's are tuned
            tuner=threads.tuner() if tune_threads and self.device.type == "cpu" and self.precision != "int8" else None,
        )

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
            raise too_short(len(wave), self.min_samples, self.trim_silence, where)
        return wave

    def load(self, path: PathLike) -> np.ndarray:
        """Read and check an audio file: mono float32 16 kHz, long enough, not silent (whole file in memory)."""
        wave = self.check_length(read_audio(path, channel=self.channel, trim=self.trim_silence), str(path))
        check_signal_level(wave, str(path))
        return wave

    def prepare(self, waveform, sample_rate: int = TARGET_SAMPLE_RATE, where: str = "waveform") -> np.ndarray:
        """Check and convert an in-memory waveform (see :func:`redimnet.audio.prepare_waveform`)."""
        wave = prepare_waveform(waveform, sample_rate, channel=self.channel, trim=self.trim_silence, where=where)
        check_signal_level(self.check_length(wave, where), where)
        return wave

    def windows(self, length: int) -> List[int]:
        """Start samples of the windows a ``length``-sample input is cut into (``[0]`` if not cut)."""
        return self.pipeline.windowing.starts(length)

    # --- public API ------------------------------------------------------------------------------
    def run(self, inputs: Sequence[Union[PathLike, np.ndarray]], workers: int = 0) -> Iterator[Result]:
        """Embed many inputs, one :class:`~.pipeline.Result` each (embedding or reason), as they complete.

        ``inputs``: audio file paths or checked 16 kHz waveforms; a bad input
        is reported in its result and the others go on.  ``workers``: decoding
        processes (see :meth:`redimnet.embedding.pipeline.EmbeddingPipeline.run`).
        """
        return self.pipeline.run(inputs, workers=workers)

    def _embed_all(self, inputs: Sequence, names: Sequence[str], workers: int = 0) -> np.ndarray:
        """``[N, D]`` for ``inputs`` in order; raises :class:`AudioError` for the first (by order) that failed."""
        rows: List[Optional[np.ndarray]] = [None] * len(inputs)
        errors = {}
        for result in self.run(inputs, workers=workers):
            if result.error is not None:
                errors[result.index] = result.error
            else:
                rows[result.index] = result.embedding
        if errors:
            first = min(errors)
            raise AudioError(f"{names[first]}: {errors[first]}")
        if not rows:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        return np.stack(cast(List[np.ndarray], rows)).astype(np.float32, copy=False)  # no input failed

    def embed_prepared(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """Embed checked 16 kHz waveforms: equal lengths are batched, long ones windowed. ``[N, D]``."""
        return self._embed_all(list(waves), ["waveform"] * len(waves))

    def embed(self, waveform, sample_rate: int = TARGET_SAMPLE_RATE) -> np.ndarray:
        """The embedding ``[D]`` of one waveform (``[T]`` or ``[channels, T]``, any rate)."""
        wave = prepare_waveform(waveform, sample_rate, channel=self.channel, trim=self.trim_silence)
        return self._embed_all([wave], ["waveform"])[0]

    def embed_file(self, path: PathLike) -> np.ndarray:
        """The embedding ``[D]`` of one audio file."""
        return self._embed_all([Path(path)], [str(path)])[0]

    def embed_files(self, paths: Iterable[PathLike], workers: int = 0) -> np.ndarray:
        """Embeddings ``[N, D]`` of audio files, in order; raises :class:`AudioError` naming the first bad file.

        For per-file error reporting use :meth:`run` (or ``redimnet embed``).
        """
        paths = [Path(p) for p in paths]
        return self._embed_all(paths, [str(p) for p in paths], workers=workers)

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


def embed_directory(
    model: torch.nn.Module,
    root: PathLike,
    utterances: Sequence[str],
    cache: Optional[PathLike] = None,
    progress: bool = True,
    workers: int = 0,
    **embedder_options,
):
    """Embeddings of ``root/<utterance id>`` for every id, reusing and updating the ``.npz`` ``cache``.

    The cache records the model's fingerprint; a cache written by another model is refused
    (:class:`EmbeddingsFileError`), never reused.

    ``workers``: decoding processes (see :meth:`Embedder.run`).
    Returns ``(ids, matrix)``.  Raises :class:`AudioError` listing the files
    that could not be embedded (the others are saved to the cache first).
    Used by ``redimnet eval --audio-root``.
    """
    from tqdm import tqdm

    from ..models.fingerprint import model_fingerprint
    from .io import check_cache_model, load_embeddings, save_embeddings

    root = Path(root)
    known = {}
    fingerprint = model_fingerprint(model)
    if cache is not None and Path(cache).exists():
        check_cache_model(cache, fingerprint)
        stored_ids, matrix = load_embeddings(cache)
        known = dict(zip(stored_ids.tolist(), matrix))
    wanted = list(dict.fromkeys(str(u) for u in utterances))
    failures = []
    missing = []
    for uid in (u for u in wanted if u not in known):
        try:  # ids come from trial lists: nothing outside the audio root is read
            check_relative_id(uid, "trial utterance id")
        except UnsafeNameError as error:
            failures.append(str(error))
        else:
            missing.append(uid)
    if missing:
        embedder = Embedder(model, **embedder_options)
        with tqdm(total=len(missing), unit="file", disable=not progress, desc="embedding") as bar:
            for result in embedder.run([root / uid for uid in missing], workers=workers):
                path = root / missing[result.index]
                if result.error is not None:
                    failures.append(f"{path}: {result.error}")
                else:
                    known[missing[result.index]] = result.embedding
                bar.update(1)
        if cache is not None and known:
            ids = sorted(known)
            save_embeddings(cache, ids, np.stack([known[i] for i in ids]), model=fingerprint)
    if failures:
        shown = "; ".join(failures[:5]) + (f"; and {len(failures) - 5} more" if len(failures) > 5 else "")
        raise AudioError(f"{len(failures)} of {len(wanted)} file(s) under {root} could not be embedded: {shown}")
    ids = [u for u in wanted]
    return np.asarray(ids), np.stack([known[u] for u in ids]).astype(np.float32)
