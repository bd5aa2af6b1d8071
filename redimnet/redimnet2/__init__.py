"""ReDimNet2, the successor family: same toolkit, its own stage wiring and options."""

from .config import ReDimNet2Config, Stage2Spec
from .model import ReDimNet2

__all__ = ["ReDimNet2", "ReDimNet2Config", "Stage2Spec"]
