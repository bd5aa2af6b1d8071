"""Training ReDimNet speaker models: configs, data, augmentation, losses, the loop.

>>> from redimnet.recipes import recipe_path              # doctest: +SKIP
>>> from redimnet.training import load_config, train   # doctest: +SKIP
>>> result = train(load_config(recipe_path("b2_pretrain")))   # doctest: +SKIP
"""

from ..errors import ConfigError, TrainingError
from .checkpointing import average_checkpoints, average_models
from .config import TrainingConfig, load_config
from .data import DataError
from .trainer import TrainingResult, train

__all__ = [
    "ConfigError",
    "DataError",
    "TrainingConfig",
    "TrainingError",
    "TrainingResult",
    "average_checkpoints",
    "average_models",
    "load_config",
    "train",
]
