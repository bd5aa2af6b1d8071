"""Cosine scoring of trials on L2-normalised embeddings, and score files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional, Union

import numpy as np
from numpy.typing import ArrayLike

from .._utils.fileio import atomic_write
from ..embedding.similarity import ScoringError, l2_normalize

__all__ = ["ScoringError", "l2_normalize", "prepare_embeddings", "cosine_scores", "write_scores"]

PathLike = Union[str, os.PathLike]

_CHUNK = 65536


def prepare_embeddings(matrix: np.ndarray, mean: Optional[np.ndarray] = None) -> np.ndarray:
    """L2-normalise, subtract ``mean`` (if given, a vector of unit-normalised embedding space), renormalise."""
    normalised = l2_normalize(matrix)
    if mean is None:
        return normalised
    mean = np.asarray(mean, dtype=np.float32).reshape(-1)
    if mean.shape[0] != normalised.shape[1]:
        raise ScoringError(f"mean vector has dimension {mean.shape[0]}, embeddings have {normalised.shape[1]}")
    return l2_normalize(normalised - mean)


def cosine_scores(
    embeddings: np.ndarray, enroll_rows: ArrayLike, test_rows: ArrayLike, normalised: bool = False
) -> np.ndarray:
    """Cosine similarity of ``embeddings[enroll_rows[i]]`` and ``embeddings[test_rows[i]]`` for every i.

    Pass ``normalised=True`` when the rows are already unit length.  Works in
    chunks, so millions of trials need little memory.
    """
    unit = embeddings if normalised else l2_normalize(embeddings)
    enroll_rows = np.asarray(enroll_rows, dtype=np.int64)
    test_rows = np.asarray(test_rows, dtype=np.int64)
    if enroll_rows.shape != test_rows.shape:
        raise ScoringError(f"{enroll_rows.size} enrolment rows but {test_rows.size} test rows")
    scores = np.empty(enroll_rows.size, dtype=np.float64)
    for start in range(0, enroll_rows.size, _CHUNK):
        a = unit[enroll_rows[start : start + _CHUNK]]
        b = unit[test_rows[start : start + _CHUNK]]
        scores[start : start + _CHUNK] = np.einsum("ij,ij->i", a, b, dtype=np.float64)
    return scores


def write_scores(
    path: PathLike,
    enroll: Iterable[str],
    test: Iterable[str],
    scores: Iterable[float],
    labels: Optional[Iterable[bool]] = None,
) -> Path:
    """Write ``enroll test score [target|nontarget]`` lines, one per trial."""
    with atomic_write(path, mode="w") as stream:
        if labels is None:
            for e, t, s in zip(enroll, test, scores):
                stream.write(f"{e} {t} {s:.6f}\n")
        else:
            for e, t, s, label in zip(enroll, test, scores, labels):
                stream.write(f"{e} {t} {s:.6f} {'target' if label else 'nontarget'}\n")
    return Path(path)
