"""Training-state files, model snapshots and checkpoint averaging.

A training state (``state_step00001000.pt``) holds what a resumed run needs:
model and loss weights, optimizer and AMP scaler state, step, and random
states.  Model snapshots (``model_step00001000.pt``) are in the official
release format (:func:`redimnet.save_checkpoint`).  Every file is written to a
temporary name, flushed and renamed, so killing the process never leaves a
truncated file under a checkpoint name.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple, Union, cast

import numpy as np
import torch

from .._utils.fileio import atomic_write
from ..errors import CheckpointError
from ..models.checkpoint import load_checkpoint, save_checkpoint

PathLike = Union[str, os.PathLike]
STATE_PATTERN = re.compile(r"^state_step(\d+)\.pt$")
MODEL_PATTERN = re.compile(r"^model_step(\d+)\.pt$")
STATE_FORMAT = "redimnet-training-state-1"


def atomic_save(obj: Any, path: PathLike) -> Path:
    """``torch.save`` through :func:`redimnet._utils.fileio.atomic_write` (temporary file, fsync, rename)."""
    with atomic_write(path) as stream:
        torch.save(obj, stream)
    return Path(path)


def rng_states() -> Dict[str, Any]:
    """The global random states, as tensors and plain Python values (loadable with ``weights_only``)."""
    # the legacy (default) form of the state: a tuple
    state = cast(Tuple[str, np.ndarray, int, int, float], np.random.get_state())
    name, keys, position, has_gauss, gauss = state
    states = {
        "torch": torch.get_rng_state(),
        "numpy": [name, keys.tolist(), position, has_gauss, gauss],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: Dict[str, Any]):
    torch.set_rng_state(states["torch"])
    name, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, gauss))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_training_state(path: PathLike, state: Dict[str, Any]) -> Path:
    return atomic_save({"format": STATE_FORMAT, **state}, path)


def load_training_state(path: PathLike) -> Dict[str, Any]:
    """A training-state file (tensors and plain values only; nothing in it is executed)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for bad files
        reason = str(error).splitlines()[0] if str(error) else error
        raise CheckpointError(f"cannot read training state {path}: {reason}") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(
            f"{path} is not a redimnet training state (expected format {STATE_FORMAT!r}); "
            "model files go to model.init_from only"
        )
    return state


def _numbered(folder: Path, pattern: re.Pattern) -> List[Path]:
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := pattern.match(p.name))]
    return [p for _, p in sorted(found)]


def training_states(folder: PathLike) -> List[Path]:
    """Training-state files in ``folder``, oldest step first."""
    return _numbered(Path(folder), STATE_PATTERN)


def model_snapshots(folder: PathLike) -> List[Path]:
    """Model snapshot files in ``folder``, oldest step first."""
    return _numbered(Path(folder), MODEL_PATTERN)


def prune(folder: PathLike, keep: int):
    """Delete all but the newest ``keep`` training states and model snapshots."""
    for files in (training_states(folder), model_snapshots(folder)):
        for old in files[:-keep] if keep > 0 else files:
            try:
                old.unlink()
            except OSError:
                pass


def average_models(paths: Sequence[PathLike], load: Callable[[PathLike], Any] = load_checkpoint) -> Any:
    """Mean of the weights of checkpoints that share one model configuration.

    Floating-point tensors (weights, BatchNorm statistics) are averaged; integer
    buffers (BatchNorm's batch counter) are taken from the last file.  ``load``
    reads one file (release-format checkpoints by default; for example
    :func:`redimnet.diarization.segmentation.load_segmentation` for segmentation networks).
    """
    if not paths:
        raise CheckpointError("no checkpoints to average")
    models = [load(p) for p in paths]
    reference = models[0].config.to_dict()
    for path, model in zip(paths[1:], models[1:]):
        if model.config.to_dict() != reference:
            raise CheckpointError(
                f"{path} has a different model configuration from {paths[0]}; "
                "only snapshots of one training run can be averaged"
            )
    states = [m.state_dict() for m in models]
    averaged = {}
    for key, last in states[-1].items():
        if last.is_floating_point():
            averaged[key] = torch.stack([s[key].double() for s in states]).mean(0).to(last.dtype)
        else:
            averaged[key] = last.clone()
    result = models[-1]
    result.load_state_dict(averaged)
    return result.eval()


def average_checkpoints(paths: Sequence[PathLike], output: PathLike) -> Path:
    """Average release-format checkpoints into ``output`` (release format)."""
    return Path(save_checkpoint(average_models(paths), output))
