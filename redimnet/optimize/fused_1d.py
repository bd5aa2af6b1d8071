"""1D building blocks of the optimised model, on time-major ``[N, T, C]`` tensors.

1x1 convolutions become ``linear`` calls, channel layer norms become
``layer_norm`` over the last axis, and depthwise convolutions over time run as
channels_last 2D convolutions of height 1 (much faster on CPU than ``conv1d``).
"""

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..fast import inference_form
from ..layers.convnext_block import ConvNeXtBlock
from ..layers.layer_norm import ChannelLayerNorm
from ..layers.pooling import ASTP, _VAR_FLOOR
from ..layers.time_context import ConvPositionEncoding, PointwiseMLP, TimeContextBlock
from ..layers.transformer import TransformerLayer
from . import epilogue
from .folding import fold_bn_after, fold_convnext_depthwise
from .layout import image_as_time, time_as_image


def _matrix(conv: nn.Module) -> torch.Tensor:
    """The ``[out, in]`` matrix of a 1x1 convolution."""
    return conv.weight.detach().reshape(conv.weight.shape[0], -1).clone()


def _vector(tensor: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    return None if tensor is None else tensor.detach().clone()


class Linear(nn.Module):
    """``linear`` over the last axis with fixed (buffer) weights."""

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor]):
        super().__init__()
        self.register_buffer("weight", weight.detach().contiguous().clone())
        self.register_buffer("bias", _vector(bias))

    @classmethod
    def from_conv(cls, conv: nn.Module) -> "Linear":
        return cls(_matrix(conv), conv.bias)

    def forward(self, x: torch.Tensor, act: str = "none", residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``act(linear(x)) [+ residual]``."""
        return epilogue.linear(x, self.weight, self.bias, act, residual)


class LayerNorm(nn.Module):
    """:class:`~redimnet.layers.ChannelLayerNorm` on the last axis."""

    def __init__(self, norm: ChannelLayerNorm):
        super().__init__()
        self.register_buffer("weight", norm.weight.detach().clone())
        self.register_buffer("bias", norm.bias.detach().clone())
        self.eps = norm.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


class TimeConv(nn.Module):
    """A grouped "same" convolution over time, ``[N, T, C_in] -> [N, T, C_out]``."""

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor], groups: int):
        super().__init__()
        kernel = weight.shape[-1]
        if kernel % 2 == 0:
            raise ValueError("only odd kernels are supported")
        self.register_buffer("weight", weight.detach().unsqueeze(2).contiguous(memory_format=torch.channels_last))
        self.register_buffer("bias", _vector(bias))
        self.padding = (0, kernel // 2)
        self.groups = groups

    def forward(self, x: torch.Tensor, act: str = "none") -> torch.Tensor:
        """``act(conv(x))``."""
        y = epilogue.conv2d(time_as_image(x), self.weight, self.bias, (1, 1), self.padding, self.groups, act)
        return image_as_time(y)


class FastConvNeXt1d(nn.Module):
    """:class:`~redimnet.layers.ConvNeXtBlock` (1D): parallel depthwise convs merged into one,
    batch norm folded into it."""

    def __init__(self, block: ConvNeXtBlock):
        super().__init__()
        weight, bias, index = fold_convnext_depthwise(block)
        self.depthwise = TimeConv(weight, bias, block.depthwise[0].groups)
        self.act = "relu" if isinstance(block.act, nn.ReLU) else "gelu"
        self.pointwise = Linear(_matrix(block.pointwise)[:, index], block.pointwise.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x, self.act), residual=x)


class FastPositionEncoding(nn.Module):
    """:class:`~redimnet.layers.time_context.ConvPositionEncoding` on ``[N, T, C]``."""

    def __init__(self, block: ConvPositionEncoding):
        super().__init__()
        if block.conv.padding[0] * 2 + 1 != block.conv.kernel_size[0]:
            raise ValueError("unexpected position-encoding padding")
        self.conv = TimeConv(block.conv.weight, block.conv.bias, block.conv.groups)
        self.norm = inference_form(block.norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.norm(self.conv(x))


class FastPointwiseMLP(nn.Module):
    """:class:`~redimnet.layers.time_context.PointwiseMLP` on ``[N, T, C]``."""

    def __init__(self, block: PointwiseMLP):
        super().__init__()
        self.expand = Linear.from_conv(block.expand)
        self.norm = inference_form(block.norm)
        self.project = Linear.from_conv(block.project)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(F.gelu(self.norm(self.expand(x))))


def pad_heads(weight: torch.Tensor, bias: Optional[torch.Tensor], heads: int, width: int):
    """Rows of a projection onto ``heads`` heads, each head's rows zero-padded to ``width``."""
    rows = weight.shape[0] // heads
    padded = weight.new_zeros((heads, width) + tuple(weight.shape[1:]))
    padded[:, :rows] = weight.reshape((heads, rows) + tuple(weight.shape[1:]))
    if bias is None:
        return padded.reshape((heads * width,) + tuple(weight.shape[1:])), None
    padded_bias = bias.new_zeros(heads, width)
    padded_bias[:, :rows] = bias.reshape(heads, rows)
    return padded.reshape((heads * width,) + tuple(weight.shape[1:])), padded_bias.reshape(-1)


class FastTransformer(nn.Module):
    """:class:`~redimnet.layers.TransformerLayer` on ``[N, T, C]`` with one fused q/k/v projection.

    Heads narrower than 16 (b0: 5 and 15, b5: 12) are zero-padded to 16: CPU
    attention kernels run 1.2-1.7x faster at that width (b0's 5-wide heads on
    667 frames: 2.9 -> 1.7 ms).  The padding lives in the weights, so it costs
    no copies: q/k/v projections get zero rows (the extra q.k terms and value
    columns are exact zeros), the output projection zero columns, and the
    attention keeps the scale of the true width.
    """

    PADDED_WIDTH = 16

    def __init__(self, layer: TransformerLayer):
        super().__init__()
        att = layer.attention
        self.heads = att.heads
        dim = att.query.weight.shape[0]
        self.head_width = dim // self.heads
        self.scale = self.head_width ** -0.5
        self.width = max(self.head_width, self.PADDED_WIDTH)
        projections = [pad_heads(proj.weight.detach(), proj.bias.detach(), self.heads, self.width)
                       for proj in (att.query, att.key, att.value)]
        self.qkv = Linear(torch.cat([w for w, _ in projections]), torch.cat([b for _, b in projections]))
        output = pad_heads(att.output.weight.detach().t(), None, self.heads, self.width)[0].t()
        self.output = Linear(output, att.output.bias)
        self.norm1, self.norm2 = layer.norm1, layer.norm2
        self.expand = Linear(layer.feed_forward.expand.weight, layer.feed_forward.expand.bias)
        self.project = Linear(layer.feed_forward.project.weight, layer.feed_forward.project.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        qkv = self.qkv(x).view(n, t, 3, self.heads, self.width).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], scale=self.scale)
        x = self.norm1(x + self.output(y.transpose(1, 2).reshape(n, t, self.heads * self.width)))
        return self.norm2(self.project(self.expand(x, "gelu_tanh"), residual=x))


class FastTimeContext(nn.Module):
    """:class:`~redimnet.layers.TimeContextBlock` on the time-major 1D view ``[N, T, F*C]``."""

    def __init__(self, block: TimeContextBlock):
        super().__init__()
        self.reduce = Linear.from_conv(block.reduce)
        self.reduce_norm = inference_form(block.reduce_norm)
        # The context is one block, or a plain nn.Sequential of blocks.
        layers = list(block.context) if type(block.context) is nn.Sequential else [block.context]
        self.context = nn.Sequential(*[inference_form(layer) for layer in layers])
        self.expand = Linear.from_conv(block.expand)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(self.context(self.reduce_norm(self.reduce(x))), residual=x)


class FastASTP(nn.Module):
    """:class:`~redimnet.layers.ASTP` on ``[N, T, C]``.

    With global context, the attention's first 1x1 conv sees ``[x, mean, std]``;
    the mean and std columns are the same at every frame, so their part of the
    product is computed once per utterance instead of once per frame.
    """

    def __init__(self, pool: ASTP):
        super().__init__()
        self.global_context = pool.global_context
        weight = _matrix(pool.hidden)
        dim = pool.score.out_channels
        self.register_buffer("hidden_x", weight[:, :dim].contiguous())
        self.register_buffer("hidden_stats", weight[:, dim:].contiguous() if self.global_context else None)
        self.register_buffer("hidden_bias", _vector(pool.hidden.bias))
        self.score = Linear.from_conv(pool.score)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.global_context:
            mean = x.mean(dim=1)
            std = torch.sqrt(torch.var(x, dim=1) + _VAR_FLOOR)
            stats = F.linear(torch.cat([mean, std], dim=1), self.hidden_stats, self.hidden_bias)
            hidden = F.linear(x, self.hidden_x) + stats.unsqueeze(1)
        else:
            hidden = F.linear(x, self.hidden_x, self.hidden_bias)
        weights = torch.softmax(self.score(torch.tanh(hidden)), dim=1)
        mean = torch.sum(weights * x, dim=1)
        var = torch.sum(weights * x * x, dim=1) - mean * mean
        return torch.cat([mean, torch.sqrt(var.clamp(min=_VAR_FLOOR))], dim=1)


def fold_projection(projection: nn.Module) -> Linear:
    """The backbone's ``out_channels`` projection (1x1 conv + batch norm) as one linear."""
    weight, bias = fold_bn_after(_matrix(projection.conv), _vector(projection.conv.bias), projection.norm)
    return Linear(weight, bias)
