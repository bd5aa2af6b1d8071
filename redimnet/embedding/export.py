"""Export a ReDimNet to ONNX or TorchScript, front end included (or features in).

``torch.stft`` does not export to ONNX reliably, so the exported "pt" front end
computes the same power spectrum with one strided ``conv1d`` whose kernels are
the windowed DFT basis (:class:`DFTMelFrontEnd`; reflect padding as in the
centred STFT).  The "tf" front end is already made of convolutions and is
exported as it is.  Batch and time axes are dynamic in both formats.

>>> import redimnet, tempfile, os
>>> from redimnet.embedding.export import export_torchscript
>>> path = os.path.join(tempfile.mkdtemp(), "b0.ts")
>>> _ = export_torchscript(redimnet.build("b0").eval(), path)
"""

import copy
import math
import warnings
from pathlib import Path
from typing import Any, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from .._utils.optional import require
from ..errors import RedimnetError
from ..frontend.mel import MelSpectrogramFrontEnd
from ..frontend.preemphasis import normalize_level
from ..models.redimnet.network import ReDimNet

PathLike = Union[str, Path]
FORMATS = ("onnx", "torchscript")
# The exported ONNX model's input name, by features_in (the command line says the same words).
ONNX_INPUTS = {False: "waveform", True: "features"}
# Shapes used to trace the model; the exported files accept any batch size and length.
_EXAMPLE_BATCH, _EXAMPLE_SAMPLES = 2, 8000


class ExportError(RedimnetError):
    """The model could not be exported (missing package, unsupported model, bad path)."""


def _stft_dft_kernels(n_fft: int, window: torch.Tensor) -> torch.Tensor:
    """``[2 * (n_fft // 2 + 1), 1, win_length]``: windowed cosine rows, then sine rows.

    ``torch.stft`` centres a shorter window inside the ``n_fft`` frame; the
    kernels start at the window's first sample, so the caller skips the same
    offset of the padded signal.
    """
    win_length = window.numel()
    offset = (n_fft - win_length) // 2
    bins = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
    samples = torch.arange(win_length, dtype=torch.float64)[None, :] + offset
    phase = 2.0 * math.pi * bins * samples / n_fft
    w = window.double()[None, :]
    kernels = torch.cat([torch.cos(phase) * w, torch.sin(phase) * w])
    return kernels.float().unsqueeze(1)


class DFTMelFrontEnd(nn.Module):
    """The "pt" front end (:class:`~redimnet.frontend.MelSpectrogramFrontEnd`) built from
    convolutions only: same features up to float rounding, exportable to ONNX."""

    def __init__(self, frontend: MelSpectrogramFrontEnd):
        super().__init__()
        source = copy.deepcopy(frontend).eval()
        self.n_fft = source.n_fft
        self.hop_length = source.hop_length
        self.offset = (source.n_fft - source.win_length) // 2
        self.signal_eps = source.signal_eps
        self.log_floor = source.log_floor
        self.preemphasis = source.preemphasis
        self.spec_norm = source.spec_norm
        self.dft: torch.Tensor
        self.register_buffer("dft", _stft_dft_kernels(source.n_fft, source.window))
        self.mel_filters: torch.Tensor
        self.register_buffer("mel_filters", source.mel_filters.t().contiguous())  # [n_mels, bins]

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = wave.float()
        if self.signal_eps is not None:
            x = normalize_level(x, self.signal_eps)
        if self.preemphasis is not None:
            x = self.preemphasis(x)
        frames = x.shape[-1] // self.hop_length + 1
        half = self.n_fft // 2
        x = F.pad(x.unsqueeze(1), (half, half), mode="reflect")[:, :, self.offset :]
        spec = F.conv1d(x, self.dft, stride=self.hop_length)[:, :, :frames]
        bins = spec.shape[1] // 2
        power = spec[:, :bins].square() + spec[:, bins:].square()
        x = torch.log(torch.matmul(self.mel_filters, power) + self.log_floor)
        if isinstance(self.spec_norm, nn.Module):
            x = self.spec_norm(x)
        elif self.spec_norm == "mn":
            x = x - x.mean(dim=-1, keepdim=True)
        elif self.spec_norm == "mvn":
            x = (x - x.mean(dim=-1, keepdim=True)) / (x.std(dim=-1, keepdim=True) + 1e-8)
        return x.to(wave.dtype)


class _PlainFrontEnd(nn.Module):
    """The model's own front end, without the no-grad/autocast context (tracing-friendly)."""

    def __init__(self, frontend: nn.Module):
        super().__init__()
        self.frontend = frontend

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        f: Any = self.frontend  # any family's front end: the attributes read here are the ones they share
        x = wave.float()
        if f.signal_eps is not None:
            x = normalize_level(x, f.signal_eps)
        if f.preemphasis is not None:
            x = f.preemphasis(x)
        return f._normalize(torch.log(f.mel_power(x) + f.log_floor)).to(wave.dtype)


class ExportableReDimNet(nn.Module):
    """What gets exported: waveform ``[N, T]`` (or features ``[N, F, frames]``) -> embedding."""

    def __init__(self, model: nn.Module, features_in: bool = False):
        super().__init__()
        self.features_in = features_in
        network: Any = model  # a network of the ReDimNet families: frontend, forward_features, config
        self.network = network
        self.frontend: Optional[nn.Module]
        if features_in:
            self.frontend = None
        elif isinstance(network.frontend, MelSpectrogramFrontEnd):
            self.frontend = DFTMelFrontEnd(network.frontend)
        else:
            self.frontend = _PlainFrontEnd(copy.deepcopy(network.frontend))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.frontend is not None:
            pad = getattr(self.network.config, "pad_right_samples", None)  # a ReDimNet2 option
            if pad:
                x = F.pad(x, (0, pad))
            x = self.frontend(x)
        out = self.network.forward_features(x)
        return out[0] if isinstance(out, tuple) else out


def prepare_for_export(model: nn.Module, features_in: bool = False, optimize: bool = True) -> ExportableReDimNet:
    """An eval-mode, optimised copy of ``model`` wrapped for export (``model`` is untouched)."""
    if not isinstance(model, ReDimNet) and not hasattr(model, "forward_features"):
        raise ExportError(f"expected a redimnet.ReDimNet, got {type(model).__name__}")
    if optimize:
        from ..fast.optimize import optimize_for_inference

        model = optimize_for_inference(model)
    else:
        model = copy.deepcopy(model).eval()
    return ExportableReDimNet(model, features_in).eval()


def example_input(
    model: nn.Module, features_in: bool = False, batch: int = _EXAMPLE_BATCH, samples: int = _EXAMPLE_SAMPLES
) -> torch.Tensor:
    """A random input of the right kind for ``model`` (waveform, or features)."""
    generator = torch.Generator().manual_seed(0)
    wave = torch.randn(batch, samples, generator=generator) * 0.1
    if not features_in:
        return wave
    network: Any = model  # every network of the ReDimNet families has ``features``
    with torch.no_grad():
        return network.features(wave)


def output_path(path: PathLike) -> Path:
    """``path`` checked as the file to export to (not a folder; its folder exists)."""
    path = Path(path)
    if path.is_dir():
        raise ExportError(f"{path}: is a directory; give a file name for the exported model (e.g. {path}/model.onnx)")
    if not path.parent.exists():
        raise ExportError(f"{path.parent}: directory does not exist; create it first or choose another -o path")
    return path


def export_torchscript(model: nn.Module, path: PathLike, features_in: bool = False) -> Path:
    """Trace ``model`` (optimised, front end included unless ``features_in``) and save it.

    Load it with ``torch.jit.load(path)``; it takes ``[N, T]`` float waveforms
    (or ``[N, F, frames]`` features) of any batch size and length.
    """
    path = output_path(path)
    wrapper = prepare_for_export(model, features_in)
    example = example_input(model, features_in)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(wrapper, (example,), check_trace=False)
    traced.save(str(path))
    return path


def export_onnx(model: nn.Module, path: PathLike, features_in: bool = False, opset: int = 18) -> Path:
    """Export ``model`` to ONNX with dynamic batch and time axes: input ``waveform`` ``[N, T]`` (``features``
    ``[N, F, frames]`` with ``features_in``), output ``embedding`` ``[N, D]``.

    Needs the ``onnx`` package (optional extra ``export``); run the file with
    onnxruntime.  Files exported by earlier versions name their input ``input``; code that feeds
    either can ask the session: ``session.get_inputs()[0].name``.
    """
    path = output_path(path)
    require("onnx", "ONNX export")  # torch.onnx needs it
    wrapper = prepare_for_export(model, features_in, optimize=False)
    example = example_input(model, features_in)
    time_axis = 2 if features_in else 1
    name = ONNX_INPUTS[features_in]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (example,),
            str(path),
            input_names=[name],
            output_names=["embedding"],
            dynamic_axes={name: {0: "batch", time_axis: "time"}, "embedding": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    return path


def export_model(model: nn.Module, path: PathLike, fmt: str, features_in: bool = False) -> Path:
    """Export in format ``fmt`` ("onnx" or "torchscript")."""
    if fmt == "onnx":
        return export_onnx(model, path, features_in)
    if fmt == "torchscript":
        return export_torchscript(model, path, features_in)
    raise ExportError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
