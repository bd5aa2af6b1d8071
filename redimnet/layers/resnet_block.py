"""ResNet basic block as ReDimNet uses it: grouped 3x3 + pointwise convs, optional frequency SE."""

from typing import Optional

import torch
from torch import nn

from ..fast.folding import bn_scale_shift, fold_bn_after
from ..fast.form import inference_form
from ..fast.modules import PointwiseConv, SwappedConv2d
from .freq_se import FrequencySE
from .options import grouped


class _GroupedConv(nn.Module):
    """A 3x3 convolution with ``group_divisor`` channels per group and no bias,
    followed by a pointwise convolution (the pair stands in for one dense 3x3).
    With ``group_divisor=None`` it is a single dense 3x3 convolution."""

    def __init__(self, channels: int, group_divisor: Optional[int]):
        super().__init__()
        self.spatial = nn.Conv2d(
            channels, channels, kernel_size=3, padding=1, bias=False, groups=grouped(channels, group_divisor)
        )
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

    def __init__(self, channels: int, num_freq: int, group_divisor: Optional[int] = 1, use_freq_se: bool = False):
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
        return FastResNet2d(self)


class FusedGroupedConv(nn.Module):
    """A ``_GroupedConv`` (spatial conv + optional pointwise), a batch norm folded into its last conv."""

    def __init__(self, conv, bn: Optional[nn.modules.batchnorm._BatchNorm] = None):
        super().__init__()
        if conv.pointwise is None:
            self.pointwise = None
            if bn is None:
                self.spatial = SwappedConv2d.from_conv(conv.spatial)
            else:
                weight, bias = fold_bn_after(conv.spatial.weight.detach(), None, bn)
                self.spatial = SwappedConv2d.from_conv(conv.spatial, weight, bias)
            return
        self.spatial = SwappedConv2d.from_conv(conv.spatial)
        weight, bias = conv.pointwise.weight.detach(), conv.pointwise.bias
        if bn is not None:
            weight, bias = fold_bn_after(weight, None if bias is None else bias.detach(), bn)
        self.pointwise = PointwiseConv(weight, bias)

    def forward(self, x: torch.Tensor, act: str = "none") -> torch.Tensor:
        """``act(conv(x))``."""
        if self.pointwise is None:
            return self.spatial(x, act)
        return self.pointwise(self.spatial(x), act)

    def blocked(self, x: torch.Tensor) -> torch.Tensor:
        """``conv(x)`` on a oneDNN (``to_mkldnn``) tensor."""
        y = self.spatial.blocked(x)
        return y if self.pointwise is None else self.pointwise.blocked(y)

    def add_relu(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``relu(conv(x) + residual)``."""
        if self.pointwise is None:
            return self.spatial(x, "relu", residual)
        y = self.pointwise(self.spatial(x), residual=residual)
        return torch.relu(y) if torch.is_grad_enabled() else torch.relu_(y)


class FastResNet2d(nn.Module):
    """:class:`~redimnet.layers.ResNetBlock` with ``bn2`` folded into the second conv.

    ``bn1`` sits after a ReLU and before a zero-padded convolution, where it
    cannot be folded exactly; it is applied as one fused multiply-add.
    """

    def __init__(self, block: ResNetBlock):
        super().__init__()
        self.conv1 = FusedGroupedConv(block.conv1)
        scale, shift = bn_scale_shift(block.bn1)
        self.bn1_scale: torch.Tensor
        self.register_buffer("bn1_scale", scale.float().view(1, -1, 1, 1))
        self.bn1_shift: torch.Tensor
        self.register_buffer("bn1_shift", shift.float().view(1, -1, 1, 1))
        self.bn1_zeros: torch.Tensor
        self.register_buffer("bn1_zeros", torch.zeros(scale.numel()))
        self.bn1_ones: torch.Tensor
        self.register_buffer("bn1_ones", torch.ones(scale.numel()))
        self.conv2 = FusedGroupedConv(block.conv2, block.bn2)
        self.se = inference_form(block.se) if block.se is not None else None
        # Grouped (not depthwise) convolutions: where the blocked layout was measured to help.
        self.runs_blocked = self.conv1.spatial.weight.shape[1] > 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            y = torch.addcmul(self.bn1_shift, self.conv1(x, "relu"), self.bn1_scale)
        else:  # computed in place in the fresh conv output, one pass
            y = self.conv1(x, "relu")
            y = torch.addcmul(self.bn1_shift, y, self.bn1_scale, out=y)
        if self.se is None:
            return self.conv2.add_relu(y, x)
        y = self.se(self.conv2(y))
        return torch.relu(x + y) if torch.is_grad_enabled() else torch.relu_(y.add_(x))

    def forward_blocked(self, x: torch.Tensor) -> torch.Tensor:
        """The block on a contiguous (NCHW-ordered) ``[N, C, T, F]`` tensor, its convolutions run
        on oneDNN's blocked layout (:mod:`redimnet.fast.blocked`); no autograd.  Returns a contiguous tensor."""
        y = torch.relu_(self.conv1.blocked(x.to_mkldnn()))
        # bn1 as oneDNN's batch norm with zero mean, unit variance and eps 0: y * scale + shift
        y = torch.batch_norm(
            y, self.bn1_scale.flatten(), self.bn1_shift.flatten(), self.bn1_zeros, self.bn1_ones, False, 0.0, 0.0, False
        )
        y = self.conv2.blocked(y).to_dense()
        if self.se is not None:
            y = self.se(y)
        return torch.relu_(y.add_(x))
