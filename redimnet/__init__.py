"""ReDimNet speaker embeddings.

>>> import redimnet, torch
>>> model = redimnet.build("b0").eval()
>>> model(torch.randn(1, 32000)).shape
torch.Size([1, 192])

Published weights by name (downloaded once, then cached): ``redimnet.load("b2.vox2-ft_lm")``
or ``redimnet.build("b2", weights="vox2-ft_lm")``; the table is :mod:`redimnet.hub.registry`.

The names below are imported on first use, so ``import redimnet`` (and the
command line's ``redimnet info``) does not pay for PyTorch until something needs it.
"""

import importlib
import importlib.util
from typing import TYPE_CHECKING

from ._version import __version__

# Public name -> the module defining it (imported when the name is first used).
_EXPORTS = {
    "AudioError": "audio",
    "read_audio": "audio",
    "load_checkpoint": "models.checkpoint",
    "save_checkpoint": "models.checkpoint",
    "ModelConfig": "models.redimnet.config",
    "StageSpec": "models.redimnet.config",
    "Diarizer": "diarization",
    "CheckpointError": "errors",
    "InvalidArgumentError": "errors",
    "PretrainedError": "errors",
    "RedimnetError": "errors",
    "Backend": "evaluation.backend",
    "train_backend": "evaluation.backend",
    "Calibration": "evaluation.calibration",
    "fit_calibration": "evaluation.calibration",
    "Embedder": "embedding.embedder",
    "ReDimNet": "models.redimnet",
    "ReDimNet2": "models.redimnet2",
    "ReDimNet2Config": "models.redimnet2",
    "from_pretrained": "hub.pretrained",
    "list_pretrained": "hub.pretrained",
    "DEFAULT_WEIGHTS": "hub.registry",
    "build": "hub.pretrained",
    "get_architecture": "hub.registry",
    "get_preset": "hub.registry",
    "get_weights": "hub.registry",
    "list_models": "hub.registry",
    "list_weights": "hub.registry",
    "load": "hub.pretrained",
}

__all__ = [  # the lazily loaded names of _EXPORTS, and the version
    "AudioError",
    "Backend",
    "Calibration",
    "CheckpointError",
    "DEFAULT_WEIGHTS",
    "Diarizer",
    "Embedder",
    "InvalidArgumentError",
    "ModelConfig",
    "PretrainedError",
    "ReDimNet",
    "ReDimNet2",
    "ReDimNet2Config",
    "RedimnetError",
    "StageSpec",
    "build",
    "fit_calibration",
    "from_pretrained",
    "get_architecture",
    "get_preset",
    "get_weights",
    "list_models",
    "list_pretrained",
    "list_weights",
    "load",
    "load_checkpoint",
    "read_audio",
    "save_checkpoint",
    "train_backend",
    "__version__",
]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:  # a submodule used as an attribute (``redimnet.metrics.eer``) is imported on first use
        if name.startswith("_") or importlib.util.find_spec(f"{__name__}.{name}") is None:
            raise AttributeError(f"module 'redimnet' has no attribute {name!r}")
        return importlib.import_module(f".{name}", __name__)
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs
    from .audio import AudioError, read_audio
    from .diarization import Diarizer
    from .embedding.embedder import Embedder
    from .errors import CheckpointError, InvalidArgumentError, PretrainedError, RedimnetError
    from .evaluation.backend import Backend, train_backend
    from .evaluation.calibration import Calibration, fit_calibration
    from .hub.pretrained import build, from_pretrained, list_pretrained, load
    from .hub.registry import (
        DEFAULT_WEIGHTS,
        get_architecture,
        get_preset,
        get_weights,
        list_models,
        list_weights,
    )
    from .models.checkpoint import load_checkpoint, save_checkpoint
    from .models.redimnet import ReDimNet
    from .models.redimnet.config import ModelConfig, StageSpec
    from .models.redimnet2 import ReDimNet2, ReDimNet2Config
