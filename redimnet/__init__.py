"""ReDimNet speaker embeddings.

>>> import redimnet, torch
>>> model = redimnet.build("b0").eval()
>>> model(torch.randn(1, 32000)).shape
torch.Size([1, 192])

Published weights by name (downloaded once, then cached): ``redimnet.load("b2.vox2-ft_lm")``
or ``redimnet.build("b2", weights="vox2-ft_lm")``; the table is :mod:`redimnet.registry`.
"""

from .audio import AudioError, read_audio
from .checkpoint import load_checkpoint, save_checkpoint
from .config import ModelConfig, StageSpec
from .diarization import Diarizer
from .errors import CheckpointError, InvalidArgumentError, PretrainedError, RedimnetError
from .evaluation.backend import Backend, train_backend
from .evaluation.calibration import Calibration, fit_calibration
from .inference import Embedder
from .model import ReDimNet
from .redimnet2 import ReDimNet2, ReDimNet2Config
from .pretrained import from_pretrained, list_pretrained
from .registry import (DEFAULT_WEIGHTS, build, get_architecture, get_preset, get_weights, list_models, list_weights,
                       load)

__version__ = "0.1.0"

__all__ = [
    "Backend", "Calibration", "fit_calibration", "train_backend",
    "AudioError", "Embedder", "PretrainedError", "from_pretrained", "list_pretrained", "read_audio",
    "Diarizer",
    "CheckpointError", "InvalidArgumentError", "ModelConfig", "ReDimNet", "ReDimNet2", "ReDimNet2Config", "RedimnetError", "StageSpec", "build", "get_preset", "list_models",
    "DEFAULT_WEIGHTS", "get_architecture", "get_weights", "list_weights", "load",
    "load_checkpoint", "save_checkpoint", "__version__",
]
