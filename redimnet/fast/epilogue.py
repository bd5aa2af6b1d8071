"""Convolution / linear calls with their activation and residual addition ("epilogue").

The blocks of the optimised model ask for ``act(conv(x) [+ residual])`` or
``act(linear(x)) [+ residual]`` in one call; the elementwise parts are done in
place in the fresh output when no autograd graph is recorded (same values, one
buffer less).

Matrix products over many rows (:func:`dense`; the 1x1 convolutions of the 2D
blocks, the stage pooling) run on the CPU as oneDNN 1x1 convolutions over a
channels_last view of the rows: same arithmetic, but ``addmm`` first copies the
broadcast bias into its output with a slow strided copy, and oneDNN's 1x1
kernels are faster than the BLAS call for the narrow matrices of this network.
Below 4096 rows (the 1D blocks: one row per frame) oneDNN's fixed cost per call
loses, so those stay ``linear`` (timings in ``docs/performance.md``).
``torch.mkldnn_convolution`` is called directly because ``conv2d`` sends 1x1
convolutions to a slower generic kernel when running on one thread.

oneDNN's fused kernels (``torch.ops.mkldnn._convolution_pointwise`` /
``_linear_pointwise``, which do the epilogue inside the convolution or matrix
product) were measured and not kept: faster per call in the profiler for some
shapes, but not faster end to end.
"""

from typing import Optional

import torch
import torch.nn.functional as F

_ONEDNN = torch.backends.mkldnn.is_available()
_ONEDNN_MIN_ROWS = 4096


def onednn_applies(x: torch.Tensor) -> bool:
    """Whether oneDNN-specific calls may run on ``x``: float32 on a CPU with oneDNN, no
    autocast, and not being traced (a traced TorchScript model stays device-independent)."""
    return (
        _ONEDNN
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and not torch.jit.is_tracing()
    )


def _uses_onednn(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return weight.dtype == torch.float32 and x.numel() // max(1, x.shape[-1]) >= _ONEDNN_MIN_ROWS and onednn_applies(x)


def _onednn_dense(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    rows = x.numel() // x.shape[-1]
    out_features, in_features = weight.shape
    image = x.reshape(1, rows, 1, in_features).permute(0, 3, 1, 2)  # [1, in, rows, 1], channels_last
    y = torch.mkldnn_convolution(image, weight.view(out_features, in_features, 1, 1), bias, (0, 0), (1, 1), (1, 1), 1)
    return y.permute(0, 2, 3, 1).reshape(x.shape[:-1] + (out_features,))


def dense(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """``x @ weight.T + bias`` over the last axis of ``x`` (``weight``: ``[out, in]``, contiguous)."""
    return _onednn_dense(x, weight, bias) if _uses_onednn(x, weight) else F.linear(x, weight, bias)


def activate(y: torch.Tensor, act: str) -> torch.Tensor:
    """``act(y)``; in place when no autograd graph is recorded (``y`` must be a fresh tensor)."""
    if act == "none":
        return y
    if act == "relu":
        return torch.relu(y) if torch.is_grad_enabled() else torch.relu_(y)
    if act == "gelu":
        return F.gelu(y)
    if act == "gelu_tanh":
        return F.gelu(y, approximate="tanh")
    raise ValueError(f"unknown activation {act!r}")


def _add(y: torch.Tensor, residual: Optional[torch.Tensor]) -> torch.Tensor:
    if residual is None:
        return y
    return y + residual if torch.is_grad_enabled() else y.add_(residual)


def conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    stride,
    padding,
    groups: int,
    act: str = "none",
    residual: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """``act(conv2d(x) [+ residual])``."""
    return activate(_add(F.conv2d(x, weight, bias, stride, padding, 1, groups), residual), act)


def linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    act: str = "none",
    residual: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """``act(linear(x)) [+ residual]`` over the last axis of ``x``.

    Without an activation and with no autograd graph recorded, the product is
    accumulated straight into ``residual`` (which callers pass as a fresh
    tensor they no longer need) and the bias added after: this skips the
    copy of the broadcast bias that ``addmm`` makes and the separate residual
    pass.
    """
    if _uses_onednn(x, weight):
        return _add(activate(_onednn_dense(x, weight, bias), act), residual)
    if (
        residual is not None
        and act == "none"
        and not torch.is_grad_enabled()
        and residual.is_contiguous()
        and residual.shape == x.shape[:-1] + weight.shape[:1]
        and residual.dtype == x.dtype == weight.dtype
    ):
        out = residual.view(-1, weight.shape[0])
        out.addmm_(x.reshape(-1, weight.shape[1]), weight.t())
        if bias is not None:
            out.add_(bias)
        return residual
    return _add(activate(F.linear(x, weight, bias), act), residual)
