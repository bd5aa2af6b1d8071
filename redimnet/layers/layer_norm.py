"""Layer normalisation over the channel axis (axis 1) of a channels-first tensor."""

import torch
import torch.nn.functional as F
from torch import nn


class ChannelLayerNorm(nn.Module):
    """Normalises every position over its channels, then scales and shifts per channel.

    Works for ``[N, C, T]`` and ``[N, C, F, T]``.  Statistics are the biased mean
    and variance over axis 1, as in ConvNeXt's channels-first layer norm.
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor, axis: int = 1) -> torch.Tensor:
        """Normalise over ``axis`` (the channel axis; 1 unless the channels were moved)."""
        mean = x.mean(axis, keepdim=True)
        var = (x - mean).pow(2).mean(axis, keepdim=True)
        x = (x - mean) * torch.rsqrt(var + self.eps)
        shape = [1] * x.ndim
        shape[axis] = -1
        return x * self.weight.view(shape) + self.bias.view(shape)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, eps={self.eps}"

    def for_inference(self) -> nn.Module:
        """Inference form: ``layer_norm`` over the last axis of a time-major tensor."""
        return LastAxisLayerNorm(self)


class LastAxisLayerNorm(nn.Module):
    """:class:`~redimnet.layers.ChannelLayerNorm` on the last axis."""

    def __init__(self, norm: ChannelLayerNorm):
        super().__init__()
        self.weight: torch.Tensor
        self.register_buffer("weight", norm.weight.detach().clone())
        self.bias: torch.Tensor
        self.register_buffer("bias", norm.bias.detach().clone())
        self.eps = norm.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)
