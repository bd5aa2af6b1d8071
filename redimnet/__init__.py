"""ReDimNet speaker embeddings.

>>> import redimnet, torch
>>> model = redimnet.build("b0").eval()
>>> model(torch.randn(1, 32000)).shape
torch.Size([1, 192])
"""

from .checkpoint import load_checkpoint, save_checkpoint
from .config import ModelConfig, StageSpec
from .errors import CheckpointError, RedimnetError, UsageError
from .model import ReDimNet
from .registry import build, get_preset, list_models

__version__ = "0.1.0"

__all__ = [
    "CheckpointError", "ModelConfig", "ReDimNet", "RedimnetError", "StageSpec", "UsageError", "build", "get_preset", "list_models",
    "load_checkpoint", "save_checkpoint", "__version__",
]
