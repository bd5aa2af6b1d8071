"""Brings an expanded 2D stage back to its channel count before the 1D reshape."""

from typing import Optional

import torch
from torch import nn

from ..fast import epilogue
from ..fast.folding import fold_bn_after
from ..fast.modules import PointwiseConv, SummedDepthwiseConv, SwappedConv2d, activation_name
from .options import grouped


class ChannelSqueeze(nn.Sequential):
    """Grouped 3x3 conv (in -> out channels), batch norm, activation, 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int, group_divisor: Optional[int], activation: str = "gelu"):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size=3, padding="same", groups=grouped(out_channels, group_divisor)
        )
        self.norm = nn.BatchNorm2d(out_channels, eps=1e-6)
        self.act = nn.ReLU() if activation == "relu" else nn.GELU()
        self.pointwise = nn.Conv2d(out_channels, out_channels, 1)

    def for_inference(self) -> nn.Module:
        """Inference form: batch norm folded into the grouped conv (time-major 2D layout)."""
        return FastChannelSqueeze(self)


class FastChannelSqueeze(nn.Module):
    """:class:`~redimnet.layers.ChannelSqueeze` with its batch norm folded into the grouped conv."""

    def __init__(self, squeeze: ChannelSqueeze):
        super().__init__()
        weight, bias = fold_bn_after(
            squeeze.conv.weight.detach(),
            None if squeeze.conv.bias is None else squeeze.conv.bias.detach(),
            squeeze.norm,
        )
        conv = SwappedConv2d.from_conv(squeeze.conv, weight, bias)
        per_group = conv.weight.shape[1]
        one_output_per_group = conv.groups == conv.weight.shape[0]
        self.summed = one_output_per_group and per_group > 1 and conv.stride == (1, 1)
        self.conv = SummedDepthwiseConv(conv) if self.summed else conv
        self.act = activation_name(squeeze.act)
        self.pointwise = PointwiseConv(squeeze.pointwise.weight, squeeze.pointwise.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.summed:
            rows = epilogue.activate(self.conv(x), self.act)  # [N, T, F, C], contiguous
            return self.pointwise(rows.permute(0, 3, 1, 2))
        return self.pointwise(self.conv(x, self.act))
