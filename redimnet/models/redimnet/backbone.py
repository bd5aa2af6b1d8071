"""The ReDimNet backbone: log-mel image in, frame-level features out."""

from typing import List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from ...fast.folding import fold_bn_after
from ...fast.form import inference_form
from ...fast.modules import Linear, detached_copy, matrix_of
from ...layers.stage_mixer import StageMixer
from ...layers.stem import Stem
from .config import ModelConfig
from .stage import Stage


class Projection(nn.Sequential):
    """1x1 convolution to ``out_channels`` and batch norm (the ``out_channels`` option)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size=1)
        self.norm = nn.BatchNorm1d(out_channels)

    def for_inference(self) -> nn.Module:
        """Inference form: one linear layer with the batch norm folded in."""
        weight, bias = fold_bn_after(matrix_of(self.conv), detached_copy(self.conv.bias), self.norm)
        return Linear(weight, bias)


class Backbone(nn.Module):
    """``[N, 1, F, T]`` features -> ``[N, C*F or out_channels, T]``.

    Every stage reads a learned mixture of the stem output and of all earlier
    stage outputs (all in the 1D view, ``C*F`` rows), and the final output is
    one more such mixture over everything.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.feat_agg_dropout = config.feat_agg_dropout
        self.stem = Stem(config.C)
        shapes = config.stage_shapes()
        self.stages = nn.ModuleList(
            Stage(i, spec, c, f, config) for i, (spec, (c, f)) in enumerate(zip(config.stages_setup, shapes))
        )
        num_stages = len(config.stages_setup)
        # The original freezes the final mixture of a one-stage network.
        self.mixer = StageMixer(num_stages + 1, config.width, trainable=num_stages > 1)
        self.projection = Projection(config.width, config.out_channels) if config.out_channels else None

    def forward(
        self, x: torch.Tensor, return_all_outputs: bool = False
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, List[torch.Tensor]]]:
        outputs = [self.stem.rows(x)]
        for stage in self.stages:
            y = stage(outputs)
            if self.training and self.feat_agg_dropout > 0:
                y = F.dropout(y, p=self.feat_agg_dropout)
            outputs.append(y)
        x = self.mixer(outputs)
        if return_all_outputs:
            outputs.append(x)
        if self.projection is not None:
            x = self.projection(x)
        return (x, outputs) if return_all_outputs else x

    def for_inference(self) -> nn.Module:
        """Inference form on time-major tensors."""
        return FastBackbone(self)


class FastBackbone(nn.Module):
    """:class:`~redimnet.models.redimnet.Backbone`: features ``[N, T, F]`` -> ``[N, T, rows]`` (time-major)."""

    def __init__(self, backbone: Backbone):
        super().__init__()
        self.stem = inference_form(backbone.stem)
        self.stages = nn.ModuleList(inference_form(stage) for stage in backbone.stages)
        self.mixer = inference_form(backbone.mixer)
        self.projection = inference_form(backbone.projection) if backbone.projection is not None else None

    def forward(self, features: torch.Tensor, outputs: Optional[List[torch.Tensor]] = None) -> torch.Tensor:
        all_outputs = [self.stem(features)]
        for stage in self.stages:
            all_outputs.append(stage(all_outputs))
        x = self.mixer(all_outputs)
        if outputs is not None:
            outputs.extend(all_outputs)
            outputs.append(x)
        if self.projection is not None:
            x = self.projection(x)
        return x
