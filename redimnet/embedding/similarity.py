"""Cosine similarity and L2 normalisation of embeddings: the one implementation and its zero-vector policy.

Policy: an embedding that is all zeros has no direction, and one with NaN or
infinite values has none either; normalising or scoring it raises
:class:`ScoringError` (never a silent 0, NaN or 1.0).  Silence, the usual
source of such vectors, is refused earlier, when audio is read
(:func:`redimnet.audio.check_signal_level`).
"""

from __future__ import annotations

import numpy as np

from ..errors import RedimnetError

__all__ = ["ScoringError", "l2_normalize", "cosine_score"]


class ScoringError(RedimnetError, ValueError):
    """Embeddings that cannot be normalised or scored (zero, non-finite, mismatched sizes)."""


_POLICY = "a zero or non-finite embedding has no direction, so no cosine score"


def _as_array(vector) -> np.ndarray:
    if hasattr(vector, "detach"):  # torch tensor
        vector = vector.detach().float().cpu().numpy()
    return np.asarray(vector)


def _unit_rows(matrix, what: str) -> np.ndarray:
    """Float64 unit rows, after the zero / non-finite checks (the policy lives here)."""
    matrix = np.asarray(_as_array(matrix))
    if matrix.ndim != 2:
        raise ScoringError(f"embeddings must be a 2-D matrix [utterances, dim], got shape {matrix.shape}")
    matrix = matrix.astype(np.float64)
    if not np.all(np.isfinite(matrix)):
        rows = np.flatnonzero(~np.all(np.isfinite(matrix), axis=1))
        raise ScoringError(f"{rows.size} {what}(s) contain NaN or infinite values (first: row {rows[0]}); {_POLICY}")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    zero = np.flatnonzero(norms[:, 0] == 0)
    if zero.size:
        raise ScoringError(f"{zero.size} {what}(s) are all zeros (an all-zero vector; first: row {zero[0]}); {_POLICY}")
    return matrix / norms


def l2_normalize(matrix, what: str = "embedding", dtype=np.float32) -> np.ndarray:
    """Rows of a ``[N, D]`` matrix scaled to unit length (``dtype``, float32 by default; computed in float64).

    Raises :class:`ScoringError` for a row that is all zeros or holds NaN or
    infinite values (named by row number and ``what``).
    """
    return _unit_rows(matrix, what).astype(dtype, copy=False)


def cosine_score(a, b) -> float:
    """Cosine similarity of two embeddings (1-D arrays or tensors of the same size), in [-1, 1]."""
    a, b = _as_array(a).reshape(-1), _as_array(b).reshape(-1)
    if a.shape != b.shape:
        raise ScoringError(f"cannot score embeddings of different sizes {a.shape[0]} and {b.shape[0]}")
    unit = l2_normalize(np.stack([a, b]), dtype=np.float64)
    return float(np.clip(np.dot(unit[0], unit[1]), -1.0, 1.0))
