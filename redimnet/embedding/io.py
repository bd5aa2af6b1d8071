"""Embeddings on disk: the ``.npz`` file, a folder of ``.npy`` files, Kaldi ark/scp.

The embeddings file is ``.npz`` with ``ids`` (strings) and ``embeddings``
(float32 ``[N, D]``).  Utterance ids are keys shared by ``redimnet embed``
(which writes these files), ``redimnet eval`` (which looks trial entries up in
them) and the speaker database.

:func:`open_output` picks the writer for an output path (``.npz``,
``.ark``/``.scp``, else a folder of ``<id>.npy``).  Every write is atomic
(:func:`redimnet._utils.fileio.atomic_write`).  In a ``.npy`` folder an id becomes a
file name only through :func:`redimnet._utils.names.path_below`: ids that are
absolute, contain ``..``, empty components or control characters, or would
leave the folder through a symbolic link are refused one by one
(:meth:`EmbeddingsOutput.refusal`), and the other ids are written.
"""

import io
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .._utils.fileio import atomic_write
from .._utils.names import UnsafeNameError, path_below, printable
from .._utils.optional import require
from ..errors import RedimnetError

PathLike = Union[str, os.PathLike]


class EmbeddingsFileError(RedimnetError):
    """An embeddings file is missing or not in the expected format."""


class OutputError(RedimnetError):
    """An output path cannot be used (wrong type, or an existing file that is not ours to replace)."""


def save_embeddings(path: PathLike, ids: Sequence[str], embeddings: np.ndarray, model: Optional[str] = None) -> Path:
    """Write ``ids`` and their ``embeddings`` (one row per id) to ``path`` atomically.

    ``model``: the fingerprint of the model that made them (see
    :func:`redimnet.models.fingerprint.model_fingerprint`), stored so calibrations and
    resumed runs can tell embeddings of different models apart.
    """
    path = Path(path)
    names = np.asarray([str(i) for i in ids], dtype=str)
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or len(names) != embeddings.shape[0]:
        raise ValueError(f"need one embedding row per id: {len(names)} ids, embeddings of shape {embeddings.shape}")
    if len(set(names.tolist())) != len(names):
        raise ValueError("utterance ids must be unique")
    with atomic_write(path, suffix=".tmp.npz") as stream:
        if model is None:
            np.savez(stream, ids=names, embeddings=embeddings)
        else:
            np.savez(stream, ids=names, embeddings=embeddings, model=np.array(str(model)))
    return path


def load_embeddings(path: PathLike) -> Tuple[np.ndarray, np.ndarray]:
    """``(ids, embeddings)`` from a file written by :func:`save_embeddings`."""
    path = Path(path)
    if not path.is_file():
        raise EmbeddingsFileError(f"embeddings file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "ids" not in data.files or "embeddings" not in data.files:
                raise EmbeddingsFileError(
                    f"{path} is not a redimnet embeddings file: it needs arrays 'ids' and 'embeddings', "
                    f"found {', '.join(data.files) or 'none'}"
                )
            ids, embeddings = data["ids"], data["embeddings"]
    except EmbeddingsFileError:
        raise
    except Exception as error:  # zipfile / pickle / value errors from a damaged file
        raise EmbeddingsFileError(f"cannot read embeddings file {path}: {error}") from None
    if embeddings.ndim != 2 or ids.ndim != 1 or len(ids) != len(embeddings):
        raise EmbeddingsFileError(f"{path}: 'ids' {ids.shape} and 'embeddings' {embeddings.shape} do not match")
    return ids.astype(str), embeddings.astype(np.float32, copy=False)


def embeddings_model(path: PathLike) -> Optional[str]:
    """The model fingerprint stored in an embeddings file, or None when the file does not record it."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if "model" not in data.files:
                return None
            value = data["model"]
    except Exception as error:  # zipfile / value errors from a damaged file
        raise EmbeddingsFileError(f"cannot read embeddings file {path}: {error}") from None
    if value.ndim != 0 or value.dtype.kind != "U":
        raise EmbeddingsFileError(f"{path}: 'model' must be a single string")
    return str(value)


def check_cache_model(path: PathLike, fingerprint: str) -> None:
    """Refuse to reuse the embeddings cache ``path`` unless the model with ``fingerprint`` wrote it.

    A cache that does not record its model (written by an older version) is refused too: its
    embeddings may come from any model.
    """
    stored = embeddings_model(path)
    if stored == fingerprint:
        return
    if stored is None:
        what = "does not record which model made its embeddings"
    else:
        what = f"holds embeddings of another model (fingerprint {stored}; this model is {fingerprint})"
    raise EmbeddingsFileError(
        f"embeddings cache {path} {what}: embeddings of different models cannot be mixed; delete it or "
        "choose another cache file"
    )


def embeddings_dict(path: PathLike) -> Dict[str, np.ndarray]:
    """``{utterance_id: embedding}`` from an embeddings file."""
    ids, embeddings = load_embeddings(path)
    return dict(zip(ids.tolist(), embeddings))


# --- outputs of ``redimnet embed`` ------------------------------------------------------------------
class EmbeddingsOutput:
    """Where embeddings go; knows which ids are already there and which ids it cannot store."""

    path: Path

    def set_model(self, fingerprint: str) -> None:
        """Record (and check) the fingerprint of the model whose embeddings are written; formats without
        room for it ignore it."""

    def done(self) -> set:
        """Ids already written (a rerun skips them)."""
        raise NotImplementedError

    def refusal(self, uid: str) -> Optional[str]:
        """Why ``uid`` cannot be stored here, or None when it can."""
        return None

    def write(self, results: Dict[str, np.ndarray]) -> List[Tuple[str, str]]:
        """Store ``results`` (id -> embedding) atomically; returns ``(id, reason)`` for ids refused."""
        raise NotImplementedError

    def _accepted(self, results: Dict[str, np.ndarray]) -> Tuple[Dict[str, np.ndarray], List[Tuple[str, str]]]:
        kept, refused = {}, []
        for uid, vector in results.items():
            reason = self.refusal(uid)
            if reason is None:
                kept[uid] = vector
            else:
                refused.append((uid, reason))
        return kept, refused

    @property
    def failures_path(self) -> Path:
        """``OUT.failed.tsv`` next to the output."""
        base = self.path.with_suffix("") if self.path.suffix else self.path
        return base.parent / (base.name + ".failed.tsv")

    def write_failures(self, failures: Sequence[Tuple[str, str]]) -> Optional[Path]:
        """Write ``OUT.failed.tsv`` (``path<TAB>reason``), or remove a stale one when nothing failed.

        Fields are written with :func:`redimnet._utils.names.printable`: tabs,
        newlines and other control characters in paths or reasons appear as
        ``\\t``, ``\\n``, ..., so each failure is exactly one line of two fields.
        """
        target = self.failures_path
        if not failures:
            if target.is_file():
                target.unlink()
            return None
        lines = ["path\treason"] + [f"{printable(p)}\t{printable(' '.join(str(r).split()))}" for p, r in failures]
        with atomic_write(target, mode="w") as stream:
            stream.write("\n".join(lines) + "\n")
        return target


class NpzOutput(EmbeddingsOutput):
    """One ``.npz`` embeddings file (:func:`save_embeddings`), merged with what it already holds."""

    def __init__(self, path: PathLike):
        self.path = Path(path)
        self.existing: Dict[str, np.ndarray] = {}
        self.model: Optional[str] = None
        if self.path.exists():
            try:
                ids, matrix = load_embeddings(self.path)
                self.model = embeddings_model(self.path)
            except EmbeddingsFileError as error:
                raise OutputError(
                    f"{self.path} exists but is not an embeddings file ({error}); remove it or choose another output"
                ) from None
            self.existing = dict(zip(ids.tolist(), matrix))

    def done(self) -> set:
        return set(self.existing)

    def set_model(self, fingerprint: str) -> None:
        if self.existing and self.model is not None and self.model != fingerprint:
            raise OutputError(
                f"{self.path} holds embeddings of another model (fingerprint {self.model}, this one is "
                f"{fingerprint}); embeddings of different models cannot be mixed: choose another "
                "output file"
            )
        self.model = fingerprint if (self.model is not None or not self.existing) else None

    def write(self, results: Dict[str, np.ndarray]) -> List[Tuple[str, str]]:
        merged = {**self.existing, **results}
        if merged:
            ids = sorted(merged)
            save_embeddings(self.path, ids, np.stack([merged[i] for i in ids]), model=self.model)
        return []


class NpyFolderOutput(EmbeddingsOutput):
    """A folder with one ``<id>.npy`` file per id (ids with ``/`` make subfolders)."""

    def __init__(self, path: PathLike):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise OutputError(f"{self.path} exists and is not a folder; choose another output")

    def file_for(self, uid: str) -> Path:
        """The file of ``uid``; :class:`redimnet._utils.names.UnsafeNameError` if it would not be inside the folder."""
        return path_below(self.path, uid, ".npy")

    def refusal(self, uid: str) -> Optional[str]:
        try:
            self.file_for(uid)
        except UnsafeNameError as error:
            return str(error)
        return None

    def done(self) -> set:
        if not self.path.is_dir():
            return set()
        return {p.relative_to(self.path).as_posix()[:-4] for p in self.path.rglob("*.npy")}

    def write(self, results: Dict[str, np.ndarray]) -> List[Tuple[str, str]]:
        refused = []
        for uid, vector in results.items():
            try:
                target = self.file_for(uid)
            except UnsafeNameError as error:
                refused.append((uid, str(error)))
                continue
            if target.exists():
                continue
            with atomic_write(target) as stream:
                np.save(stream, np.asarray(vector, dtype=np.float32))
        return refused


class KaldiOutput(EmbeddingsOutput):
    """Kaldi ``NAME.ark`` + ``NAME.scp`` (needs the ``kaldi`` extra); keys may not contain white space."""

    def __init__(self, path: PathLike):
        kaldiio = require("kaldiio", "Kaldi ark/scp output")
        path = Path(path)
        self.path = path.with_suffix(".ark")
        self.scp = path.with_suffix(".scp")
        self.existing: Dict[str, np.ndarray] = {}
        if self.scp.exists():
            try:
                self.existing = {k: np.asarray(v, dtype=np.float32) for k, v in kaldiio.load_scp(str(self.scp)).items()}
            except Exception as error:  # kaldiio raises many kinds on a damaged file
                raise OutputError(
                    f"{self.scp} exists but cannot be read as Kaldi scp/ark ({error}); "
                    "remove it or choose another output"
                ) from None

    def refusal(self, uid: str) -> Optional[str]:
        if not uid or any(c.isspace() or not c.isprintable() for c in uid):
            return (
                f"utterance id '{printable(uid)}' cannot be a Kaldi key (empty, white space or control "
                "characters); use .npz output"
            )
        return None

    def done(self) -> set:
        return set(self.existing)

    def write(self, results: Dict[str, np.ndarray]) -> List[Tuple[str, str]]:
        kaldiio = require("kaldiio", "Kaldi ark/scp output")
        kept, refused = self._accepted(results)
        merged = {**self.existing, **kept}
        if not merged:
            return refused
        ark_name = str(self.path)

        class _Named(io.BytesIO):
            name = ark_name  # kaldiio writes this name into the scp

        ark, scp = _Named(), io.StringIO()
        kaldiio.save_ark(ark, {k: np.asarray(merged[k], dtype=np.float32) for k in sorted(merged)}, scp=scp)
        with atomic_write(self.path) as stream:
            stream.write(ark.getvalue())
        with atomic_write(self.scp) as stream:
            stream.write(scp.getvalue().encode())
        return refused


def open_output(path: PathLike) -> EmbeddingsOutput:
    """The writer for an output path: by suffix ``.npz``, ``.ark``/``.scp``, else a folder of ``.npy`` files."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix == ".npz":
        return NpzOutput(target)
    if suffix in (".ark", ".scp"):
        return KaldiOutput(target)
    if suffix and not target.is_dir():
        raise OutputError(f"{path}: unknown output type {suffix!r}; use NAME.npz, NAME.ark, NAME.scp or a folder")
    return NpyFolderOutput(target)
