"""The ReDimNet2 backbone: ReDimNet's 1D/2D reshaping with time-pooled stages.

Every stage reads a learned mixture of all earlier 1D maps (full frame rate),
reshapes it to 2D, pools frequency and time with one strided convolution
(time by the product of the time strides so far), runs its 2D blocks, goes back
to 1D, optionally adds time context, and is upsampled back to the full frame
rate.  Blocks are the toolkit's (stem, ResNet/ConvNeXt blocks, time-context
block, stage mixer); what is new here is the stage wiring.
"""

import math
from typing import List, Optional, Tuple, Union

import torch
from torch import nn

from ...fast.folding import fold_bn_after
from ...fast.form import inference_form
from ...fast.layout import to_1d_view, to_2d_view
from ...fast.modules import Linear, PointwiseConv, SwappedConv2d, detached_copy, matrix_of
from ...layers.block_2d import make_2d_block
from ...layers.reshape import to_1d, to_2d
from ...layers.stage_mixer import StageMixer
from ...layers.stem import Stem
from ...layers.time_context import TimeContextBlock
from .config import ReDimNet2Config, Stage2Spec
from .freq_encoding import FrequencyEncoding


class ChannelProjection(nn.Sequential):
    """1x1 convolution back to the stage's channel count and batch norm (after an expansion)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.norm = nn.BatchNorm2d(out_channels, eps=1e-6)

    def for_inference(self) -> nn.Module:
        """Inference form: one pointwise convolution with the batch norm folded in."""
        weight, bias = fold_bn_after(matrix_of(self.conv), detached_copy(self.conv.bias), self.norm)
        return PointwiseConv(weight, bias)


class TimeMajorGroupNorm(nn.Module):
    """An eval-mode ``nn.GroupNorm`` over the rows of a time-major 1D view ``[N, T, rows]``."""

    def __init__(self, norm: nn.GroupNorm):
        super().__init__()
        self.groups = norm.num_groups
        self.eps = norm.eps
        self.weight: Optional[torch.Tensor]
        self.register_buffer("weight", detached_copy(norm.weight))
        self.bias: Optional[torch.Tensor]
        self.register_buffer("bias", detached_copy(norm.bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, rows = x.shape
        grouped = x.view(n, t, self.groups, rows // self.groups)
        var, mean = torch.var_mean(grouped, dim=(1, 3), keepdim=True, correction=0)
        y = ((grouped - mean) * torch.rsqrt(var + self.eps)).view(n, t, rows)
        # an affine GroupNorm has both weight and bias, a plain one neither
        return torch.addcmul(self.bias, y, self.weight) if self.weight is not None and self.bias is not None else y


def time_major_group_norm(norm: Optional[nn.GroupNorm]) -> Optional[nn.Module]:
    return None if norm is None else TimeMajorGroupNorm(norm)


def upsample_time(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Nearest-neighbour upsampling of the last axis of ``[N, rows, T]`` by an integer factor."""
    if factor == 1:
        return x
    if torch.onnx.is_in_onnx_export():
        # the same copies as one ONNX Resize (nearest, integer factor): runtimes run it as one
        # kernel, while the Expand below became a broadcast multiplication that took a fifth of
        # OpenVINO's int8 time for ReDimNet2-b2
        return nn.functional.interpolate(x, scale_factor=float(factor), mode="nearest")
    n, rows, t = x.shape
    return x.unsqueeze(-1).expand(n, rows, t, factor).reshape(n, rows, t * factor)


class Stage2(nn.Module):
    """One ReDimNet2 stage; returns a list of one 1D map, or two with ``dual_agg`` (2D path, 1D path)."""

    def __init__(
        self, spec: Stage2Spec, in_channels: int, in_freq: int, time_pool: int, num_inputs: int, config: ReDimNet2Config
    ):
        super().__init__()
        width = config.width
        out_channels, out_freq = in_channels * spec.freq_stride, in_freq // spec.freq_stride
        expanded = int(out_channels * spec.conv_exp)
        self.in_channels = in_channels
        self.time_pool = time_pool
        self.mixer = StageMixer(num_inputs, width, trainable=num_inputs > 1, full_placeholder=True)
        self.freq_encoding = FrequencyEncoding(in_channels, in_freq) if config.use_freq_pos_enc else None
        self.pool = nn.Conv2d(
            in_channels,
            expanded,
            kernel_size=(spec.freq_stride, time_pool),
            stride=(spec.freq_stride, time_pool),
            groups=math.gcd(in_channels, expanded) if config.compress_tconvs else 1,
        )
        self.blocks = nn.Sequential(
            *[
                make_2d_block(config.block_2d_type, expanded, out_freq, config.group_divisor, spec.kernel_sizes)
                for _ in range(spec.num_blocks)
            ]
        )
        self.squeeze = ChannelProjection(expanded, out_channels) if spec.conv_exp != 1 else None
        self.time_context = (
            TimeContextBlock(width, width // spec.att_block_red, config.block_1d_type)
            if spec.att_block_red is not None
            else None
        )
        self.dual = config.dual_agg and self.time_context is not None
        self.norm = nn.GroupNorm(config.C, width) if config.agg_gnorm else None
        self.norm_1d = nn.GroupNorm(config.C, width) if config.agg_gnorm and self.dual else None

    @property
    def num_outputs(self) -> int:
        return 2 if self.dual else 1

    def _finish(self, x: torch.Tensor, norm) -> torch.Tensor:
        x = upsample_time(x, self.time_pool)
        return x if norm is None else norm(x)

    def forward(self, earlier_outputs: List[torch.Tensor]) -> List[torch.Tensor]:
        x = to_2d(self.mixer(earlier_outputs), self.in_channels)
        if self.freq_encoding is not None:
            x = self.freq_encoding(x)
        x = self.blocks(self.pool(x))
        if self.squeeze is not None:
            x = self.squeeze(x)
        x = to_1d(x)
        if self.dual and self.time_context is not None:  # dual implies a time-context block
            return [self._finish(x, self.norm), self._finish(self.time_context(x), self.norm_1d)]
        if self.time_context is not None:
            x = self.time_context(x)
        return [self._finish(x, self.norm)]

    def for_inference(self) -> nn.Module:
        """Inference form on time-major tensors."""
        return FastStage2(self)


class FastStage2(nn.Module):
    """:class:`Stage2` on time-major tensors (1D view ``[N, T, rows]``, 2D view ``[N, C, T, F]``)."""

    def __init__(self, stage: Stage2):
        super().__init__()
        self.in_channels = stage.in_channels
        self.time_pool = stage.time_pool
        self.dual = stage.dual
        self.mixer = inference_form(stage.mixer)
        self.freq_encoding = inference_form(stage.freq_encoding) if stage.freq_encoding is not None else None
        self.pool = SwappedConv2d.from_conv(stage.pool)
        self.blocks = nn.Sequential(*[inference_form(block) for block in stage.blocks])
        self.squeeze = inference_form(stage.squeeze) if stage.squeeze is not None else None
        self.time_context = inference_form(stage.time_context) if stage.time_context is not None else None
        self.norm = time_major_group_norm(stage.norm)
        self.norm_1d = time_major_group_norm(stage.norm_1d)

    def _finish(self, x: torch.Tensor, norm) -> torch.Tensor:
        if self.time_pool > 1:
            x = x.repeat_interleave(self.time_pool, dim=1)
        return x if norm is None else norm(x)

    def forward(self, earlier_outputs: List[torch.Tensor]) -> List[torch.Tensor]:
        x = to_2d_view(self.mixer(earlier_outputs), self.in_channels)
        if self.freq_encoding is not None:
            x = self.freq_encoding(x)
        x = self.blocks(self.pool(x.contiguous(memory_format=torch.channels_last)))
        if self.squeeze is not None:
            x = self.squeeze(x)
        x = to_1d_view(x.contiguous(memory_format=torch.channels_last))
        if self.dual and self.time_context is not None:  # dual implies a time-context block
            plain = self._finish(x, self.norm)
            if plain is x:  # the time-context form may add its residual into its input
                plain = x.clone()
            return [plain, self._finish(self.time_context(x), self.norm_1d)]
        if self.time_context is not None:
            x = self.time_context(x)
        return [self._finish(x, self.norm)]


class ReDimNet2Backbone(nn.Module):
    """``[N, 1, F, T]`` features -> ``[N, C*F or out_channels, T']`` (1D output) or
    ``[N, c_last or out_channels, F / freq_stride, T']`` (``return_2d_output``), where
    ``T'`` is ``T`` cut to a multiple of the total time stride."""

    def __init__(self, config: ReDimNet2Config):
        super().__init__()
        self.time_stride = config.time_stride
        self.return_2d_output = config.return_2d_output
        self.stem = Stem(config.C)
        self.stem_norm = nn.GroupNorm(config.C, config.width) if config.agg_gnorm else None
        shapes = config.stage_shapes()
        stages, time_pool, num_inputs = [], 1, 1
        for spec, (c, f) in zip(config.stages_setup, shapes):
            time_pool *= spec.time_stride
            stage = Stage2(spec, c, f, time_pool, num_inputs, config)
            num_inputs += stage.num_outputs
            stages.append(stage)
        self.stages = nn.ModuleList(stages)
        self.mixer = StageMixer(num_inputs, config.width, trainable=num_inputs > 1, full_placeholder=True)
        self.out_channels_2d = shapes[-1][0]
        self.head: Optional[Union[nn.Conv1d, nn.Conv2d]]
        if config.out_channels is None:
            self.head = None
        elif config.return_2d_output:
            self.head = nn.Conv2d(self.out_channels_2d, config.out_channels, 1)
        else:
            self.head = nn.Conv1d(config.width, config.out_channels, 1)

    def forward(
        self, x: torch.Tensor, return_all_outputs: bool = False
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, List[torch.Tensor]]]:
        frames = x.shape[-1]
        x = x[..., : frames // self.time_stride * self.time_stride]
        x = self.stem.rows(x)
        if self.stem_norm is not None:
            x = self.stem_norm(x)
        outputs = [x]
        for stage in self.stages:
            outputs.extend(stage(outputs))
        x = self.mixer(outputs)
        if self.return_2d_output:
            x_out = to_2d(x, self.out_channels_2d)
        else:
            x_out = x
        if self.head is not None:
            x_out = self.head(x_out)
        if return_all_outputs:
            return x_out, outputs + [x]
        return x_out

    def for_inference(self) -> nn.Module:
        """Inference form: features ``[N, T, F]`` -> time-major ``[N, T, D]``, the rows in the
        order the pooling sees them (a 2D output flattened channel-major)."""
        return FastReDimNet2Backbone(self)


class FastReDimNet2Backbone(nn.Module):
    """:class:`ReDimNet2Backbone` on time-major tensors."""

    def __init__(self, backbone: ReDimNet2Backbone):
        super().__init__()
        self.time_stride = backbone.time_stride
        self.return_2d_output = backbone.return_2d_output
        self.out_channels_2d = backbone.out_channels_2d
        self.stem = inference_form(backbone.stem)
        self.stem_norm = time_major_group_norm(backbone.stem_norm)
        self.stages = nn.ModuleList(inference_form(stage) for stage in backbone.stages)
        self.mixer = inference_form(backbone.mixer)
        self.head: Optional[nn.Module]
        if backbone.head is None:
            self.head = None
        elif self.return_2d_output:
            self.head = PointwiseConv(matrix_of(backbone.head), backbone.head.bias)
        else:
            self.head = Linear.from_conv(backbone.head)

    def forward(self, features: torch.Tensor, outputs: Optional[List[torch.Tensor]] = None) -> torch.Tensor:
        frames = features.shape[1]
        features = features[:, : frames // self.time_stride * self.time_stride]
        x = self.stem(features)
        if self.stem_norm is not None:
            x = self.stem_norm(x)
        all_outputs = [x]
        for stage in self.stages:
            all_outputs.extend(stage(all_outputs))
        x = self.mixer(all_outputs)
        if outputs is not None:
            outputs.extend(all_outputs)
            outputs.append(x)
        if not self.return_2d_output:
            return x if self.head is None else self.head(x)
        x = to_2d_view(x, self.out_channels_2d)  # [N, C, T, F]
        if self.head is not None:
            x = self.head(x.contiguous(memory_format=torch.channels_last))
        n, c, t, f = x.shape
        return x.permute(0, 2, 1, 3).reshape(n, t, c * f)  # rows channel-major, as the plain model flattens
