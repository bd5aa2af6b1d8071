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
import zipfile
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

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
            _check_members(path, data.files)
            ids, embeddings = data["ids"], data["embeddings"]
    except EmbeddingsFileError:
        raise
    except Exception as error:  # zipfile / pickle / value errors from a damaged file
        raise EmbeddingsFileError(f"cannot read embeddings file {path}: {error}") from None
    if embeddings.ndim != 2 or ids.ndim != 1 or len(ids) != len(embeddings):
        raise EmbeddingsFileError(f"{path}: 'ids' {ids.shape} and 'embeddings' {embeddings.shape} do not match")
    return ids.astype(str), embeddings.astype(np.float32, copy=False)


def _check_members(path: Path, members: Sequence[str]) -> None:
    """The error for an archive without the two arrays of an embeddings file (both readers)."""
    if "ids" not in members or "embeddings" not in members:
        raise EmbeddingsFileError(
            f"{path} is not a redimnet embeddings file: it needs arrays 'ids' and 'embeddings', "
            f"found {', '.join(members) or 'none'}"
        )


def embeddings_blocks(path: PathLike, rows: int) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """``(ids, float32 embeddings)`` of an embeddings file, ``rows`` rows at a time, read as they are needed:
    memory stays bounded by ``rows`` whatever the file's size (a Fortran-ordered array, which no writer of
    ours makes, is read whole).  The arrays' headers are checked against the sizes of the data behind them
    before anything is read."""
    path = Path(path)
    if not path.is_file():
        raise EmbeddingsFileError(f"embeddings file not found: {path}")
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    try:
        with zipfile.ZipFile(path) as archive:
            members = {name[: -len(".npy")] for name in archive.namelist() if name.endswith(".npy")}
            _check_members(path, sorted(members))
            with archive.open("ids.npy") as id_stream, archive.open("embeddings.npy") as vector_stream:
                id_reader = _NpyRows(path, "ids", id_stream, archive.getinfo("ids.npy").file_size)
                vector_reader = _NpyRows(path, "embeddings", vector_stream, archive.getinfo("embeddings.npy").file_size)
                if id_reader.dtype.kind != "U" or len(id_reader.shape) != 1:
                    raise EmbeddingsFileError(f"{path}: 'ids' must be a 1-D array of strings")
                if len(vector_reader.shape) != 2 or vector_reader.shape[0] != id_reader.shape[0]:
                    raise EmbeddingsFileError(
                        f"{path}: 'ids' {id_reader.shape} and 'embeddings' {vector_reader.shape} do not match"
                    )
                if vector_reader.dtype.kind not in "fiu":
                    raise EmbeddingsFileError(f"{path}: 'embeddings' must be numbers, not {vector_reader.dtype}")
                for start in range(0, id_reader.shape[0], rows):
                    count = min(rows, id_reader.shape[0] - start)
                    yield id_reader.read(count), vector_reader.read(count).astype(np.float32, copy=False)
    except EmbeddingsFileError:
        raise
    except Exception as error:  # zipfile / format errors from a damaged file
        raise EmbeddingsFileError(f"cannot read embeddings file {path}: {error}") from None


class _NpyRows:
    """Rows of one ``.npy`` member of an archive, read ``count`` rows at a time."""

    def __init__(self, path: Path, name: str, stream, size: int):
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise EmbeddingsFileError(f"{path}: '{name}' is in an unknown .npy format version {version}")
        if dtype.hasobject:
            raise EmbeddingsFileError(f"{path}: '{name}' holds Python objects; only plain arrays are read")
        self.path, self.shape, self.dtype, self.stream = path, tuple(shape), dtype, stream
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        header = stream.tell() if stream.seekable() else None
        if header is not None and header + self.row_bytes * (shape[0] if shape else 0) != size:
            raise EmbeddingsFileError(
                f"{path}: '{name}' claims shape {tuple(shape)} of {dtype}, which is not the size of its data; "
                "the file is damaged"
            )
        self.whole = None
        if fortran:
            self.whole = np.frombuffer(stream.read(), dtype=dtype).reshape(tuple(shape)[::-1]).T
        self.at = 0

    def read(self, count: int) -> np.ndarray:
        if self.whole is not None:
            self.at += count
            return np.ascontiguousarray(self.whole[self.at - count : self.at])
        data = self.stream.read(count * self.row_bytes)
        if len(data) != count * self.row_bytes:
            raise EmbeddingsFileError(f"{self.path}: the file ends before its arrays do; it is damaged")
        return np.frombuffer(data, dtype=self.dtype).reshape((count, *self.shape[1:]))


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
