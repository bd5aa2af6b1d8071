"""2D building blocks of the optimised model (``[N, C, T, F]`` channels_last, see :mod:`.layout`)."""

from typing import Optional

import torch
from torch import nn

from ..layers.channel_squeeze import ChannelSqueeze
from ..layers.convnext_block import ConvNeXtBlock
from ..layers.freq_se import FrequencySE
from ..layers.resnet_block import ResNetBlock
from ..fast import inference_form
from . import epilogue
from .folding import bn_scale_shift, fold_bn_after, fold_convnext_depthwise, merge_small_groups
from .layout import channels_last_rows


def _activation(module: nn.Module) -> str:
    return "relu" if isinstance(module, nn.ReLU) else "gelu"


class SwappedConv2d(nn.Module):
    """A ``[N, C, F, T]`` convolution applied to the ``[N, C, T, F]`` view (kernel axes swapped;
    groups reading fewer than 8 channels merged, see :func:`.folding.merge_small_groups`)."""

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor], stride, padding, groups: int):
        super().__init__()
        weight, groups = merge_small_groups(weight.detach(), groups)
        self.register_buffer("weight", weight.transpose(2, 3).contiguous(memory_format=torch.channels_last))
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

    def blocked(self, x: torch.Tensor) -> torch.Tensor:
        """The convolution on a oneDNN (``to_mkldnn``) tensor; see :mod:`.blocked`."""
        return torch.mkldnn_convolution(x, self.weight, self.bias, self.padding, self.stride, (1, 1), self.groups)

    def forward(self, x: torch.Tensor, act: str = "none", residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``act(conv(x) [+ residual])``."""
        return epilogue.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.groups, act, residual)


class PointwiseConv(nn.Module):
    """A 1x1 convolution over the channels of ``[N, C, T, F]`` (channels_last): one
    :func:`.epilogue.dense` product over the ``[N, T, F, C]`` rows."""

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor]):
        super().__init__()
        self.register_buffer("weight", weight.detach().reshape(weight.shape[0], -1).contiguous().clone())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    def blocked(self, x: torch.Tensor) -> torch.Tensor:
        """The 1x1 convolution on a oneDNN (``to_mkldnn``) tensor; see :mod:`.blocked`."""
        weight = self.weight.view(self.weight.shape + (1, 1))
        return torch.mkldnn_convolution(x, weight, self.bias, (0, 0), (1, 1), (1, 1), 1)

    def forward(self, x: torch.Tensor, act: str = "none", residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``act(conv1x1(x)) [+ residual]``."""
        rows = None if residual is None else channels_last_rows(residual)
        return epilogue.linear(channels_last_rows(x), self.weight, self.bias, act, rows).permute(0, 3, 1, 2)


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
        return epilogue.linear(rows, self.weight, self.bias).permute(0, 3, 1, 2)


class FastConvNeXt2d(nn.Module):
    """:class:`~redimnet.layers.ConvNeXtBlock` (2D) with its batch norm folded into the depthwise conv."""

    def __init__(self, block: ConvNeXtBlock):
        super().__init__()
        weight, bias, index = fold_convnext_depthwise(block)
        first = block.depthwise[0]
        padding = tuple((k - 1) // 2 for k in weight.shape[2:])
        self.depthwise = SwappedConv2d(weight, bias, (1, 1), padding, first.groups)
        self.act = _activation(block.act)
        pointwise = block.pointwise.weight.detach()[:, :, 0, 0][:, index]
        self.pointwise = PointwiseConv(pointwise, block.pointwise.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x, self.act), residual=x)


class FastFrequencySE(nn.Module):
    """:class:`~redimnet.layers.FrequencySE` on ``[N, C, T, F]``; scales ``x`` in place when no
    autograd graph is recorded (callers pass a fresh tensor)."""

    def __init__(self, se: FrequencySE):
        super().__init__()
        self.squeeze = se.squeeze
        self.excite = se.excite

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_contiguous():  # NCHW-ordered (the oneDNN-blocked path)
            gate = x.mean(dim=(1, 2))
        else:  # channels_last: summing over time first reads [N, T, F, C] memory in order
            # (about twice as fast as ``x.mean(dim=(1, 2))``)
            gate = channels_last_rows(x).sum(dim=1).mean(dim=-1) / x.shape[2]
        gate = torch.sigmoid(self.excite(torch.relu(self.squeeze(gate))))[:, None, None, :]
        # In place when no autograd graph is recorded: ``x`` is a fresh conv output here.
        return x * gate if torch.is_grad_enabled() else x.mul_(gate)


class GroupedConv(nn.Module):
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
        self.conv1 = GroupedConv(block.conv1)
        scale, shift = bn_scale_shift(block.bn1)
        self.register_buffer("bn1_scale", scale.float().view(1, -1, 1, 1))
        self.register_buffer("bn1_shift", shift.float().view(1, -1, 1, 1))
        self.register_buffer("bn1_zeros", torch.zeros(scale.numel()))
        self.register_buffer("bn1_ones", torch.ones(scale.numel()))
        self.conv2 = GroupedConv(block.conv2, block.bn2)
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
        on oneDNN's blocked layout (:mod:`.blocked`); no autograd.  Returns a contiguous tensor."""
        y = torch.relu_(self.conv1.blocked(x.to_mkldnn()))
        # bn1 as oneDNN's batch norm with zero mean, unit variance and eps 0: y * scale + shift
        y = torch.batch_norm(y, self.bn1_scale.flatten(), self.bn1_shift.flatten(), self.bn1_zeros,
                             self.bn1_ones, False, 0.0, 0.0, False)
        y = self.conv2.blocked(y).to_dense()
        if self.se is not None:
            y = self.se(y)
        return torch.relu_(y.add_(x))


class SummedDepthwiseConv(nn.Module):
    """A grouped conv with one output channel per group (``k`` inputs each), as a
    depthwise conv of its ``k * out`` input channels followed by summing each
    group's ``k`` adjacent channels (interleaved adds over the channels_last rows).

    oneDNN runs such convolutions (2-3 inputs per group, 1 output) through a slow
    generic kernel: 5-8 ms for b0's stage-end squeezes, against 0.7-1.3 ms here.
    Returns the ``[N, T, F, C_out]`` rows (contiguous).
    """

    def __init__(self, conv: SwappedConv2d):
        super().__init__()
        out_channels, per_group = conv.weight.shape[:2]
        self.per_group = per_group
        depthwise = conv.weight.reshape(out_channels * per_group, 1, *conv.weight.shape[2:])
        self.conv = SwappedConv2d(depthwise.transpose(2, 3), None, (conv.stride[1], conv.stride[0]),
                                  (conv.padding[1], conv.padding[0]), out_channels * per_group)
        self.register_buffer("bias", conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = channels_last_rows(self.conv(x))
        k = self.per_group
        y = torch.add(z[..., 0::k], z[..., 1::k])
        for j in range(2, k):
            y.add_(z[..., j::k])
        return y if self.bias is None else y.add_(self.bias)


class FastChannelSqueeze(nn.Module):
    """:class:`~redimnet.layers.ChannelSqueeze` with its batch norm folded into the grouped conv."""

    def __init__(self, squeeze: ChannelSqueeze):
        super().__init__()
        weight, bias = fold_bn_after(squeeze.conv.weight.detach(),
                                     None if squeeze.conv.bias is None else squeeze.conv.bias.detach(), squeeze.norm)
        conv = SwappedConv2d.from_conv(squeeze.conv, weight, bias)
        per_group = conv.weight.shape[1]
        one_output_per_group = conv.groups == conv.weight.shape[0]
        self.summed = one_output_per_group and per_group > 1 and conv.stride == (1, 1)
        self.conv = SummedDepthwiseConv(conv) if self.summed else conv
        self.act = _activation(squeeze.act)
        self.pointwise = PointwiseConv(squeeze.pointwise.weight, squeeze.pointwise.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.summed:
            rows = epilogue.activate(self.conv(x), self.act)  # [N, T, F, C], contiguous
            return self.pointwise(rows.permute(0, 3, 1, 2))
        return self.pointwise(self.conv(x, self.act))
