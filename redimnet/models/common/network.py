"""What the networks of every family share: waveform -> features -> embedding, the head after the
backbone, and the inference form built from those parts.  Typed against
:class:`~redimnet.models.common.config.NetworkOptions`, the shape of every family's configuration."""

from typing import TYPE_CHECKING, Any, ClassVar, List, Mapping, Optional, Type

import torch
from torch import nn

from ...fast.folding import fold_bn_after, fold_bn_before_linear
from ...fast.form import inference_form
from ...fast.modules import Linear
from ...layers.pooling import Pooling
from .config import NetworkOptions, ReleaseConfig


class WaveformEmbedder(nn.Module):
    """What every form of the network offers: waveform -> features -> embedding.

    Subclasses set ``config`` and ``frontend`` and implement :meth:`forward_features`.
    """

    config: NetworkOptions
    if TYPE_CHECKING:  # a submodule: declared for the type checker only (TorchScript rejects nn.Module annotations)
        frontend: nn.Module

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        """Log-mel features ``[N, F, frames]`` of a waveform ``[N, T]``."""
        if wave.ndim != 2:
            raise ValueError(f"expected a waveform batch of shape [N, T], got shape {tuple(wave.shape)}")
        return self.frontend(wave)

    def forward_features(self, features: torch.Tensor):
        raise NotImplementedError

    def forward(self, wave: torch.Tensor):
        return self.forward_features(self.features(wave))


class PooledEmbedder(WaveformEmbedder):
    """What the trainable network of every family shares: its configuration, and the head that
    turns the backbone's frames into an embedding, :attr:`pool` -> :attr:`pool_norm` ->
    :attr:`embedding` (-> :attr:`embedding_norm`).

    The head's parts are attributes of the network itself, not of a head module, so that both
    families' state-dict keys stay those of the official checkpoints (``pool.*``, ``bn.*``,
    ``linear.*``, ``bn2.*`` there).  Subclasses set :attr:`config_class`, call
    ``super().__init__(config, options)``, build their front end and backbone, then
    :meth:`_add_head` (modules are registered, and initialised, in that order).
    """

    config_class: ClassVar[Type[ReleaseConfig]]
    if TYPE_CHECKING:  # set by the subclasses (see WaveformEmbedder on why only for the type checker)
        backbone: nn.Module

    def __init__(self, config: Any, options: Mapping[str, Any]):
        super().__init__()
        if config is None:
            config = self.config_class.from_dict(options)
        elif options:
            raise TypeError("pass either a config or keyword options, not both")
        elif not isinstance(config, self.config_class):
            config = self.config_class.from_dict(config)
        self.config = config

    def _add_head(self, pool: Pooling) -> None:
        self.pool = pool
        self.pool_norm = nn.BatchNorm1d(pool.out_dim)
        self.embedding = nn.Linear(pool.out_dim, self.config.embed_dim)
        self.embedding_norm = nn.BatchNorm1d(self.config.embed_dim) if self.config.emb_bn else None

    def embed_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """The embedding ``[N, embed_dim]`` of the backbone's output in its 1D view ``[N, C, T]``."""
        x = self.embedding(self.pool_norm(self.pool(frames)))
        if self.embedding_norm is not None:
            x = self.embedding_norm(x)
        return x

    def folded_embedding(self) -> Linear:
        """The inference form of the head after the pooling: one linear layer with both batch
        norms (their running statistics) folded in."""
        weight, bias = fold_bn_before_linear(
            self.embedding.weight.detach(), self.embedding.bias.detach(), self.pool_norm
        )
        if self.embedding_norm is not None:
            weight, bias = fold_bn_after(weight, bias, self.embedding_norm)
        return Linear(weight, bias)


class OptimizedPooledEmbedder(WaveformEmbedder):
    """The inference form every family shares: the backbone's and pooling's inference forms
    (time-major layout, fused blocks), the head's batch norms folded into one linear layer.

    Same interface as the plain network for inference (``forward(wave)``, :meth:`features`,
    :meth:`forward_features`); outputs equal the plain model's up to float rounding.  Batch
    norms use their running statistics, so this model must not be trained.
    """

    is_inference_form = True  # optimize_for_inference copies it instead of converting it again

    def __init__(self, model: PooledEmbedder, *, classifier: Optional[nn.Module] = None, before_pool_offset: int = 0):
        super().__init__()
        self.config = model.config
        self.frontend = model.frontend
        self.backbone = inference_form(model.backbone)
        self.pool = inference_form(model.pool)
        self.embedding = model.folded_embedding()
        self.classifier = classifier
        self.return_all_outputs = bool(model.config.return_all_outputs)
        self.before_pool_offset = before_pool_offset  # frames dropped before the pooling
        self.eval()

    def forward_features(self, features: torch.Tensor):
        """The network after the front end: ``[N, F, frames]`` (or ``[N, 1, F, frames]``) in."""
        if features.ndim == 4:
            features = features.squeeze(1)
        outputs: Optional[List[torch.Tensor]] = [] if self.return_all_outputs else None
        x = self.backbone(features.transpose(1, 2), outputs)
        if self.before_pool_offset:
            x = x[:, self.before_pool_offset :]
        x = self.embedding(self.pool(x))
        if self.classifier is not None:
            x = self.classifier(x)
        if outputs is not None:
            return x, [y.transpose(1, 2) for y in outputs]
        return x
