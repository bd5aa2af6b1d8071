"""One ReDimNet stage: mix earlier outputs, work in 2D, return to 1D, add time context."""

from typing import List, Optional

import torch
from torch import nn

from ...fast import blocked
from ...fast.form import inference_form
from ...fast.layout import to_1d_view, to_2d_view
from ...fast.modules import FrequencyPool
from ...layers.block_2d import make_2d_block
from ...layers.channel_squeeze import ChannelSqueeze
from ...layers.reshape import to_1d, to_2d
from ...layers.stage_mixer import StageMixer
from ...layers.time_context import TimeContextBlock
from .config import ModelConfig, StageSpec


class Stage(nn.Module):
    """Stage ``index`` of the backbone.

    1. ``mixer``: a learned per-row mixture of the stem and all earlier stage outputs (1D view).
    2. ``pool``: reshape to 2D with ``in_channels`` channels, then a ``(stride, 1)``
       convolution that divides the frequency bins by ``stride`` and multiplies the
       channels by ``stride * conv_exp``.
    3. ``blocks``: ``num_blocks`` 2D blocks.
    4. ``squeeze`` (only when ``conv_exp > 1``): back to ``in_channels * stride`` channels.
    5. reshape to 1D, then ``time_context`` (when ``att_block_red`` is set).
    """

    def __init__(self, index: int, spec: StageSpec, in_channels: int, in_freq: int, config: ModelConfig):
        super().__init__()
        width = config.width
        out_channels, out_freq = in_channels * spec.stride, in_freq // spec.stride
        expanded = out_channels * spec.conv_exp
        self.in_channels = in_channels
        self.mixer = StageMixer(index + 1, width)
        self.pool = nn.Conv2d(in_channels, expanded, kernel_size=(spec.stride, 1), stride=(spec.stride, 1))
        self.blocks = nn.Sequential(
            *[
                make_2d_block(config.block_2d_type, expanded, out_freq, config.group_divisor)
                for _ in range(spec.num_blocks)
            ]
        )
        self.squeeze: Optional[ChannelSqueeze]
        if spec.conv_exp != 1:
            # ReLU only when both block types ask for it, as in the original.
            relu = "relu" in config.block_1d_type and "relu" in config.block_2d_type
            self.squeeze = ChannelSqueeze(expanded, out_channels, config.group_divisor, "relu" if relu else "gelu")
        else:
            self.squeeze = None
        self.time_context: Optional[TimeContextBlock]
        if spec.att_block_red is not None:
            self.time_context = TimeContextBlock(width, width // spec.att_block_red, config.block_1d_type)
        else:
            self.time_context = None

    def forward(self, earlier_outputs: List[torch.Tensor]) -> torch.Tensor:
        x = to_2d(self.mixer(earlier_outputs), self.in_channels)
        x = self.blocks(self.pool(x))
        if self.squeeze is not None:
            x = self.squeeze(x)
        x = to_1d(x)
        if self.time_context is not None:
            x = self.time_context(x)
        return x

    def for_inference(self) -> nn.Module:
        """Inference form on time-major tensors."""
        return FastStage(self)


class FastStage(nn.Module):
    """:class:`~redimnet.models.redimnet.Stage` on time-major tensors."""

    def __init__(self, stage: Stage):
        super().__init__()
        self.in_channels = stage.in_channels
        self.mixer = inference_form(stage.mixer)
        self.pool = FrequencyPool(stage.pool)
        self.blocks = nn.Sequential(*[inference_form(block) for block in stage.blocks])
        self.squeeze = inference_form(stage.squeeze) if stage.squeeze is not None else None
        self.time_context = inference_form(stage.time_context) if stage.time_context is not None else None
        self.blocked = blocked.worth_it(self.blocks)

    def forward(self, earlier_outputs: List[torch.Tensor]) -> torch.Tensor:
        x = to_2d_view(self.mixer(earlier_outputs), self.in_channels)
        x = self.pool(x)
        if self.blocked and blocked.usable(x):
            x = x.contiguous()
            for block in self.blocks:
                x = block.forward_blocked(x)  # type: ignore[operator]  # blocked.worth_it checked it exists
            x = x.contiguous(memory_format=torch.channels_last)
        else:
            x = self.blocks(x)
        if self.squeeze is not None:
            x = self.squeeze(x)
        x = to_1d_view(x.contiguous(memory_format=torch.channels_last))
        if self.time_context is not None:
            x = self.time_context(x)
        return x
