"""Reading and writing checkpoints in the official release format.

A release file is ``torch.save({"model_config": {...}, "state_dict": {...}})``
where ``model_config`` holds the original constructor's keyword arguments and
``state_dict`` uses the original implementation's parameter names.  Files go
both ways: ours load in the original code and the original's load here.
"""

import os
import pickle
import zipfile
from pathlib import Path
from typing import Dict, Mapping, Optional, Union

import torch

from .errors import CheckpointError
from .fileio import atomic_write
from .model import ReDimNet
from .redimnet2.family import check_family, detect_family, family_classes, family_of

PathLike = Union[str, os.PathLike]


def _describe_keys(keys, limit: int = 8) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _read(path: Path):
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a checkpoint file")
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {error.strerror or error}") from None
    if not head:
        raise CheckpointError(f"{path} is empty, not a checkpoint")
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as archive:
                broken = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError):
            raise CheckpointError(f"{path} is truncated or corrupt (the zip archive torch.save writes "
                                  "cannot be read); download or copy it again") from None
        if broken is not None:
            raise CheckpointError(f"{path} is corrupt: archive member {broken!r} fails its checksum; "
                                  "download or copy it again") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        text = str(error)
        if "Unsupported global" in text or "not an allowed global" in text or "GLOBAL" in text:
            raise CheckpointError(
                f"refusing to load {path}: it asks to import or run code that a weights file never needs "
                f"({text.splitlines()[0] if text else 'unsafe pickle'}). Only load files from sources you "
                "trust; official ReDimNet checkpoints contain plain tensors and a config dict") from None
        raise CheckpointError(f"{path} is not a PyTorch checkpoint ({_unpickling_detail(text)}); "
                              "download or copy it again, or check that it is the file you meant") from None
    except (RuntimeError, EOFError, ValueError, OSError, AttributeError, IndexError, KeyError, TypeError,
            UnicodeDecodeError, MemoryError, OverflowError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: {first_line}") from None


def _unpickling_detail(text: str) -> str:
    """What went wrong, from ``torch.load``'s message, without its advice to disable ``weights_only``."""
    marker = "WeightsUnpickler error:"
    if marker in text:
        detail = text.split(marker, 1)[1].strip().splitlines()
        if detail and "weights_only" not in detail[0]:
            return detail[0].strip()
    first = text.splitlines()[0] if text else ""
    if first and "weights_only" not in first and "Weights only load failed" not in first:
        return first
    return "its content is not a pickle of tensors"


def from_original_state_dict(state_dict: Mapping[str, torch.Tensor], model: ReDimNet,
                             source: str = "checkpoint") -> Dict[str, torch.Tensor]:
    """Rename an original-format state dict to ours, checking that every key is
    consumed and every parameter found with the right shape."""
    expected = model.state_dict()
    to_original = family_classes(family_of(model))[2](expected, model.config)
    to_ours = {orig: ours for ours, orig in to_original.items()}
    bad_values = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
    if bad_values:
        raise CheckpointError(f"{source}: state_dict entries that are not tensors: {_describe_keys(bad_values)}")
    missing = [k for k in to_ours if k not in state_dict]
    unexpected = [k for k in state_dict if k not in to_ours]
    problems = []
    if missing:
        problems.append(f"missing keys: {_describe_keys(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_describe_keys(unexpected)}")
    if problems:
        raise CheckpointError(f"{source}: the state_dict does not match its model_config ({'; '.join(problems)})")
    renamed = {}
    mismatched = []
    for orig, tensor in state_dict.items():
        ours = to_ours[orig]
        if tuple(tensor.shape) != tuple(expected[ours].shape):
            mismatched.append(f"{orig} has shape {tuple(tensor.shape)}, expected {tuple(expected[ours].shape)}")
        renamed[ours] = tensor
    if mismatched:
        more = f" (and {len(mismatched) - 5} more)" if len(mismatched) > 5 else ""
        raise CheckpointError(f"{source}: mis-shaped parameters: {'; '.join(mismatched[:5])}{more}")
    return renamed


def to_original_state_dict(model: ReDimNet) -> Dict[str, torch.Tensor]:
    """Our state dict under the original implementation's names."""
    state = model.state_dict()
    names = family_classes(family_of(model))[2](state, model.config)
    return {names[k]: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def first_non_finite(state_dict: Mapping[str, torch.Tensor]) -> Optional[str]:
    """Name of the first floating-point tensor holding an infinite or NaN value, or None."""
    for name, tensor in state_dict.items():
        if isinstance(tensor, torch.Tensor) and (tensor.is_floating_point() or tensor.is_complex()):
            if not bool(torch.isfinite(tensor).all()):
                return name
    return None


def load_checkpoint(path: PathLike, map_location: Union[str, torch.device] = "cpu",
                    family: Optional[str] = None) -> ReDimNet:
    """Load a checkpoint in the official release format; returns the model in eval mode.

    Reads both families' files: a ReDimNet file gives a :class:`redimnet.ReDimNet`,
    a ReDimNet2 file a :class:`redimnet.ReDimNet2`; the family is recognised from
    the file's ``model_config``, and ``family="redimnet"`` or ``"redimnet2"`` forces it.
    Raises :class:`CheckpointError` for anything wrong with the file.
    """
    check_family(family)
    path = Path(path)
    content = _read(path)
    if not isinstance(content, Mapping) or "state_dict" not in content or "model_config" not in content:
        found = (f"a dict with keys {_describe_keys(map(str, content))}" if isinstance(content, Mapping)
                 else f"a {type(content).__name__}")
        raise CheckpointError(f"{path} is not in the ReDimNet release format: expected a dict with "
                              f"'model_config' and 'state_dict', found {found}")
    state_dict = content["state_dict"]
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"{path}: 'state_dict' is a {type(state_dict).__name__}, not a dict of tensors")
    family = family or detect_family(content["model_config"])
    config_class, model_class, _ = family_classes(family)
    try:
        config = config_class.from_dict(content["model_config"])
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{path}: invalid model_config for {model_class.__name__}: {error}") from None
    model = model_class(config)
    model.load_state_dict(from_original_state_dict(state_dict, model, source=str(path)), strict=True)
    return model.to(map_location).eval()


def save_checkpoint(model: ReDimNet, path: PathLike) -> Path:
    """Write ``model`` in the official release format (readable by the original code).

    The file is written to a temporary name and renamed into place, so an
    interrupted save never leaves a partial checkpoint at ``path``.  A model
    with infinite or NaN weights is refused (:class:`CheckpointError`).
    """
    if not isinstance(model, (ReDimNet, family_classes("redimnet2")[1])):
        raise TypeError(f"save_checkpoint expects a redimnet.ReDimNet or ReDimNet2, got {type(model).__name__}")
    path = Path(path)
    bad = first_non_finite(model.state_dict())
    if bad is not None:
        raise CheckpointError(f"not saving {path}: the model's {bad!r} holds infinite or NaN values "
                              "(training diverged?); a checkpoint must hold finite weights")
    content = {"model_config": model.config.to_dict(), "state_dict": to_original_state_dict(model)}
    with atomic_write(path) as stream:
        torch.save(content, stream)
    return path
