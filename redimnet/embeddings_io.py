"""The embeddings file: ``.npz`` with ``ids`` (strings) and ``embeddings`` (float32 ``[N, D]``).

Utterance ids are keys shared by ``redimnet embed`` (which writes these files),
``redimnet eval`` (which looks trial entries up in them) and the speaker
database.  Writes are atomic (temporary file + rename).
"""

import os
from pathlib import Path
from typing import Dict, Sequence, Tuple, Union

import numpy as np

from .errors import RedimnetError
from .fileio import atomic_write

PathLike = Union[str, os.PathLike]


class EmbeddingsFileError(RedimnetError):
    """An embeddings file is missing or not in the expected format."""


def save_embeddings(path: PathLike, ids: Sequence[str], embeddings: np.ndarray) -> Path:
    """Write ``ids`` and their ``embeddings`` (one row per id) to ``path`` atomically."""
    path = Path(path)
    ids = np.asarray([str(i) for i in ids], dtype=str)
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or len(ids) != embeddings.shape[0]:
        raise ValueError(f"need one embedding row per id: {len(ids)} ids, embeddings of shape {embeddings.shape}")
    if len(set(ids.tolist())) != len(ids):
        raise ValueError("utterance ids must be unique")
    with atomic_write(path, suffix=".tmp.npz") as stream:
        np.savez(stream, ids=ids, embeddings=embeddings)
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
                    f"found {', '.join(data.files) or 'none'}")
            ids, embeddings = data["ids"], data["embeddings"]
    except EmbeddingsFileError:
        raise
    except Exception as error:  # zipfile / pickle / value errors from a damaged file
        raise EmbeddingsFileError(f"cannot read embeddings file {path}: {error}") from None
    if embeddings.ndim != 2 or ids.ndim != 1 or len(ids) != len(embeddings):
        raise EmbeddingsFileError(f"{path}: 'ids' {ids.shape} and 'embeddings' {embeddings.shape} do not match")
    return ids.astype(str), embeddings.astype(np.float32, copy=False)


def embeddings_dict(path: PathLike) -> Dict[str, np.ndarray]:
    """``{utterance_id: embedding}`` from an embeddings file."""
    ids, embeddings = load_embeddings(path)
    return dict(zip(ids.tolist(), embeddings))
