"""Brings an expanded 2D stage back to its channel count before the 1D reshape."""

from typing import Optional

from torch import nn

from ..config import grouped


class ChannelSqueeze(nn.Sequential):
    """Grouped 3x3 conv (in -> out channels), batch norm, activation, 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int, group_divisor: Optional[int], activation: str = "gelu"):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding="same",
                              groups=grouped(out_channels, group_divisor))
        self.norm = nn.BatchNorm2d(out_channels, eps=1e-6)
        self.act = nn.ReLU() if activation == "relu" else nn.GELU()
        self.pointwise = nn.Conv2d(out_channels, out_channels, 1)

    def for_inference(self) -> nn.Module:
        """Inference form: batch norm folded into the grouped conv (time-major 2D layout)."""
        from ..optimize.fused_2d import FastChannelSqueeze

        return FastChannelSqueeze(self)
