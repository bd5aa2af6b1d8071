"""ConvNeXt-style residual block: parallel depthwise convolutions, BN, activation, pointwise mix."""

from typing import Callable, Dict, Optional, Sequence, Union, cast

import torch
from torch import nn

from ..fast.folding import fold_convnext_depthwise
from ..fast.modules import Linear, PointwiseConv, SwappedConv2d, TimeConv, activation_name, matrix_of
from .options import grouped

_CONV: Dict[int, Callable[..., Union[nn.Conv1d, nn.Conv2d]]] = {1: nn.Conv1d, 2: nn.Conv2d}
_BATCH_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}
_ACTIVATION = {"gelu": nn.GELU, "relu": nn.ReLU}


class ConvNeXtBlock(nn.Module):
    """``x + pointwise(act(bn(concat(depthwise_k(x) for k in kernel_sizes))))``.

    ``dim`` selects 1D (``[N, C, T]``) or 2D (``[N, C, F, T]``) convolutions.
    ``group_divisor`` is the number of channels per group of the "depthwise"
    convolutions (1 = truly depthwise, None = one group).
    """

    def __init__(
        self,
        channels: int,
        dim: int = 2,
        kernel_sizes: Sequence[Union[int, tuple]] = ((3, 3),),
        group_divisor: Optional[int] = 1,
        activation: str = "gelu",
    ):
        super().__init__()
        conv = _CONV[dim]
        self.dim = dim
        groups = grouped(channels, group_divisor)
        self.depthwise = nn.ModuleList(
            conv(channels, channels, kernel_size=k, padding="same", groups=groups) for k in kernel_sizes
        )
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
        return FastConvNeXt1d(self) if self.dim == 1 else FastConvNeXt2d(self)


class FastConvNeXt1d(nn.Module):
    """:class:`~redimnet.layers.ConvNeXtBlock` (1D): parallel depthwise convs merged into one,
    batch norm folded into it."""

    def __init__(self, block: ConvNeXtBlock):
        super().__init__()
        weight, bias, index = fold_convnext_depthwise(block)
        self.depthwise = TimeConv(weight, bias, cast(nn.Conv1d, block.depthwise[0]).groups)
        self.act = activation_name(block.act)
        self.pointwise = Linear(matrix_of(block.pointwise)[:, index], block.pointwise.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x, self.act), residual=x)


class FastConvNeXt2d(nn.Module):
    """:class:`~redimnet.layers.ConvNeXtBlock` (2D) with its batch norm folded into the depthwise conv."""

    def __init__(self, block: ConvNeXtBlock):
        super().__init__()
        weight, bias, index = fold_convnext_depthwise(block)
        first = cast(nn.Conv2d, block.depthwise[0])
        padding = tuple((k - 1) // 2 for k in weight.shape[2:])
        self.depthwise = SwappedConv2d(weight, bias, (1, 1), padding, first.groups)
        self.act = activation_name(block.act)
        pointwise = block.pointwise.weight.detach()[:, :, 0, 0][:, index]
        self.pointwise = PointwiseConv(pointwise, block.pointwise.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x, self.act), residual=x)
