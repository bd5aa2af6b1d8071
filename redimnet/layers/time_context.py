"""The 1D time-context block that ends a ReDimNet stage."""

import torch
import torch.nn.functional as F
from torch import nn

from ..fast.form import inference_form
from ..fast.modules import Linear, TimeConv
from .convnext_block import ConvNeXtBlock
from .layer_norm import ChannelLayerNorm
from .options import ATTENTION_HEADS
from .transformer import TransformerLayer

POSITION_KERNEL = 59  # kernel of the convolutional position encoding ("att" blocks)


class ConvPositionEncoding(nn.Module):
    """``x + norm(depthwise_conv(x))``: relative position information for attention."""

    def __init__(self, channels: int, kernel_size: int = POSITION_KERNEL):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)
        self.norm = ChannelLayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.norm(self.conv(x))

    def for_inference(self) -> nn.Module:
        """Inference form on ``[N, T, C]``."""
        return FastPositionEncoding(self)


class PointwiseMLP(nn.Sequential):
    """1x1 conv to twice the width, layer norm, GELU, 1x1 conv back ("fc" blocks)."""

    def __init__(self, channels: int):
        super().__init__()
        self.expand = nn.Conv1d(channels, 2 * channels, 1)
        self.norm = ChannelLayerNorm(2 * channels)
        self.act = nn.GELU()
        self.project = nn.Conv1d(2 * channels, channels, 1)

    def for_inference(self) -> nn.Module:
        """Inference form on ``[N, T, C]``."""
        return FastPointwiseMLP(self)


def _context_layers(kind: str, hidden: int) -> nn.Module:
    if kind == "fc":
        return PointwiseMLP(hidden)
    if kind == "conv":
        return nn.Sequential(*[ConvNeXtBlock(hidden, dim=1, kernel_sizes=(7, 15, 31)) for _ in range(4)])
    if kind == "att":
        return nn.Sequential(ConvPositionEncoding(hidden), TransformerLayer(hidden, 2 * hidden, ATTENTION_HEADS))
    if kind == "conv+att":
        convs = [ConvNeXtBlock(hidden, dim=1, kernel_sizes=(k,)) for k in (7, 19, 31, 59)]
        return nn.Sequential(*convs, TransformerLayer(hidden, hidden, ATTENTION_HEADS))
    raise ValueError(f"block_1d_type={kind!r} is not supported")


class TimeContextBlock(nn.Module):
    """Residual bottleneck over the 1D view ``[N, C*F, T]``.

    Projects the rows down to ``hidden`` channels (1x1 conv + layer norm), runs
    the context layers selected by ``kind`` ("fc", "conv", "att" or "conv+att"),
    projects back up and adds the input.
    """

    def __init__(self, channels: int, hidden: int, kind: str):
        super().__init__()
        self.reduce = nn.Conv1d(channels, hidden, 1)
        self.reduce_norm = ChannelLayerNorm(hidden)
        self.context = _context_layers(kind, hidden)
        self.expand = nn.Conv1d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.expand(self.context(self.reduce_norm(self.reduce(x))))

    def for_inference(self) -> nn.Module:
        """Inference form on the time-major 1D view (context layers converted one by one)."""
        return FastTimeContext(self)


class FastPositionEncoding(nn.Module):
    """:class:`~redimnet.layers.time_context.ConvPositionEncoding` on ``[N, T, C]``."""

    def __init__(self, block: ConvPositionEncoding):
        super().__init__()
        padding = block.conv.padding
        if isinstance(padding, str) or padding[0] * 2 + 1 != block.conv.kernel_size[0]:
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
