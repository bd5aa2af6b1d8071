"""ReDimNet: waveform in, speaker embedding out."""

from typing import TYPE_CHECKING, Any, ClassVar, List, Mapping, Optional, Type, Union

import torch
from torch import nn

from ...fast.folding import fold_bn_after, fold_bn_before_linear
from ...fast.form import inference_form
from ...fast.modules import Linear
from ...frontend import make_frontend
from ...layers.classifier_head import ClassifierHead
from ...layers.pooling import Pooling, make_pooling
from .backbone import Backbone
from .config import ModelConfig, ReleaseConfig

if TYPE_CHECKING:
    from ..redimnet2.config import ReDimNet2Config


class WaveformEmbedder(nn.Module):
    """What every form of the network offers: waveform -> features -> embedding.

    Subclasses set ``config`` and ``frontend`` and implement :meth:`forward_features`.
    """

    config: "Union[ModelConfig, ReDimNet2Config]"
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
