"""ReDimNet: waveform in, speaker embedding out."""

from typing import Any, Mapping, Union

import torch
from torch import nn

from ...fast.form import inference_form
from ...frontend import make_frontend
from ...layers.classifier_head import ClassifierHead
from ...layers.pooling import make_pooling
from ..common.network import OptimizedPooledEmbedder, PooledEmbedder, WaveformEmbedder
from .backbone import Backbone
from .config import ModelConfig

__all__ = ["OptimizedReDimNet", "ReDimNet", "WaveformEmbedder"]


class ReDimNet(PooledEmbedder):
    """The full network of "Reshape Dimensions Network for Speaker Recognition".

    ``forward(wave)`` takes a 16 kHz mono waveform ``[N, T]`` (float) and returns
    the raw (not L2-normalised) embedding ``[N, embed_dim]``, or class scores
    ``[N, num_classes]`` when the configuration has a classification head.
    With ``return_all_outputs`` it returns ``(output, outputs_1d)``, where
    ``outputs_1d`` lists the stem output, every stage output and the final
    mixture, all in the 1D view.

    Data flows one way: :attr:`frontend` (log-mel features) -> :attr:`backbone`
    -> :attr:`pool` -> :attr:`pool_norm` -> :attr:`embedding` (-> :attr:`embedding_norm`)
    (-> :attr:`classifier`).

    Args:
        config: a :class:`~redimnet.ModelConfig`, or a mapping of its options; None builds the
            configuration from ``options`` (the original constructor's keyword form).
        **options: :class:`~redimnet.ModelConfig` options, when ``config`` is not given.

    Raises:
        TypeError: both ``config`` and ``options`` were given.
        ValueError: an option is invalid (the message names it).
    """

    config_class = ModelConfig
    config: ModelConfig

    def __init__(self, config: Union[ModelConfig, Mapping[str, Any], None] = None, **options):
        super().__init__(config, options)
        config = self.config
        self.frontend = make_frontend(config)
        self.backbone = Backbone(config)
        self._add_head(make_pooling(config.pooling_func, config.backbone_dim, config.global_context_att))
        self.classifier = (
            ClassifierHead(config.embed_dim, config.num_classes, config.class_dropout, config.head_activation)
            if config.num_classes is not None
            else None
        )

    def forward_features(self, features: torch.Tensor):
        """The network after the front end: ``[N, F, frames]`` (or ``[N, 1, F, frames]``) in."""
        if features.ndim == 3:
            features = features.unsqueeze(1)
        all_outputs = self.config.return_all_outputs
        out = self.backbone(features, return_all_outputs=all_outputs)
        if all_outputs:
            out, outputs_1d = out
        x = self.embed_frames(out)
        if self.classifier is not None:
            x = self.classifier(x)
        return (x, outputs_1d) if all_outputs else x

    def for_inference(self) -> nn.Module:
        """Inference form: :class:`~redimnet.fast.optimize.OptimizedReDimNet`."""
        return OptimizedReDimNet(self)


class OptimizedReDimNet(OptimizedPooledEmbedder):
    """Inference-only ReDimNet built from a plain (eval-mode) model.

    Same interface as :class:`~redimnet.ReDimNet` for inference: ``forward(wave)``,
    :meth:`features` and :meth:`forward_features`; outputs equal the plain
    model's up to float rounding.  Batch norms use their running statistics
    (folded into weights), so this model must not be trained.
    """

    config: ModelConfig

    def __init__(self, model: ReDimNet):
        classifier = inference_form(model.classifier) if model.classifier is not None else None
        super().__init__(model, classifier=classifier)
