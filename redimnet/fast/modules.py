"""Modules the inference forms are built from, on the optimised layout (:mod:`.layout`).

1x1 convolutions become ``linear`` products over the last axis, depthwise
convolutions over time run as channels_last 2D convolutions of height 1 (much
faster on CPU than ``conv1d``), and 2D convolutions run on the ``[N, C, T, F]``
view with their kernel axes swapped.  None of them knows a block of the
network; each block's form (``for_inference()``, beside the block) combines them.
"""

from typing import Optional, Tuple, Union, cast

import torch
from torch import nn

from . import epilogue
from .folding import merge_small_groups
from .layout import channels_last_rows, image_as_time, time_as_image


def matrix_of(conv: Union[nn.Conv1d, nn.Conv2d]) -> torch.Tensor:
    """The ``[out, in]`` matrix of a 1x1 convolution (a detached copy)."""
    return conv.weight.detach().reshape(conv.weight.shape[0], -1).clone()


def detached_copy(tensor: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """A detached copy of ``tensor`` (None stays None)."""
    return None if tensor is None else tensor.detach().clone()


def activation_name(module: nn.Module) -> str:
    """``"relu"`` for an ``nn.ReLU``, else ``"gelu"`` (the two activations of the blocks)."""
    return "relu" if isinstance(module, nn.ReLU) else "gelu"


class Linear(nn.Module):
    """``linear`` over the last axis with fixed (buffer) weights."""

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor]):
        super().__init__()
        self.weight: torch.Tensor
        self.register_buffer("weight", weight.detach().contiguous().clone())
        self.bias: Optional[torch.Tensor]
        self.register_buffer("bias", detached_copy(bias))

    @classmethod
    def from_conv(cls, conv: Union[nn.Conv1d, nn.Conv2d]) -> "Linear":
        return cls(matrix_of(conv), conv.bias)

    def forward(self, x: torch.Tensor, act: str = "none", residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``act(linear(x)) [+ residual]``."""
        return epilogue.linear(x, self.weight, self.bias, act, residual)


class TimeConv(nn.Module):
    """A grouped "same" convolution over time, ``[N, T, C_in] -> [N, T, C_out]``."""

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor], groups: int):
        super().__init__()
        kernel = weight.shape[-1]
        if kernel % 2 == 0:
            raise ValueError("only odd kernels are supported")
        self.weight: torch.Tensor
        self.register_buffer("weight", weight.detach().unsqueeze(2).contiguous(memory_format=torch.channels_last))
        self.bias: Optional[torch.Tensor]
        self.register_buffer("bias", detached_copy(bias))
        self.padding = (0, kernel // 2)
        self.groups = groups

    def forward(self, x: torch.Tensor, act: str = "none") -> torch.Tensor:
        """``act(conv(x))``."""
        y = epilogue.conv2d(time_as_image(x), self.weight, self.bias, (1, 1), self.padding, self.groups, act)
        return image_as_time(y)


class SwappedConv2d(nn.Module):
    """A ``[N, C, F, T]`` convolution applied to the ``[N, C, T, F]`` view (kernel axes swapped;
    groups reading fewer than 8 channels merged, see :func:`.folding.merge_small_groups`)."""

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor], stride, padding, groups: int):
        super().__init__()
        weight, groups = merge_small_groups(weight.detach(), groups)
        self.weight: torch.Tensor
        self.register_buffer("weight", weight.transpose(2, 3).contiguous(memory_format=torch.channels_last))
        self.bias: Optional[torch.Tensor]
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.stride = (stride[1], stride[0])
        self.padding = (padding[1], padding[0])
        self.groups = groups

    @classmethod
    def from_conv(
        cls, conv: nn.Conv2d, weight: Optional[torch.Tensor] = None, bias: Optional[torch.Tensor] = None
    ) -> "SwappedConv2d":
        """From a plain ``Conv2d`` (optionally with replaced weight/bias)."""
        padding: Tuple[int, ...]
        if conv.padding == "same":
            padding = tuple((k - 1) // 2 for k in conv.kernel_size)
            if any(k % 2 == 0 for k in conv.kernel_size):
                raise ValueError("'same' padding with an even kernel is not supported")
        else:
            padding = cast(Tuple[int, ...], conv.padding)  # "same" is the only string form used
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
        self.weight: torch.Tensor
        self.register_buffer("weight", weight.detach().reshape(weight.shape[0], -1).contiguous().clone())
        self.bias: Optional[torch.Tensor]
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
        self.weight: torch.Tensor
        self.register_buffer("weight", weight.contiguous())
        self.bias: Optional[torch.Tensor]
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, f = x.shape
        rows = channels_last_rows(x)
        kept = (f // self.stride) * self.stride
        if kept != f:
            rows = rows[:, :, :kept]
        rows = rows.reshape(n, t, kept // self.stride, self.stride * c)
        return epilogue.linear(rows, self.weight, self.bias).permute(0, 3, 1, 2)


class SummedDepthwiseConv(nn.Module):
    """A grouped conv with one output channel per group (``k`` inputs each), as a
    depthwise conv of its ``k * out`` input channels followed by summing each
    group's ``k`` adjacent channels (interleaved adds over the channels_last rows).

    oneDNN runs such convolutions (2-3 inputs per group, 1 output) through a slow
    generic kernel (timings in ``docs/performance.md``).
    Returns the ``[N, T, F, C_out]`` rows (contiguous).
    """

    def __init__(self, conv: SwappedConv2d):
        super().__init__()
        out_channels, per_group = conv.weight.shape[:2]
        self.per_group = per_group
        depthwise = conv.weight.reshape(out_channels * per_group, 1, *conv.weight.shape[2:])
        self.conv = SwappedConv2d(
            depthwise.transpose(2, 3),
            None,
            (conv.stride[1], conv.stride[0]),
            (conv.padding[1], conv.padding[0]),
            out_channels * per_group,
        )
        self.bias: Optional[torch.Tensor]
        self.register_buffer("bias", conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = channels_last_rows(self.conv(x))
        k = self.per_group
        y = torch.add(z[..., 0::k], z[..., 1::k])
        for j in range(2, k):
            y.add_(z[..., j::k])
        return y if self.bias is None else y.add_(self.bias)
