"""The segmentation network: which of a few local speakers speak in each frame of a chunk, overlap included.

A chunk (``chunk_seconds`` of 16 kHz audio, 5 s by default) goes through

    log-mel front end -> ReDimNet backbone -> bidirectional LSTM -> linear -> powerset log-probabilities

* the front end and backbone are ReDimNet's own (:func:`redimnet.frontend.make_frontend`,
  :class:`redimnet.models.redimnet.backbone.Backbone`), configured by a :class:`redimnet.ModelConfig`
  (``backbone``); the backbone keeps the time resolution of the front end, one frame per
  ``hop_length`` samples;
* the LSTM gives every frame the context of the whole chunk, so a local speaker keeps its
  number from the chunk's start to its end;
* the output is one distribution per frame over the powerset classes
  (:class:`redimnet.diarization.powerset.Powerset`): nobody, each local speaker alone, each pair.

Frame ``j`` of a chunk stands for samples ``[j * hop, (j + 1) * hop)``; a chunk of ``n``
samples has ``n // hop`` frames.

Files: :func:`save_segmentation` writes ``{"format": "redimnet-segmentation", "version": 1,
"config": {...}, "state_dict": {...}}``; :func:`load_segmentation` reads it back, checking the
network's size before building it and every tensor against it (a
:class:`redimnet.CheckpointError` names what is wrong).
"""

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import torch
from torch import nn

from .._utils.fileio import atomic_write
from ..errors import CheckpointError
from ..frontend import make_frontend
from ..models.redimnet.backbone import Backbone
from ..models.redimnet.config import ModelConfig
from .powerset import Powerset

PathLike = Union[str, os.PathLike]

FORMAT = "redimnet-segmentation"
VERSION = 1
SAMPLE_RATE = 16000


def small_backbone() -> ModelConfig:
    """The default backbone: 32 mel bins every 20 ms, 8 channels, three one-block stages, the last
    ending with self-attention over the chunk's frames (width 256)."""
    return ModelConfig.from_dict(
        {
            "F": 32,
            "C": 8,
            "hop_length": 320,
            "block_2d_type": "convnext_like",
            "block_1d_type": "att",
            "group_divisor": 4,
            "embed_dim": 16,  # unused: the segmentation network has no pooling head
            "stages_setup": [[1, 1, 1, [[3, 3]], None], [2, 1, 1, [[3, 3]], None], [2, 1, 1, [[3, 3]], 4]],
        }
    )


@dataclass(frozen=True)
class SegmentationConfig:
    """What a segmentation network is: its backbone, the local speakers per chunk, the chunk length.

    Args:
        backbone: the ReDimNet front end and backbone (:class:`redimnet.ModelConfig`; its head options are unused).
        local_speakers: speakers a chunk can tell apart.
        max_simultaneous: most local speakers speaking at once (2: overlaps of two voices).
        chunk_seconds: the length of the chunks the network was trained on and is run on.
        lstm_hidden: units of each direction of the LSTM (0: no LSTM).
        lstm_layers: stacked LSTM layers.
    """

    backbone: ModelConfig = field(default_factory=small_backbone)
    local_speakers: int = 3
    max_simultaneous: int = 2
    chunk_seconds: float = 5.0
    lstm_hidden: int = 64
    lstm_layers: int = 1

    def __post_init__(self):
        if isinstance(self.backbone, Mapping):
            object.__setattr__(self, "backbone", ModelConfig.from_dict(self.backbone))
        if not isinstance(self.backbone, ModelConfig):
            raise ValueError(f"backbone must be a ModelConfig or its options, got {type(self.backbone).__name__}")
        Powerset(self.local_speakers, self.max_simultaneous)  # checks both counts
        if not isinstance(self.chunk_seconds, (int, float)) or not 0.5 <= self.chunk_seconds <= 60:
            raise ValueError(f"chunk_seconds must be between 0.5 and 60, got {self.chunk_seconds!r}")
        for name in ("lstm_hidden", "lstm_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1024:
                raise ValueError(f"{name} must be an integer between 0 and 1024, got {value!r}")
        if self.lstm_hidden and not self.lstm_layers:
            raise ValueError("lstm_layers must be at least 1 when lstm_hidden is set")

    @property
    def hop(self) -> int:
        """Samples per output frame."""
        return self.backbone.hop_length

    @property
    def chunk_samples(self) -> int:
        return int(round(self.chunk_seconds * SAMPLE_RATE))

    @property
    def chunk_frames(self) -> int:
        return self.chunk_samples // self.hop

    @property
    def frame_seconds(self) -> float:
        return self.hop / SAMPLE_RATE

    def powerset(self) -> Powerset:
        return Powerset(self.local_speakers, self.max_simultaneous)

    def to_dict(self) -> dict:
        return {
            "backbone": self.backbone.to_dict(),
            "local_speakers": self.local_speakers,
            "max_simultaneous": self.max_simultaneous,
            "chunk_seconds": float(self.chunk_seconds),
            "lstm_hidden": self.lstm_hidden,
            "lstm_layers": self.lstm_layers,
        }

    @classmethod
    def from_dict(cls, options: Mapping[str, Any]) -> "SegmentationConfig":
        if not isinstance(options, Mapping):
            raise ValueError(f"a segmentation config must be a mapping, got {type(options).__name__}")
        known = {"backbone", "local_speakers", "max_simultaneous", "chunk_seconds", "lstm_hidden", "lstm_layers"}
        unknown = sorted(str(k) for k in options if k not in known)
        if unknown:
            raise ValueError(f"unknown segmentation option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**dict(options))


class SegmentationNet(nn.Module):
    """Waveform chunks ``[N, samples]`` (16 kHz) -> powerset log-probabilities ``[N, samples // hop, classes]``."""

    def __init__(self, config: Optional[SegmentationConfig] = None):
        super().__init__()
        self.config = config = config or SegmentationConfig()
        self.powerset = config.powerset()
        self.frontend = make_frontend(config.backbone)
        self.backbone = Backbone(config.backbone)
        width = config.backbone.backbone_dim
        if config.lstm_hidden:
            self.lstm: Optional[nn.LSTM] = nn.LSTM(
                width, config.lstm_hidden, num_layers=config.lstm_layers, batch_first=True, bidirectional=True
            )
            width = 2 * config.lstm_hidden
        else:
            self.lstm = None
        self.classifier = nn.Linear(width, self.powerset.num_classes)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.ndim != 2:
            raise ValueError(f"expected a waveform batch of shape [N, T], got shape {tuple(wave.shape)}")
        frames = wave.shape[1] // self.config.hop
        features = self.frontend(wave)  # [N, F, frames + 1] (centred STFT)
        x = self.backbone(features.unsqueeze(1))[:, :, :frames]  # [N, width, frames]
        x = x.transpose(1, 2)
        if self.lstm is not None:
            x, _ = self.lstm(x)
        return torch.log_softmax(self.classifier(x), dim=-1)

    def for_inference(self) -> nn.Module:
        """The same function for inference only: the backbone in its fast, time-major form."""
        return _InferenceSegmentationNet(self)


class _InferenceSegmentationNet(nn.Module):
    """:class:`SegmentationNet` with the backbone's inference form (batch norms frozen; not for training)."""

    def __init__(self, model: SegmentationNet):
        super().__init__()
        from ..fast.form import inference_form

        model = model.eval()
        self.hop = model.config.hop
        self.frontend = model.frontend
        self.backbone = inference_form(model.backbone)
        self.lstm = model.lstm
        self.classifier = model.classifier
        self.eval()

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        frames = wave.shape[1] // self.hop
        x = self.backbone(self.frontend(wave).transpose(1, 2))[:, :frames]  # [N, frames, width]
        if self.lstm is not None:
            x, _ = self.lstm(x)
        return torch.log_softmax(self.classifier(x), dim=-1)


def save_segmentation(model: SegmentationNet, path: PathLike) -> Path:
    """Write ``model`` (atomically); refuses non-finite weights."""
    from ..models.checkpoint import first_non_finite

    path = Path(path)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    bad = first_non_finite(state)
    if bad is not None:
        raise CheckpointError(f"not saving {path}: the segmentation weight {bad!r} holds infinite or NaN values")
    content = {"format": FORMAT, "version": VERSION, "config": model.config.to_dict(), "state_dict": state}
    with atomic_write(path) as stream:
        torch.save(content, stream)
    return path


MAX_SEGMENTATION_PARAMETERS = 20_000_000


def load_segmentation(path: PathLike, max_parameters: Optional[int] = MAX_SEGMENTATION_PARAMETERS) -> SegmentationNet:
    """A segmentation network saved by :func:`save_segmentation`, in eval mode.

    Raises :class:`redimnet.CheckpointError` for a missing, corrupt or foreign file, a
    configuration that does not describe a network, more than ``max_parameters`` values, or
    weights that do not fit the network or are not finite.
    """
    from ..models.checkpoint import _read, first_non_finite, layout

    path = Path(path)
    content = _read(path, None if max_parameters is None else 8 * max_parameters + (16 << 20))
    if not isinstance(content, Mapping) or content.get("format") != FORMAT:
        what = "a ReDimNet embedding checkpoint" if isinstance(content, Mapping) and "model_config" in content else None
        raise CheckpointError(
            f"{path} is not a segmentation model (expected a file written by redimnet's segmentation "
            f"training, with format {FORMAT!r})" + (f"; it is {what}" if what else "")
        )
    if content.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: segmentation format version {content.get('version')!r} is not supported (this "
            f"redimnet reads version {VERSION}); upgrade redimnet"
        )
    try:
        config = SegmentationConfig.from_dict(content.get("config") or {})
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{path}: invalid segmentation config: {error}") from None
    layout(config.backbone, max_parameters, source=f"{path}: config.backbone", model_class=lambda _: Backbone(_))
    with torch.device("meta"):
        skeleton = SegmentationNet(config)
    values = sum(t.numel() for t in skeleton.state_dict().values())
    if max_parameters is not None and values > max_parameters:
        raise CheckpointError(f"{path}: the network has {values:,} values, more than the {max_parameters:,} allowed")
    state = content.get("state_dict")
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: 'state_dict' is not a dict of tensors")
    expected = skeleton.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"{path}: the weights do not fit the network its config describes"
            + (f"; missing {', '.join(missing[:5])}" if missing else "")
            + (f"; unexpected {', '.join(map(str, extra[:5]))}" if extra else "")
        )
    for name, tensor in state.items():
        want = expected[name]
        if not isinstance(tensor, torch.Tensor) or tensor.shape != want.shape or tensor.dtype != want.dtype:
            got = f"{tuple(tensor.shape)} {tensor.dtype}" if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise CheckpointError(
                f"{path}: weight {name!r} is {got}, the network needs {tuple(want.shape)} {want.dtype}"
            )
    bad = first_non_finite(state)
    if bad is not None:
        raise CheckpointError(f"{path}: weight {bad!r} holds infinite or NaN values")
    model = SegmentationNet(config)
    model.load_state_dict(dict(state), strict=True)
    return model.eval()
