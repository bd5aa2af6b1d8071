"""ReDimNet speaker embeddings.

>>> import redimnet, torch
>>> model = redimnet.build("b0").eval()
>>> model(torch.randn(1, 32000)).shape
torch.Size([1, 192])
"""

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import ModelConfig, StageSpec
from .model import ReDimNet
from .registry import build, get_preset, list_models

__version__ = "0.1.0"

__all__ = [
    "CheckpointError", "ModelConfig", "ReDimNet", "StageSpec", "build", "get_preset", "list_models",
    "load_checkpoint", "save_checkpoint", "__version__",
]
