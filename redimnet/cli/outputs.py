"""Where a command writes: never over one of its inputs, never over a file of another kind.

Every file a verb writes (``-o``, ``--output-dir``, ``--plot``, ``--cache``, and each file it puts in
an output folder) goes through :func:`check_output` before any work is spent:

* the path must not be one of the command's inputs (the same file, also through a symbolic or
  hard link): ``calibrate -o e.npz --embeddings e.npz`` is refused, not turned into JSON;
* an existing file may only be replaced by a file of the same kind (a calibration by a
  calibration, an RTTM by an RTTM, ...): ``calibrate -o x.wav`` is refused when ``x.wav`` is audio.
  A rerun that writes the same output again is fine.

Each :class:`Kind` recognises its own files from their first bytes (or a small parse); a file it
does not recognise is "of another kind".
"""

from __future__ import annotations

import json
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple, Union

from .._utils.names import path_below, printable
from ..embedding.io import OutputError

PathLike = Union[str, os.PathLike]

# Files a recogniser reads whole (JSON, text) are small; a larger one is not ours.
_SMALL_FILE = 64 << 20


@dataclass(frozen=True)
class Kind:
    """A kind of output: its name in messages, and how to recognise an existing file of that kind."""

    name: str
    recognise: Callable[[Path], bool]
    folder: bool = False


def _head(path: Path, size: int = 64) -> bytes:
    with open(path, "rb") as stream:
        return stream.read(size)


def _json_object(path: Path) -> Optional[dict]:
    if path.stat().st_size > _SMALL_FILE:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _npz_members(path: Path) -> Tuple[str, ...]:
    try:
        with zipfile.ZipFile(path) as archive:
            return tuple(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return ()


def _is_calibration(path: Path) -> bool:
    from ..evaluation.calibration import FORMAT

    data = _json_object(path)
    return data is not None and data.get("format") == FORMAT


def _is_backend(path: Path) -> bool:
    from ..evaluation.backend import FORMAT

    if "meta.npy" not in _npz_members(path):
        return False
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
    except Exception:  # a damaged or foreign archive is simply not a back-end
        return False
    return isinstance(meta, dict) and meta.get("format") == FORMAT


def _is_embeddings(path: Path) -> bool:
    members = _npz_members(path)
    return "ids.npy" in members and "embeddings.npy" in members


def _text_lines(path: Path) -> Optional[list]:
    if path.stat().st_size > _SMALL_FILE:
        return None
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        return None


def _is_rttm(path: Path) -> bool:
    lines = _text_lines(path)
    return lines is not None and all(
        not line.strip() or line.startswith((";", "#")) or line.split()[0] == "SPEAKER" for line in lines
    )


def _is_text(path: Path) -> bool:
    return _text_lines(path) is not None and b"\0" not in _head(path, 4096)


def _is_scores(path: Path) -> bool:
    lines = _text_lines(path)
    if lines is None:
        return False
    for line in lines:
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 4 or fields[3] not in ("target", "nontarget"):
            return False
        try:
            float(fields[2])
        except ValueError:
            return False
    return True


def _is_diarization_json(path: Path) -> bool:
    data = _json_object(path)
    return data is not None and "segments" in data and "recording" in data


def _is_png(path: Path) -> bool:
    return _head(path, 8) == b"\x89PNG\r\n\x1a\n"


def _is_torch_file(path: Path) -> bool:
    """A file ``torch.save`` or ``torch.jit.save`` wrote: a zip archive with a pickle, or a legacy pickle."""
    if zipfile.is_zipfile(path):
        return any(name.endswith(("data.pkl", "constants.pkl")) for name in _npz_members(path))
    return _head(path, 2)[:1] == b"\x80"  # pickle protocol 2+ (torch's legacy format)


def _is_onnx(path: Path) -> bool:
    try:
        import onnx
    except ImportError:
        return False
    try:
        onnx.load_model(str(path), load_external_data=False)
    except Exception:  # not a model protobuf
        return False
    return True


CALIBRATION = Kind("calibration file (JSON written by 'redimnet calibrate')", _is_calibration)
BACKEND = Kind("back-end file (written by 'redimnet backend train')", _is_backend)
EMBEDDINGS = Kind("embeddings file (.npz with ids and embeddings)", _is_embeddings)
RTTM = Kind("RTTM file", _is_rttm)
SCORES = Kind("score file ('ENROLL TEST SCORE target|nontarget' lines)", _is_scores)
DIARIZATION_JSON = Kind("diarization result (JSON written by 'redimnet diarize')", _is_diarization_json)
PNG = Kind("PNG picture", _is_png)
TEXT_LIST = Kind("text list", _is_text)
CHECKPOINT = Kind("checkpoint (written by torch.save)", _is_torch_file)
TORCHSCRIPT = Kind("TorchScript model", _is_torch_file)
ONNX = Kind("ONNX model", _is_onnx)
FOLDER = Kind("folder", lambda path: path.is_dir(), folder=True)


class Inputs:
    """The files a command reads.  Folders and missing paths are left out: a folder given as input may
    also receive outputs (each file written into it is checked on its own)."""

    def __init__(self, *paths: Optional[PathLike]):
        self._files: Dict[Tuple[int, int], str] = {}
        for path in paths:
            if path is None:
                continue
            try:
                info = os.stat(path)
            except (OSError, ValueError):
                continue
            if stat.S_ISREG(info.st_mode):
                self._files[(info.st_dev, info.st_ino)] = os.fspath(path)

    def __iter__(self):
        return iter(self._files.values())

    def same_as(self, path: PathLike) -> Optional[str]:
        """The input that ``path`` is (same file, through any link), or None."""
        try:
            info = os.stat(path)
        except (OSError, ValueError):
            return None
        return self._files.get((info.st_dev, info.st_ino))

    def add(self, *paths: Optional[PathLike]) -> "Inputs":
        more = Inputs(*paths)
        self._files.update(more._files)
        return self


def check_output(path: PathLike, kind: Optional[Kind], inputs: Optional[Inputs] = None, option: str = "-o") -> Path:
    """``path`` as a :class:`~pathlib.Path`, once it is known that writing ``kind`` there harms nothing.

    Raises :class:`~redimnet.embedding.io.OutputError` when ``path`` is one of ``inputs``, or exists
    and is not a ``kind`` (a folder where a file goes, a file where a folder goes, or a file the
    kind does not recognise).  ``kind`` None: only the input check, for a writer that reads what is
    there itself (``embed`` resumes from its output).  ``option`` names the command-line option in the message.
    """
    target = Path(path)
    shown = f"{option} {printable(target)}" if option else printable(target)
    same = inputs.same_as(target) if inputs is not None else None
    if same is not None:
        also = "" if os.path.abspath(same) == os.path.abspath(target) else f" ({printable(same)})"
        raise OutputError(f"{shown} is one of the inputs{also}; it would be overwritten: choose another output")
    if kind is None or not os.path.lexists(target):
        return target
    if kind.folder:
        if not target.is_dir():
            raise OutputError(f"{shown} exists and is not a folder; name a folder (new or existing)")
        return target
    if target.is_dir():
        raise OutputError(f"{shown} is a folder; name a file, e.g. {printable(target / 'NAME')}")
    if not target.is_file():
        raise OutputError(f"{shown} exists and is not a regular file; choose another output")
    try:
        ours = kind.recognise(target)
    except OSError:
        ours = False
    if not ours:
        raise OutputError(
            f"{shown} exists and is not a {kind.name}; it is left alone: remove it or choose another output"
        )
    return target


def output_below(folder: Path, name: str, suffix: str, kind: Kind, inputs: Inputs, what: str) -> Path:
    """The file ``folder/name + suffix`` for an id or name from user data (``what`` it is): kept below
    ``folder`` (:func:`redimnet._utils.names.path_below`) and checked like every output (:func:`check_output`)."""
    return check_output(path_below(folder, name, suffix, what=what), kind, inputs, option="")
