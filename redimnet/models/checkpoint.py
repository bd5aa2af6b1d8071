"""Reading and writing checkpoints in the official release format.

A release file is ``torch.save({"model_config": {...}, "state_dict": {...}})``
where ``model_config`` holds the original constructor's keyword arguments and
``state_dict`` uses the original implementation's parameter names.  Files go
both ways: ours load in the original code and the original's load here.

Loading a file cannot cost more than the file says it is: before anything is
allocated, the network its ``model_config`` describes is laid out on the
``meta`` device (shapes only, no memory), its size is checked against
:data:`MAX_PARAMETERS`, and every tensor of the ``state_dict`` is checked
against it -- names, shapes, dtypes (floating-point where the network has
floating-point weights) and values (no NaN or infinity).  Anything wrong is a
:class:`~redimnet.errors.CheckpointError` naming the first bad entry.
"""

import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Dict, Mapping, Optional, Union

import torch

from .._utils.fileio import atomic_write
from .._utils.names import printable
from ..errors import CheckpointError
from .common.network import PooledEmbedder
from .families import check_family, detect_family, family_of, get_family, registered_families

PathLike = Union[str, os.PathLike]

MAX_PARAMETERS = 50_000_000
"""Most values (parameters and buffers) a checkpoint may hold unless the caller opts in with
``max_parameters=None`` (or a larger number), or the environment sets :data:`MAX_PARAMETERS_ENV`:
200 MB of float32, three times the largest published ReDimNet (b6, 15 M).  A file asking for
more is refused before anything is allocated."""

MAX_PARAMETERS_ENV = "REDIMNET_MAX_PARAMETERS"
"""Environment variable replacing :data:`MAX_PARAMETERS` where the caller does not pass
``max_parameters`` (so command-line users can opt in): a positive integer, or ``none``."""

_OPT_IN = (
    f"if you trust this file, load it with max_parameters=None (or set {MAX_PARAMETERS_ENV}=none, or a larger number)"
)

MAX_BLOCKS = 1000
"""Most 2D blocks (summed over the stages) a checkpoint may ask for under :data:`MAX_PARAMETERS`."""

MAX_FRONTEND_VALUES = 4_000_000
"""Most values a front end may compute when it is built (the TF front end's DFT kernels are made in
numpy, before anything can be laid out on the ``meta`` device); the published front end needs 0.2 M."""


def _describe_keys(keys, limit: int = 8) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _read(path: Path, max_bytes: Optional[int] = None):
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
                unpacked = sum(member.file_size for member in archive.infolist())
                if max_bytes is not None and unpacked > max_bytes:
                    raise CheckpointError(
                        f"{path} unpacks to {unpacked:,} bytes, more than a network within the size ceiling "
                        f"needs ({max_bytes:,}); {_OPT_IN}"
                    )
                broken = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError):
            raise CheckpointError(
                f"{path} is truncated or corrupt (the zip archive torch.save writes "
                "cannot be read); download or copy it again"
            ) from None
        if broken is not None:
            raise CheckpointError(
                f"{path} is corrupt: archive member {broken!r} fails its checksum; download or copy it again"
            ) from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        text = str(error)
        if "Unsupported global" in text or "not an allowed global" in text or "GLOBAL" in text:
            named = re.search(r"GLOBAL (\S+)", text)  # torch's own advice around it is not repeated
            what = f"to import {printable(named.group(1))}" if named else "to import or run code"
            raise CheckpointError(
                f"refusing to load {path}: it asks {what}, which a weights file never needs. This file "
                "cannot be used as a checkpoint; official ReDimNet checkpoints contain plain tensors and "
                "a config dict"
            ) from None
        raise CheckpointError(
            f"{path} is not a PyTorch checkpoint ({_unpickling_detail(text)}); "
            "download or copy it again, or check that it is the file you meant"
        ) from None
    except (
        RuntimeError,
        EOFError,
        ValueError,
        OSError,
        AttributeError,
        IndexError,
        KeyError,
        TypeError,
        UnicodeDecodeError,
        MemoryError,
        OverflowError,
    ) as error:
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


def _tensor_problem(tensor: torch.Tensor, expected: torch.Tensor) -> Optional[str]:
    """Why ``tensor`` cannot stand where ``expected`` (same shape, any device) belongs, or None."""
    if tensor.layout != torch.strided or tensor.is_quantized:
        return f"is a {tensor.layout} tensor, not a plain dense one"
    if tensor.is_complex():
        return f"holds complex values ({tensor.dtype}) where real weights belong"
    if expected.is_floating_point():
        if not tensor.is_floating_point():
            return f"holds {tensor.dtype} values where floating-point weights belong"
        if not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            return f"holds {bad} non-finite value(s) (NaN or infinity)"
    elif tensor.is_floating_point():
        return f"holds {tensor.dtype} values where an integer count belongs"
    return None


def from_original_state_dict(
    state_dict: Mapping[str, torch.Tensor], model: torch.nn.Module, source: str = "checkpoint"
) -> Dict[str, torch.Tensor]:
    """Rename an original-format state dict to ours, checking it against ``model``.

    ``model`` may live on the ``meta`` device (only its names, shapes and
    dtypes are used).  Every key must be consumed and every parameter found,
    with the right shape, a fitting dtype and finite values; otherwise a
    :class:`CheckpointError` names the (first) bad entries.
    """
    expected = model.state_dict()
    to_original = family_of(model).original_names(expected, model.config)
    to_ours = {orig: ours for ours, orig in to_original.items()}
    bad_values = [str(k) for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
    if bad_values:
        raise CheckpointError(f"{source}: state_dict entries that are not tensors: {_describe_keys(bad_values)}")
    missing = [k for k in to_ours if k not in state_dict]
    unexpected = [str(k) for k in state_dict if k not in to_ours]
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
    for orig, tensor in state_dict.items():
        problem = _tensor_problem(tensor, expected[to_ours[orig]])
        if problem is not None:
            raise CheckpointError(
                f"{source}: tensor {orig} {problem}; the file is damaged or not a trained ReDimNet checkpoint"
            )
    return renamed


def _frontend_values(config) -> int:
    """Values the front end computes when built (the TF front end's DFT kernels are made in numpy)."""
    spec = dict(getattr(config, "spec_params", None) or {})
    n_fft = int(spec.get("n_fft", 512))
    win = int(spec.get("win_length", 400))
    kernels = 2 * (n_fft // 2) * win if str(getattr(config, "feat_type", "pt")).startswith("tf") else win
    return kernels + (n_fft // 2 + 1) * int(config.F)


def default_max_parameters() -> Optional[int]:
    """The size ceiling when the caller names none: ``$REDIMNET_MAX_PARAMETERS``, else :data:`MAX_PARAMETERS`."""
    text = os.environ.get(MAX_PARAMETERS_ENV, "").strip()
    if not text:
        return MAX_PARAMETERS
    if text.lower() == "none":
        return None
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = 0
    if value <= 0:
        raise CheckpointError(f"{MAX_PARAMETERS_ENV}={text!r} is not a positive whole number or 'none'")
    return value


def layout(
    config, max_parameters: Optional[int] = MAX_PARAMETERS, source: str = "model_config", model_class=None
) -> torch.nn.Module:
    """The network ``config`` describes, on the ``meta`` device: shapes without memory.

    Refuses (:class:`CheckpointError`) a network of more than ``max_parameters``
    values (parameters and buffers), more than :data:`MAX_BLOCKS` blocks or a front end
    of more than :data:`MAX_FRONTEND_VALUES` values; ``max_parameters=None`` lifts these limits.
    """
    if max_parameters is not None:
        blocks = sum(stage.num_blocks for stage in config.stages_setup) + len(config.stages_setup)
        front = _frontend_values(config)
        if blocks > MAX_BLOCKS:
            raise CheckpointError(f"{source} describes {blocks} blocks, more than the {MAX_BLOCKS} allowed; " + _OPT_IN)
        if front > min(max_parameters, MAX_FRONTEND_VALUES):
            raise CheckpointError(
                f"{source} describes a front end of {front:,} values, more than the "
                f"{min(max_parameters, MAX_FRONTEND_VALUES):,} allowed; {_OPT_IN}"
            )
    if model_class is None:
        model_class = get_family(config.family).network_class
    try:
        with torch.device("meta"):
            skeleton = model_class(config)
    # torch raises TypeError (not OverflowError) for a size beyond int64
    except (RuntimeError, ValueError, TypeError, OverflowError, MemoryError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f"{source} describes a network that cannot be built: {first_line}") from None
    values = sum(t.numel() for t in skeleton.state_dict().values())
    if max_parameters is not None and values > max_parameters:
        raise CheckpointError(
            f"{source} describes a network of {values:,} parameters and buffers, more than the ceiling of "
            f"{max_parameters:,} (redimnet.models.checkpoint.MAX_PARAMETERS); {_OPT_IN}"
        )
    return skeleton


def to_original_state_dict(model: PooledEmbedder) -> Dict[str, torch.Tensor]:
    """Our state dict under the original implementation's names."""
    state = model.state_dict()
    names = family_of(model).original_names(state, model.config)
    return {names[k]: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def first_non_finite(state_dict: Mapping[str, torch.Tensor]) -> Optional[str]:
    """Name of the first floating-point tensor holding an infinite or NaN value, or None."""
    for name, tensor in state_dict.items():
        if isinstance(tensor, torch.Tensor) and (tensor.is_floating_point() or tensor.is_complex()):
            if not bool(torch.isfinite(tensor).all()):
                return name
    return None


def load_checkpoint(
    path: PathLike,
    map_location: Union[str, torch.device] = "cpu",
    family: Optional[str] = None,
    max_parameters: Union[int, None, str] = "default",
) -> PooledEmbedder:
    """Load a checkpoint in the official release format; returns the model in eval mode.

    Reads both families' files: a ReDimNet file gives a :class:`redimnet.ReDimNet`,
    a ReDimNet2 file a :class:`redimnet.ReDimNet2`; the family is recognised from
    the file's ``model_config``, and ``family="redimnet"`` or ``"redimnet2"`` forces it.
    The file's ``state_dict`` is checked against the network its
    ``model_config`` describes before that network is built (see the module
    documentation); ``max_parameters`` is the size ceiling (None: no ceiling,
    for files you trust; by default :func:`default_max_parameters`).

    Args:
        path: the checkpoint file.
        map_location: device the tensors are loaded to.
        family: ``"redimnet"`` or ``"redimnet2"`` to force the family; None to recognise it.
        max_parameters: the most parameters a file may declare (None: no ceiling; ``"default"``:
            :func:`default_max_parameters`).

    Returns:
        The network, in eval mode.

    Raises:
        CheckpointError: anything wrong with the file.
    """
    check_family(family)
    path = Path(path)
    if max_parameters == "default":
        max_parameters = default_max_parameters()
    if max_parameters is not None and (
        isinstance(max_parameters, bool) or not isinstance(max_parameters, int) or max_parameters <= 0
    ):
        raise ValueError(f"max_parameters must be a positive integer or None, got {max_parameters!r}")
    content = _read(path, None if max_parameters is None else 8 * max_parameters + (16 << 20))
    if not isinstance(content, Mapping) or "state_dict" not in content or "model_config" not in content:
        found = (
            f"a dict with keys {_describe_keys(map(str, content))}"
            if isinstance(content, Mapping)
            else f"a {type(content).__name__}"
        )
        raise CheckpointError(
            f"{path} is not in the ReDimNet release format: expected a dict with "
            f"'model_config' and 'state_dict', found {found}"
        )
    state_dict = content["state_dict"]
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"{path}: 'state_dict' is a {type(state_dict).__name__}, not a dict of tensors")
    chosen = get_family(family or detect_family(content["model_config"]))
    config_class, model_class = chosen.config_class, chosen.network_class
    try:
        config = config_class.from_dict(content["model_config"])
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{path}: invalid model_config for {model_class.__name__}: {error}") from None
    skeleton = layout(config, max_parameters, source=f"{path}: model_config", model_class=model_class)
    renamed = from_original_state_dict(state_dict, skeleton, source=str(path))
    del skeleton
    model = model_class(config)
    model.load_state_dict(renamed, strict=True)
    return model.to(map_location).eval()


def save_checkpoint(model: PooledEmbedder, path: PathLike) -> Path:
    """Write ``model`` in the official release format (readable by the original code).

    The file is written to a temporary name and renamed into place, so an
    interrupted save never leaves a partial checkpoint at ``path``.  A model
    with infinite or NaN weights is refused (:class:`CheckpointError`).

    Args:
        model: the network to save (either family).
        path: where to write the file.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    if not isinstance(model, tuple(family.network_class for family in registered_families())):
        raise TypeError(f"save_checkpoint expects a redimnet.ReDimNet or ReDimNet2, got {type(model).__name__}")
    path = Path(path)
    bad = first_non_finite(model.state_dict())
    if bad is not None:
        raise CheckpointError(
            f"not saving {path}: the model's {bad!r} holds infinite or NaN values "
            "(training diverged?); a checkpoint must hold finite weights"
        )
    content = {"model_config": model.config.to_dict(), "state_dict": to_original_state_dict(model)}
    with atomic_write(path) as stream:
        torch.save(content, stream)
    return path
