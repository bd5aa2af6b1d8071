"""ReDimNet2: waveform in, speaker embedding out."""

from typing import Any, Mapping, Union

import torch
import torch.nn.functional as F
from torch import nn

from ...frontend import make_frontend
from ...layers.pooling import make_pooling
from ..common.network import OptimizedPooledEmbedder, PooledEmbedder
from .backbone import ReDimNet2Backbone
from .config import ReDimNet2Config


class ReDimNet2(PooledEmbedder):
    """The network of "Scaling Speaker Verification via Time-Pooled Dimension Reshaping".

    ``forward(wave)`` takes a 16 kHz mono waveform ``[N, T]`` and returns the raw
    (not L2-normalised) embedding ``[N, embed_dim]``; with ``return_all_outputs``
    it returns ``(embedding, outputs_1d)``, the stem output, every stage output
    and the final mixture, all ``[N, C*F, T']``.

    Data flows one way: (right padding) -> :attr:`frontend` -> :attr:`backbone`
    -> flatten (channel-major) -> drop ``before_pool_offset`` frames -> :attr:`pool`
    -> :attr:`pool_norm` -> :attr:`embedding` (-> :attr:`embedding_norm`).

    Args:
        config: a :class:`~redimnet.ReDimNet2Config`, or a mapping of its options; None builds the
            configuration from ``options``.
        **options: :class:`~redimnet.ReDimNet2Config` options, when ``config`` is not given.

    Raises:
        TypeError: both ``config`` and ``options`` were given.
        ValueError: an option is invalid (the message names it).
    """

    config_class = ReDimNet2Config
    config: ReDimNet2Config

    def __init__(self, config: Union[ReDimNet2Config, Mapping[str, Any], None] = None, **options):
        super().__init__(config, options)
        config = self.config
        self.frontend = make_frontend(config)
        self.backbone = ReDimNet2Backbone(config)
        self._add_head(
            make_pooling(config.pooling_func, config.backbone_dim, config.global_context_att, extra=("TMAP",))
        )

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        """Front-end features ``[N, F, frames]`` of a waveform ``[N, T]`` (right-padded first
        with ``pad_right_samples`` zeros where the configuration asks for it)."""
        return _padded_features(self, wave)

    def forward_features(self, features: torch.Tensor):
        """The network after the front end: ``[N, F, frames]`` (or ``[N, 1, F, frames]``) in."""
        if features.ndim == 3:
            features = features.unsqueeze(1)
        all_outputs = self.config.return_all_outputs
        out = self.backbone(features, return_all_outputs=all_outputs)
        if all_outputs:
            out, outputs_1d = out
        if out.ndim == 4:
            out = out.reshape(out.shape[0], -1, out.shape[-1])
        if self.config.before_pool_offset:
            out = out[:, :, self.config.before_pool_offset :]
        x = self.embed_frames(out)
        return (x, outputs_1d) if all_outputs else x

    def for_inference(self) -> nn.Module:
        """Inference form: :class:`OptimizedReDimNet2`."""
        return OptimizedReDimNet2(self)


def _padded_features(model: "Union[ReDimNet2, OptimizedReDimNet2]", wave: torch.Tensor) -> torch.Tensor:
    if wave.ndim != 2:
        raise ValueError(f"expected a waveform batch of shape [N, T], got shape {tuple(wave.shape)}")
    if model.config.pad_right_samples:
        wave = F.pad(wave, (0, model.config.pad_right_samples))
    return model.frontend(wave)


class OptimizedReDimNet2(OptimizedPooledEmbedder):
    """Inference-only ReDimNet2 built from a plain (eval-mode) model: time-major layout,
    batch norms folded, the toolkit's fused block forms.  Same interface and outputs
    (up to float rounding) as :class:`ReDimNet2`; must not be trained."""

    config: ReDimNet2Config

    def __init__(self, model: ReDimNet2):
        super().__init__(model, before_pool_offset=model.config.before_pool_offset or 0)

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        return _padded_features(self, wave)
