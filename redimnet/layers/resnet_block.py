"""ResNet basic block as ReDimNet uses it: grouped 3x3 + pointwise convs, optional frequency SE."""

from typing import Optional

import torch
from torch import nn

from ..config import grouped
from .freq_se import FrequencySE


class _GroupedConv(nn.Module):
    """A 3x3 convolution with ``group_divisor`` channels per group and no bias,
    followed by a pointwise convolution (the pair stands in for one dense 3x3).
    With ``group_divisor=None`` it is a single dense 3x3 convolution."""

    def __init__(self, channels: int, group_divisor: Optional[int]):
        super().__init__()
        self.spatial = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False,
                                 groups=grouped(channels, group_divisor))
        self.pointwise = nn.Conv2d(channels, channels, 1) if group_divisor is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.spatial(x)
        return x if self.pointwise is None else self.pointwise(x)


class ResNetBlock(nn.Module):
    """``relu(x + se(bn2(conv2(bn1(relu(conv1(x)))))))``.

    Note the order in the first half, ReLU before batch norm, which the
    published weights were trained with.  ``num_freq`` is needed only for the
    frequency-wise SE gate (``use_freq_se=True``).
    """

    def __init__(self, channels: int, num_freq: int, group_divisor: Optional[int] = 1,
                 use_freq_se: bool = False):
        super().__init__()
        self.conv1 = _GroupedConv(channels, group_divisor)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = _GroupedConv(channels, group_divisor)
        self.bn2 = nn.BatchNorm2d(channels)
        self.se = FrequencySE(num_freq, min(64, max(channels, 32))) if use_freq_se else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn1(torch.relu(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        if self.se is not None:
            y = self.se(y)
        return torch.relu(x + y)

    def for_inference(self) -> nn.Module:
        """Inference form: ``bn2`` folded into the second conv, ``bn1`` one multiply-add."""
        from ..optimize.fused_2d import FastResNet2d

        return FastResNet2d(self)
