"""Convolution / linear calls with their activation and residual addition ("epilogue").

The blocks of the optimised model ask for ``act(conv(x) [+ residual])`` or
``act(linear(x)) [+ residual]`` in one call; the elementwise parts are done in
place in the fresh output when no autograd graph is recorded (same values, one
buffer less).

oneDNN's fused kernels (``torch.ops.mkldnn._convolution_pointwise`` /
``_linear_pointwise``, which do the epilogue inside the convolution or matrix
product) were measured and not kept: faster per call in the profiler for some
shapes, but not faster end to end (b0, 1 x 10 s, 2 threads: 110 ms with the
plain kernels, 112 ms with fused convolutions, 128 ms with oneDNN matrix
products).
"""

from typing import Optional

import torch
import torch.nn.functional as F


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


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], stride, padding, groups: int,
           act: str = "none", residual: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``act(conv2d(x) [+ residual])``."""
    return activate(_add(F.conv2d(x, weight, bias, stride, padding, 1, groups), residual), act)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], act: str = "none",
           residual: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``act(linear(x)) [+ residual]`` over the last axis of ``x``."""
    return _add(activate(F.linear(x, weight, bias), act), residual)
