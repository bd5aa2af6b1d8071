"""The training state: everything a resumed run needs, as one dataclass written and read only here.

A state file (``checkpoints/state_stepNNNNNNNN.pt``) holds the weights of the model and
of the loss, the optimizer and AMP scaler states, the progress counters, every
process's random states and what the run was trained on (so a resume that does not
fit is refused).  The file format is :data:`redimnet.training.checkpointing.STATE_FORMAT`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from ..errors import CheckpointError
from .checkpointing import load_training_state, save_training_state

PathLike = Union[str, os.PathLike]


@dataclass
class TrainingState:
    """One training state (see the module description)."""

    step: int
    model: Dict[str, Any]  # state dicts: parameter name -> tensor
    loss: Dict[str, Any]
    optimizer: Dict[str, Any]
    scaler: Optional[Dict[str, Any]]
    rng: List[Dict[str, Any]]  # one entry per process
    bad_audio: int
    attempted: int
    num_classes: int
    steps_per_epoch: int
    model_config: Dict[str, Any]
    config: Dict[str, Any]
    speakers: List[str]

    def save(self, path: PathLike) -> Path:
        """Write the state to ``path`` (atomically: a killed process never leaves a truncated file)."""
        return save_training_state(path, {item.name: getattr(self, item.name) for item in fields(self)})

    @classmethod
    def load(cls, path: PathLike) -> "TrainingState":
        """The state in ``path``.

        Raises:
            CheckpointError: not a training state, unreadable, or a field is missing.
        """
        values = load_training_state(path)
        missing = [item.name for item in fields(cls) if item.name not in values]
        if missing:
            raise CheckpointError(f"training state {path} lacks {', '.join(missing)}; it cannot be resumed from")
        return cls(**{item.name: values[item.name] for item in fields(cls)})
