"""The optimised inference network: same weights and outputs as :class:`~redimnet.ReDimNet`,
time-major layout (see :mod:`.layout`), batch norms folded, fewer and larger kernels."""

from typing import List, Optional

import torch
from torch import nn

from ..config import ModelConfig
from ..fast import inference_form
from ..model.backbone import Backbone, Stem
from ..model.redimnet import ReDimNet, WaveformEmbedder
from ..model.stage import Stage
from ..layers.stage_mixer import StageMixer
from . import blocked
from .folding import fold_bn_after, fold_bn_before_linear
from .fused_1d import Linear
from .fused_2d import FrequencyPool, SwappedConv2d
from .layout import to_1d_view, to_2d_view


class FastMixer(nn.Module):
    """:class:`~redimnet.layers.StageMixer` on time-major inputs, softmax weights precomputed."""

    def __init__(self, mixer: StageMixer):
        super().__init__()
        self.num_inputs = mixer.num_inputs
        weights = torch.softmax(mixer.logits.detach(), dim=1)[0, :, :, 0]  # [inputs, rows]
        self.register_buffer("weights", weights.contiguous())

    def forward(self, inputs: List[torch.Tensor]) -> torch.Tensor:
        if self.num_inputs == 1:
            return inputs[0]
        mixed = inputs[0] * self.weights[0]
        inplace = not torch.is_grad_enabled()
        for i in range(1, self.num_inputs):
            if inplace:
                mixed.addcmul_(inputs[i], self.weights[i])
            else:
                mixed = torch.addcmul(mixed, inputs[i], self.weights[i])
        return mixed


class FastStem(nn.Module):
    """:class:`~redimnet.model.backbone.Stem`: features ``[N, T, F]`` -> 1D view ``[N, T, F*C]``."""

    def __init__(self, stem: Stem):
        super().__init__()
        self.conv = SwappedConv2d.from_conv(stem.conv)
        self.norm = inference_form(stem.norm)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        n, t, f = features.shape
        x = self.conv(features.reshape(n, 1, t, f))
        x = self.norm(x.permute(0, 2, 3, 1))  # [N, T, F, C]
        return x.reshape(n, t, -1)


class FastStage(nn.Module):
    """:class:`~redimnet.model.Stage` on time-major tensors."""

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
                x = block.forward_blocked(x)
            x = x.contiguous(memory_format=torch.channels_last)
        else:
            x = self.blocks(x)
        if self.squeeze is not None:
            x = self.squeeze(x)
        x = to_1d_view(x.contiguous(memory_format=torch.channels_last))
        if self.time_context is not None:
            x = self.time_context(x)
        return x


class FastBackbone(nn.Module):
    """:class:`~redimnet.model.Backbone`: features ``[N, T, F]`` -> ``[N, T, rows]`` (time-major)."""

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


class OptimizedReDimNet(WaveformEmbedder):
    """Inference-only ReDimNet built from a plain (eval-mode) model.

    Same interface as :class:`~redimnet.ReDimNet` for inference: ``forward(wave)``,
    :meth:`features` and :meth:`forward_features`; outputs equal the plain
    model's up to float rounding.  Batch norms use their running statistics
    (folded into weights), so this model must not be trained.
    """

    is_inference_form = True  # optimize_for_inference copies it instead of converting it again

    def __init__(self, model: ReDimNet):
        super().__init__()
        self.config: ModelConfig = model.config
        self.frontend = model.frontend
        self.backbone = inference_form(model.backbone)
        self.pool = inference_form(model.pool)
        weight, bias = fold_bn_before_linear(model.embedding.weight.detach(), model.embedding.bias.detach(),
                                             model.pool_norm)
        if model.embedding_norm is not None:
            weight, bias = fold_bn_after(weight, bias, model.embedding_norm)
        self.embedding = Linear(weight, bias)
        self.classifier = inference_form(model.classifier) if model.classifier is not None else None
        self.return_all_outputs = bool(model.config.return_all_outputs)
        self.eval()

    def forward_features(self, features: torch.Tensor):
        """The network after the front end: ``[N, F, frames]`` (or ``[N, 1, F, frames]``) in."""
        if features.ndim == 4:
            features = features.squeeze(1)
        outputs: Optional[List[torch.Tensor]] = [] if self.return_all_outputs else None
        x = self.backbone(features.transpose(1, 2), outputs)
        x = self.embedding(self.pool(x))
        if self.classifier is not None:
            x = self.classifier(x)
        if outputs is not None:
            return x, [y.transpose(1, 2) for y in outputs]
        return x
