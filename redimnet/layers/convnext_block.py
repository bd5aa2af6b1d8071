"""ConvNeXt-style residual block: parallel depthwise convolutions, BN, activation, pointwise mix."""

from typing import Optional, Sequence, Union

import torch
from torch import nn

from ..config import grouped

_CONV = {1: nn.Conv1d, 2: nn.Conv2d}
_BATCH_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}
_ACTIVATION = {"gelu": nn.GELU, "relu": nn.ReLU}


class ConvNeXtBlock(nn.Module):
    """``x + pointwise(act(bn(concat(depthwise_k(x) for k in kernel_sizes))))``.

    ``dim`` selects 1D (``[N, C, T]``) or 2D (``[N, C, F, T]``) convolutions.
    ``group_divisor`` is the number of channels per group of the "depthwise"
    convolutions (1 = truly depthwise, None = one group).
    """

    def __init__(self, channels: int, dim: int = 2,
                 kernel_sizes: Sequence[Union[int, tuple]] = ((3, 3),),
                 group_divisor: Optional[int] = 1, activation: str = "gelu"):
        super().__init__()
        conv = _CONV[dim]
        self.dim = dim
        groups = grouped(channels, group_divisor)
        self.depthwise = nn.ModuleList(
            conv(channels, channels, kernel_size=k, padding="same", groups=groups) for k in kernel_sizes)
        self.norm = _BATCH_NORM[dim](channels * len(kernel_sizes))
        self.act = _ACTIVATION[activation]()
        self.pointwise = conv(channels * len(kernel_sizes), channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.depthwise) == 1:
            y = self.depthwise[0](x)
        else:
            y = torch.cat([conv(x) for conv in self.depthwise], dim=1)
        return x + self.pointwise(self.act(self.norm(y)))

    def for_inference(self) -> nn.Module:
        """Inference form: parallel depthwise convs merged into one, batch norm folded in
        (``[N, T, C]`` for 1D blocks, the time-major 2D layout for 2D blocks)."""
        if self.dim == 1:
            from ..optimize.fused_1d import FastConvNeXt1d

            return FastConvNeXt1d(self)
        from ..optimize.fused_2d import FastConvNeXt2d

        return FastConvNeXt2d(self)
