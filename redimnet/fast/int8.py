"""int8 CPU inference: the network's convolutions and matrix products in 8-bit integers.

How a model becomes an int8 network:

1. it is exported to ONNX with its front end (:func:`redimnet.embedding.export.export_onnx`);
2. onnxruntime's quantisation tool (``onnxruntime.quantization.quantize_static``)
   inserts quantise/dequantise pairs ("QDQ" format) around every convolution and
   matrix product of the backbone and of the attentive pooling, and around the stage
   mixers' weighted sums -- weights int8 per output channel, activations int8 per
   tensor, both symmetric -- with activation
   ranges (min/max) measured by running *calibration speech* through the float model.
   The front end (STFT, mel filters, logarithm) and the embedding layer stay float32: the front
   end's dynamic range does not fit 8 bits, and the pooled statistics that feed the
   embedding layer have a few large features that would squeeze every other one into
   a handful of levels (quantising that one layer took the trained test model's
   embeddings from cosine 0.9995 to 0.96 of float32); both cost little time;
3. OpenVINO compiles the quantised graph: its CPU plugin runs each QDQ-wrapped
   convolution and product as one int8 kernel (AVX-512 VNNI, AVX2 or ARM dot
   products) and everything else in float32.

The quantised ONNX file is also what ``redimnet export --format onnx --precision
int8`` writes: a standard QDQ graph that other runtimes (onnxruntime, TensorRT)
read as well.

Calibration speech (:func:`calibration_waves`): by default the speech shipped
with the package (:mod:`redimnet.examples`) plus a few minutes of synthetic
speech made deterministically by :mod:`redimnet.audio.synthetic`; or files the user
points at.  Quantising takes seconds to a minute, so the quantised file is kept in the
weights cache (``<cache>/int8/``), keyed by the model's weights, the calibration
audio and the versions of the tools; the next run loads it.

Speed and accuracy measured against the float32 optimised path, and why this
engine rather than PyTorch's own quantisation or onnxruntime as the runtime:
``docs/performance.md``, "int8 inference".
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from .._utils.optional import require
from ..errors import RedimnetError

PathLike = Union[str, os.PathLike]

__all__ = [
    "CALIBRATION_SECONDS",
    "Int8Error",
    "Int8Network",
    "calibration_waves",
    "int8_network",
    "quantize_onnx",
]

CALIBRATION_SECONDS = 180.0
"""The most calibration audio used (seconds); user files beyond it are sampled evenly."""

_WINDOW_SECONDS = 6.0  # calibration inputs are cut into windows of at most this length
_SHORTEST_SECONDS = 1.0  # shorter pieces are dropped
_SYNTHETIC_SPEAKERS = 24  # default calibration: this many synthetic voices ...
_SYNTHETIC_SECONDS = 6.0  # ... of this many seconds each, plus the shipped examples
_SYNTHETIC_SEED = 2025
_DEFAULT_CALIBRATION = f"default:{_SYNTHETIC_SPEAKERS}x{_SYNTHETIC_SECONDS:g}s:{_SYNTHETIC_SEED}"  # cache key part
# the quantisation recipe (cache key): a new value re-quantises the files users have cached
_SCHEME = "qdq-s8s8-perchannel-minmax-backbone-pool-mixers-widegroups16-summedgroups-rows5d-stemrows-v6"
_QUANTIZED_OPS = ["Conv", "MatMul", "Gemm"]
# node names (in the exported graph) of the parts quantised: the backbone and the pooling's convolutions
_QUANTIZED_PREFIXES = ("/backbone/", "/pool/")
# the stage mixers' weighted sums (every earlier stage output times per-row weights, added up) are
# quantised too: in float32 they read and write whole feature maps and took 9-13 % of the int8 time
_MIXER_OPS = ["Mul", "Add"]
_MIXER_PART = "/mixer/"
SAMPLE_RATE = 16000
GROUP_WIDTH = 16
"""Grouped convolutions with fewer input channels per group are rewritten with this many (see :func:`widen_groups`)."""


class Int8Error(RedimnetError):
    """The model cannot run in int8 (unsupported device, unreadable calibration audio, failed quantisation)."""


# --- calibration speech ------------------------------------------------------------------------------
def _windows(wave: np.ndarray, limit: int) -> List[np.ndarray]:
    step = int(_WINDOW_SECONDS * SAMPLE_RATE)
    pieces = [wave[start : start + step] for start in range(0, len(wave), step)]
    return [p.astype(np.float32) for p in pieces if len(p) >= _SHORTEST_SECONDS * SAMPLE_RATE][:limit]


def _default_waves() -> List[np.ndarray]:
    from ..audio import read_audio
    from ..audio.synthetic import record, synthesize, voice_for
    from ..examples import example_files

    waves: List[np.ndarray] = []
    for path in example_files().values():
        waves.extend(_windows(read_audio(path), 4))
    rng = np.random.default_rng(_SYNTHETIC_SEED)
    for speaker in range(_SYNTHETIC_SPEAKERS):
        speech = synthesize(voice_for(_SYNTHETIC_SEED, speaker), _SYNTHETIC_SECONDS, rng)
        waves.append(record(speech, rng, float(rng.uniform(-0.4, 0.4)), float(rng.uniform(8.0, 35.0))))
    return waves


def _file_waves(sources: Sequence[PathLike]) -> List[np.ndarray]:
    from ..audio import AudioError, AudioFile, iter_inputs

    try:
        paths = [path for _, path in iter_inputs(list(sources))]
    except AudioError as error:
        raise Int8Error(f"calibration audio: {error}") from None
    if not paths:
        raise Int8Error("calibration audio: no audio files given")
    budget = int(CALIBRATION_SECONDS * SAMPLE_RATE)
    per_file = max(int(_SHORTEST_SECONDS * SAMPLE_RATE), budget // len(paths))
    waves: List[np.ndarray] = []
    for path in paths:
        try:
            audio = AudioFile(path)
            kept: List[np.ndarray] = []
            samples = 0
            for block in audio.blocks():  # memory stays bounded whatever the file's length
                kept.append(block[: per_file - samples])
                samples += len(kept[-1])
                if samples >= per_file:
                    break
        except AudioError as error:
            raise Int8Error(f"calibration audio: {error}; leave the file out or convert it") from None
        if samples:
            waves.extend(_windows(np.concatenate(kept), per_file))
    if not waves:
        raise Int8Error(
            f"calibration audio: every file is shorter than {_SHORTEST_SECONDS:g} s; give a few minutes of speech"
        )
    return _evenly(waves, budget)


def _evenly(waves: List[np.ndarray], budget: int) -> List[np.ndarray]:
    """At most ``budget`` samples of ``waves``, windows taken evenly across the list."""
    total = sum(len(w) for w in waves)
    if total <= budget:
        return waves
    keep = max(1, int(len(waves) * budget / total))
    return [waves[int(i)] for i in np.linspace(0, len(waves) - 1, keep).round()]


def calibration_waves(sources: Optional[Sequence[PathLike]] = None) -> List[np.ndarray]:
    """16 kHz mono windows (float32, 1-6 s each) to measure activation ranges on.

    Without ``sources``: the shipped example speech plus synthetic speech of
    24 voices (deterministic, about 2.6 minutes in all).  With ``sources`` (audio
    files and folders): up to :data:`CALIBRATION_SECONDS` of them, spread evenly
    over the files.  Speech like the audio the model will embed gives the best ranges.

    Raises:
        Int8Error: a file cannot be read, or nothing long enough was given.
    """
    return _default_waves() if sources is None else _file_waves(sources)


def _fingerprint(waves: Sequence[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for wave in waves:
        digest.update(np.ascontiguousarray(wave, dtype=np.float32).tobytes())
        digest.update(str(len(wave)).encode())
    return digest.hexdigest()[:16]


# --- quantisation ------------------------------------------------------------------------------------
@contextmanager
def _quiet() -> Iterator[None]:
    """Silence the quantisation tool's log lines and warnings (progress notes, not problems)."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


class _Reader:
    """onnxruntime's calibration data reader protocol: one input dict per call, then None."""

    def __init__(self, inputs: Sequence[np.ndarray], name: str):
        self._inputs = iter(list(inputs))
        self._name = name

    def get_next(self):
        item = next(self._inputs, None)
        return None if item is None else {self._name: item}


def _calibration_inputs(model: nn.Module, waves: Sequence[np.ndarray], features_in: bool) -> List[np.ndarray]:
    if not features_in:
        return [np.ascontiguousarray(w[None], dtype=np.float32) for w in waves]
    network: Any = model.eval()  # either family's network: both have ``features``
    inputs = []
    with torch.inference_mode():
        for wave in waves:
            inputs.append(network.features(torch.from_numpy(np.ascontiguousarray(wave[None]))).numpy())
    return inputs


def quantize_onnx(
    model: nn.Module,
    path: PathLike,
    calibration: Optional[Sequence[np.ndarray]] = None,
    features_in: bool = False,
) -> Path:
    """Write ``model`` as an int8 (QDQ) ONNX file at ``path`` and return the path.

    Input ``waveform`` ``[N, T]`` (``features`` ``[N, F, frames]`` with
    ``features_in``), output ``embedding``, dynamic batch and time axes, like
    :func:`redimnet.embedding.export.export_onnx`.  ``calibration``: 16 kHz waveforms
    (default :func:`calibration_waves`).  Needs onnx and onnxruntime (``pip install
    "redimnet[export]"``); the file runs in any ONNX runtime.
    """
    from ..embedding.export import ONNX_INPUTS, export_onnx

    require("onnx", "int8 quantisation")
    require("onnxruntime", "int8 quantisation")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from .._utils.fileio import atomic_write

    path = Path(path)
    waves = calibration_waves() if calibration is None else list(calibration)
    if not waves:
        raise Int8Error("no calibration audio given")
    inputs = _calibration_inputs(model, waves, features_in)
    with tempfile.TemporaryDirectory(prefix="redimnet-int8-") as scratch:
        plain = export_onnx(model, Path(scratch) / "float.onnx", features_in=features_in)
        split_summed_groups(plain)
        widen_groups(plain)
        prepared = Path(scratch) / "prepared.onnx"
        quantized = Path(scratch) / "int8.onnx"
        with _quiet():
            quant_pre_process(str(plain), str(prepared), skip_symbolic_shape=True)
            import onnx

            graph = onnx.load(str(prepared), load_external_data=False).graph
            kept_float = [node.name for node in graph.node if not _quantised_node(node)]
            if len(kept_float) == len(graph.node):
                raise Int8Error("int8 quantisation: the exported graph has no backbone nodes to quantise")
            try:
                quantize_static(
                    str(prepared),
                    str(quantized),
                    _Reader(inputs, ONNX_INPUTS[features_in]),
                    quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=_QUANTIZED_OPS + _MIXER_OPS,
                    per_channel=True,
                    activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    nodes_to_exclude=kept_float,
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={
                        "ActivationSymmetric": True,
                        "WeightSymmetric": True,
                        "CalibMaxIntermediateOutputs": 4,  # bounds the calibration's memory
                    },
                )
            except Exception as error:  # the tool raises plain exceptions of many kinds
                raise Int8Error(f"int8 quantisation failed: {type(error).__name__}: {error}") from error
        with atomic_write(path) as stream, open(quantized, "rb") as data:
            stream.write(data.read())
    return path


def _quantised_node(node: Any) -> bool:
    """Whether a node of the exported graph is quantised: the backbone's and the pooling's
    convolutions and products, and the backbone's stage mixers."""
    if not node.name.startswith(_QUANTIZED_PREFIXES):
        return False
    if node.op_type in _MIXER_OPS:
        return node.name.startswith("/backbone/") and _MIXER_PART in node.name
    return node.op_type in _QUANTIZED_OPS


def _rewrite_convs(path: PathLike, rewrite: Any) -> int:
    """Apply ``rewrite(graph, node, kernel, groups)`` to every convolution of the ONNX file at
    ``path`` whose weights are a constant (``kernel``, a numpy copy); it returns the nodes that
    replace ``node`` (after changing the weights' tensor in ``graph`` as needed), or None to keep
    it.  The file is saved, with its stored intermediate shapes dropped, when anything changed;
    returns how many convolutions were rewritten."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    weights = {tensor.name: tensor for tensor in graph.initializer}
    nodes: List[Any] = []
    rewritten = 0
    for node in list(graph.node):
        tensor = weights.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
        groups = next((a.i for a in node.attribute if a.name == "group"), 1)
        replaced = None if tensor is None else rewrite(graph, node, numpy_helper.to_array(tensor), groups)
        nodes.extend([node] if replaced is None else replaced)
        rewritten += replaced is not None
    if rewritten:
        graph.ClearField("node")
        graph.node.extend(nodes)
        graph.ClearField("value_info")  # shapes of rewritten tensors may have changed; inferred again
        onnx.save(model, str(path))
    return rewritten


def _set_weights(graph: Any, name: str, kernel: np.ndarray) -> None:
    from onnx import numpy_helper

    tensor = next(t for t in graph.initializer if t.name == name)
    tensor.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(kernel), name))


def split_summed_groups(path: PathLike) -> int:
    """Rewrite the grouped convolutions of the ONNX file at ``path`` that have one output channel
    per group and several input channels per group (b0's stage-end squeezes: 2-3 inputs per
    output) as a depthwise convolution over the inputs followed by a 1x1 convolution that adds
    up each group's channels (weights 0 and 1), in place; returns how many were rewritten.

    Same numbers up to float rounding.  OpenVINO's int8 kernels for such narrow groups are slow
    and gain little from a second thread (b0's three squeezes: 4.0 ms of a 60 ms call on one
    thread, 2.8 ms on two); its depthwise and 1x1 kernels take 2.9 and 1.6 ms
    (``docs/performance.md``).  The float32 path splits them too
    (:class:`redimnet.fast.modules.SummedDepthwiseConv`).
    """
    from onnx import helper, numpy_helper

    def split(graph: Any, node: Any, kernel: np.ndarray, groups: int) -> Optional[List[Any]]:
        per_group = kernel.shape[1]
        if groups <= 1 or kernel.shape[0] != groups or per_group == 1:
            return None
        inputs = groups * per_group
        # input channel o * per_group + j keeps its own spatial kernel W[o, j]
        _set_weights(graph, node.input[1], kernel.reshape(inputs, 1, *kernel.shape[2:]))
        sums = np.zeros((groups, inputs) + (1,) * (kernel.ndim - 2), dtype=kernel.dtype)
        for out in range(groups):
            sums[out, out * per_group : (out + 1) * per_group] = 1.0
        sums_name = f"{node.input[1]}_group_sums"
        graph.initializer.append(numpy_helper.from_array(sums, sums_name))
        middle = f"{node.output[0]}_per_input"
        depthwise = helper.make_node("Conv", [node.input[0], node.input[1]], [middle], name=f"{node.name}_per_input")
        for attribute in node.attribute:
            if attribute.name == "group":
                attribute = helper.make_attribute("group", inputs)
            depthwise.attribute.append(attribute)
        adds = helper.make_node("Conv", [middle, sums_name, *node.input[2:]], list(node.output), name=node.name)
        return [depthwise, adds]

    return _rewrite_convs(path, split)


def widen_groups(path: PathLike, width: int = GROUP_WIDTH) -> int:
    """Rewrite the grouped convolutions of the ONNX file at ``path`` that have fewer than ``width``
    input channels per group (but more than one: depthwise ones stay) as convolutions with ``width``
    channels per group, in place; returns how many were rewritten.

    Each new group holds several old groups side by side, its weights block-diagonal (zeros between
    the old groups), so the outputs are the same numbers.  It costs more multiplications, but
    OpenVINO's int8 kernels for narrow groups (b2's 4 channels per group) are slow: b2's 3x3
    grouped convolutions took a third of its int8 time; with 16 channels per group they run on
    the same kernels as b5's and the whole network got 1.2-1.25x faster (``docs/performance.md``).
    """
    from onnx import helper

    def widen(graph: Any, node: Any, kernel: np.ndarray, groups: int) -> Optional[List[Any]]:
        per_group, channels = kernel.shape[1], kernel.shape[1] * groups
        if groups <= 1 or per_group == 1 or per_group >= width:
            return None
        wider = max(n for n in range(per_group, min(width, channels) + 1, per_group) if channels % n == 0)
        if wider == per_group:
            return None
        merged = wider // per_group  # old groups per new group
        outputs = kernel.shape[0] // groups  # output channels per old group
        dense = np.zeros((kernel.shape[0], wider) + kernel.shape[2:], dtype=kernel.dtype)
        for old in range(groups):
            column = (old % merged) * per_group
            rows = slice(old * outputs, (old + 1) * outputs)
            dense[rows, column : column + per_group] = kernel[rows]
        _set_weights(graph, node.input[1], dense)
        for attribute in node.attribute:
            if attribute.name == "group":
                attribute.CopyFrom(helper.make_attribute("group", channels // wider))
        return [node]

    return _rewrite_convs(path, widen)


def _cache_key(model: nn.Module, calibration: str, features_in: bool) -> str:
    import onnxruntime

    from ..models.fingerprint import model_fingerprint

    parts = [
        model_fingerprint(model),
        calibration,
        _SCHEME,
        "features" if features_in else "waveform",
        torch.__version__,
        onnxruntime.__version__,
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def _cache_folder(cache_dir: Optional[PathLike]) -> Optional[Path]:
    """``<cache>/int8`` if it can be created and written, else None (quantise into a temporary folder)."""
    from ..hub.pretrained import default_cache_dir

    folder = (Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()) / "int8"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None


# --- the runtime -------------------------------------------------------------------------------------
def openvino_config(threads: int) -> Dict[str, Any]:
    """The settings :class:`Int8Network` compiles its model with, for ``threads`` CPU threads."""
    return {
        "INFERENCE_NUM_THREADS": int(threads),
        "PERFORMANCE_HINT": "LATENCY",
        # what is not int8: float32 (OpenVINO would pick bf16 on CPUs that have it)
        "INFERENCE_PRECISION_HINT": "f32",
        "ENABLE_CPU_PINNING": False,  # pinned threads stall when other programs share the cores
    }


class Int8Network(nn.Module):
    """An int8 ONNX model run by OpenVINO on the CPU: ``[N, T]`` waveforms -> ``[N, D]`` embeddings.

    Behaves like the float networks for the embedding pipeline (a module taking and
    returning float32 CPU tensors); it has no parameters and cannot be trained.
    ``threads``: the CPU threads OpenVINO uses (default ``torch.get_num_threads()``).
    What is not int8 runs in float32, also on CPUs where OpenVINO would pick bfloat16.
    """

    def __init__(self, path: PathLike, threads: Optional[int] = None):
        super().__init__()
        openvino = require("openvino", "int8 inference")
        self.path = Path(path)
        self.threads = int(threads or torch.get_num_threads())
        try:
            core = openvino.Core()
            self._compiled = core.compile_model(core.read_model(str(self.path)), "CPU", openvino_config(self.threads))
        except Exception as error:  # OpenVINO raises RuntimeError subclasses with its own text
            raise Int8Error(f"{self.path}: OpenVINO cannot compile this model: {error}") from error
        self._request = self._compiled.create_infer_request()
        self._lock = threading.Lock()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            raise Int8Error("int8 inference runs on the CPU; move the input to the CPU")
        data = np.ascontiguousarray(x.detach().float().numpy())
        with self._lock:  # one inference request, shared by the threads that call this module
            output = self._request.infer({0: data})[0]
            return torch.from_numpy(np.array(output, dtype=np.float32, copy=True))

    def __deepcopy__(self, memo):  # compiled models cannot be copied; a copy shares them (read-only)
        return self


def int8_network(
    model: nn.Module,
    calibration: Optional[Sequence[PathLike]] = None,
    threads: Optional[int] = None,
    cache_dir: Optional[PathLike] = None,
) -> Int8Network:
    """The int8 form of ``model`` (either family), quantised once and then loaded from the cache.

    Args:
        model: a float network (plain; it is not changed).
        calibration: audio files or folders to calibrate on (default: the shipped and
            synthetic speech of :func:`calibration_waves`).
        threads: CPU threads for inference (default ``torch.get_num_threads()``).
        cache_dir: the weights cache (default: that of :func:`redimnet.hub.pretrained.default_cache_dir`);
            the quantised file goes to its ``int8/`` folder, or to a temporary folder when
            that cannot be written.

    Raises:
        MissingDependencyError: onnx, onnxruntime or openvino is missing (``pip install "redimnet[int8]"``).
        Int8Error: calibration audio unreadable, or quantisation failed.
    """
    require("openvino", "int8 inference")
    require("onnx", "int8 inference")
    require("onnxruntime", "int8 inference")
    # the default calibration audio is the same on every run: it is made only when quantising
    waves = None if calibration is None else calibration_waves(calibration)
    folder = _cache_folder(cache_dir)
    if folder is None:
        with tempfile.TemporaryDirectory(prefix="redimnet-int8-") as scratch:
            return Int8Network(quantize_onnx(model, Path(scratch) / "model.onnx", waves), threads)
    source = _DEFAULT_CALIBRATION if waves is None else _fingerprint(waves)
    target = folder / f"{_cache_key(model, source, False)}.onnx"
    if not target.is_file():  # written whole or not at all: concurrent processes may race, harmlessly
        quantize_onnx(model, target, waves)
    return Int8Network(target, threads)
