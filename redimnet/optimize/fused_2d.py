"""2D building blocks of the optimised model (``[N, C, T, F]`` channels_last, see :mod:`.layout`)."""

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.channel_squeeze import ChannelSqueeze
from ..layers.convnext_block import ConvNeXtBlock
from ..layers.freq_se import FrequencySE
from ..layers.resnet_block import ResNetBlock
from .folding import bn_scale_shift, fold_bn_after, merge_parallel_convs
from .layout import channels_last_rows


def _activation(module: nn.Module) -> str:
    return "relu" if isinstance(module, nn.ReLU) else "gelu"


def _apply_activation(x: torch.Tensor, name: str) -> torch.Tensor:
    return torch.relu(x) if name == "relu" else F.gelu(x)


class SwappedConv2d(nn.Module):
    """A ``[N, C, F, T]`` convolution applied to the ``[N, C, T, F]`` view (kernel axes swapped)."""

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor], stride, padding, groups: int):
        super().__init__()
        self.register_buffer("weight", weight.detach().transpose(2, 3).contiguous(memory_format=torch.channels_last))
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.stride = (stride[1], stride[0])
        self.padding = (padding[1], padding[0])
        self.groups = groups

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, weight: Optional[torch.Tensor] = None,
                  bias: Optional[torch.Tensor] = None) -> "SwappedConv2d":
        """From a plain ``Conv2d`` (optionally with replaced weight/bias)."""
        if conv.padding == "same":
            padding = tuple((k - 1) // 2 for k in conv.kernel_size)
            if any(k % 2 == 0 for k in conv.kernel_size):
                raise ValueError("'same' padding with an even kernel is not supported")
        else:
            padding = conv.padding
        if conv.padding_mode != "zeros" or conv.dilation != (1, 1):
            raise ValueError("only zero-padded, undilated convolutions are supported")
        weight = conv.weight if weight is None else weight
        bias = conv.bias if bias is None and weight is conv.weight else bias
        return cls(weight, bias, conv.stride, padding, conv.groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, 1, self.groups)


class ChannelLinear(nn.Module):
    """A 1x1 convolution as a ``linear`` over the innermost (channel) axis of ``[N, C, T, F]``."""

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor]):
        super().__init__()
        self.register_buffer("weight", weight.detach().reshape(weight.shape[0], -1).clone())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(channels_last_rows(x), self.weight, self.bias).permute(0, 3, 1, 2)


class FrequencyPool(nn.Module):
    """The stage's ``(stride, 1)`` convolution over frequency as one ``linear``:
    ``stride`` neighbouring bins are adjacent in memory, so they form one row."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        stride = conv.kernel_size[0]
        if conv.kernel_size != (stride, 1) or conv.stride != (stride, 1) or conv.padding != (0, 0):
            raise ValueError("unexpected stage pooling convolution")
        self.stride = stride
        weight = conv.weight.detach()[:, :, :, 0].permute(0, 2, 1).reshape(conv.out_channels, -1)
        self.register_buffer("weight", weight.contiguous())
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, f = x.shape
        rows = channels_last_rows(x)
        kept = (f // self.stride) * self.stride
        if kept != f:
            rows = rows[:, :, :kept]
        rows = rows.reshape(n, t, kept // self.stride, self.stride * c)
        return F.linear(rows, self.weight, self.bias).permute(0, 3, 1, 2)


class FastConvNeXt2d(nn.Module):
    """:class:`~redimnet.layers.ConvNeXtBlock` (2D) with its batch norm folded into the depthwise conv."""

    def __init__(self, block: ConvNeXtBlock):
        super().__init__()
        weight, bias, perm = merge_parallel_convs(list(block.depthwise))
        index = torch.as_tensor(perm)
        scale, shift = bn_scale_shift(block.norm)
        scale, shift = scale[index], shift[index]
        weight = (weight.double() * scale.view(-1, 1, 1, 1)).float()
        bias = (bias.double() * scale + shift).float()
        first = block.depthwise[0]
        padding = tuple((k - 1) // 2 for k in weight.shape[2:])
        self.depthwise = SwappedConv2d(weight, bias, (1, 1), padding, first.groups)
        self.act = _activation(block.act)
        pointwise = block.pointwise.weight.detach()[:, :, 0, 0][:, index]
        self.pointwise = ChannelLinear(pointwise, block.pointwise.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pointwise(_apply_activation(self.depthwise(x), self.act))
        # In place when no autograd graph is recorded (same values, one buffer less).
        return x + y if torch.is_grad_enabled() else y.add_(x)


class FastFrequencySE(nn.Module):
    """:class:`~redimnet.layers.FrequencySE` on ``[N, C, T, F]``."""

    def __init__(self, se: FrequencySE):
        super().__init__()
        self.squeeze = se.squeeze
        self.excite = se.excite

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = x.mean(dim=(1, 2))
        gate = torch.sigmoid(self.excite(torch.relu(self.squeeze(gate))))
        return x * gate[:, None, None, :]


def _grouped_conv(conv, bn: Optional[nn.modules.batchnorm._BatchNorm] = None) -> nn.Module:
    """A ``_GroupedConv`` (spatial + optional pointwise), ``bn`` folded into its last conv."""
    if conv.pointwise is None:
        if bn is None:
            return SwappedConv2d.from_conv(conv.spatial)
        weight, bias = fold_bn_after(conv.spatial.weight.detach(), None, bn)
        return SwappedConv2d.from_conv(conv.spatial, weight, bias)
    spatial = SwappedConv2d.from_conv(conv.spatial)
    weight, bias = conv.pointwise.weight.detach(), conv.pointwise.bias
    if bn is not None:
        weight, bias = fold_bn_after(weight, None if bias is None else bias.detach(), bn)
    return nn.Sequential(spatial, ChannelLinear(weight, bias))


class FastResNet2d(nn.Module):
    """:class:`~redimnet.layers.ResNetBlock` with ``bn2`` folded into the second conv.

    ``bn1`` sits after a ReLU and before a zero-padded convolution, where it
    cannot be folded exactly; it is applied as one fused multiply-add.
    """

    def __init__(self, block: ResNetBlock):
        super().__init__()
        self.conv1 = _grouped_conv(block.conv1)
        scale, shift = bn_scale_shift(block.bn1)
        self.register_buffer("bn1_scale", scale.float().view(1, -1, 1, 1))
        self.register_buffer("bn1_shift", shift.float().view(1, -1, 1, 1))
        self.conv2 = _grouped_conv(block.conv2, block.bn2)
        self.se = FastFrequencySE(block.se) if block.se is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            y = torch.addcmul(self.bn1_shift, torch.relu(self.conv1(x)), self.bn1_scale)
        else:  # same values, computed in place in the fresh conv output
            y = torch.relu_(self.conv1(x)).mul_(self.bn1_scale).add_(self.bn1_shift)
        y = self.conv2(y)
        if self.se is not None:
            y = self.se(y)
        return torch.relu(x + y) if torch.is_grad_enabled() else torch.relu_(y.add_(x))


class FastChannelSqueeze(nn.Module):
    """:class:`~redimnet.layers.ChannelSqueeze` with its batch norm folded into the grouped conv."""

    def __init__(self, squeeze: ChannelSqueeze):
        super().__init__()
        weight, bias = fold_bn_after(squeeze.conv.weight.detach(),
                                     None if squeeze.conv.bias is None else squeeze.conv.bias.detach(), squeeze.norm)
        self.conv = SwappedConv2d.from_conv(squeeze.conv, weight, bias)
        self.act = _activation(squeeze.act)
        self.pointwise = ChannelLinear(squeeze.pointwise.weight, squeeze.pointwise.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(_apply_activation(self.conv(x), self.act))


def fast_2d_block(block: nn.Module) -> nn.Module:
    """The optimised counterpart of a plain 2D block."""
    if isinstance(block, ConvNeXtBlock):
        return FastConvNeXt2d(block)
    if isinstance(block, ResNetBlock):
        return FastResNet2d(block)
    raise ValueError(f"no optimised version of {type(block).__name__}")
