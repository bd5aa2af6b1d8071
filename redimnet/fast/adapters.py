"""Inference forms that run a plain block unchanged on the optimised layout.

They convert the time-major tensors of the optimised path to the layout the
plain block expects and back: correct at once, not faster.  A new block can
start with one of them as its form (``return PlainBlock2d(self)``) and get a
fused form later.
"""

import torch
from torch import nn


class PlainBlock1d(nn.Module):
    """A plain 1D block (``[N, C, T]`` in and out) on time-major ``[N, T, C]`` tensors."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x.transpose(1, 2)).transpose(1, 2)


class PlainBlock2d(nn.Module):
    """A plain 2D block (``[N, C, F, T]`` in and out) on the optimised ``[N, C, T, F]``
    view; the output is returned in channels_last memory like the fused blocks'."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x.transpose(2, 3)).transpose(2, 3)
        return y.contiguous(memory_format=torch.channels_last)


class PlainPooling(nn.Module):
    """A plain pooling layer (``[N, C, T]`` -> ``[N, D]``) fed time-major ``[N, T, C]`` frames."""

    def __init__(self, pool: nn.Module):
        super().__init__()
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x.transpose(1, 2))
