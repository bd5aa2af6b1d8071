"""Score normalisation against a cohort: S-norm and adaptive S-norm (AS-Norm).

A cohort is a set of embeddings of speakers not in the evaluation (usually
one mean embedding per training speaker, see :func:`build_cohort`).  Each
utterance of a trial is scored against the whole cohort; the trial score is
standardised with the mean and standard deviation of those cohort scores,
once from the enrolment side and once from the test side, and the two are
averaged.  AS-Norm uses only the ``top_k`` highest cohort scores of each
utterance (its closest impostors); plain S-norm uses all of them.
"""

from __future__ import annotations

from typing import Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import RedimnetError
from .scoring import l2_normalize
from .trials import EmbeddingIndex, _normalise_id

__all__ = [
    "ScoreNormError",
    "speaker_of",
    "speakers_of",
    "SpeakerLookup",
    "build_cohort",
    "cohort_statistics",
    "normalize_scores",
]

_ROWS_PER_BLOCK = 2048


class ScoreNormError(RedimnetError):
    """A cohort or normalisation request that cannot be used."""


def speaker_of(utt: str) -> str:
    """The speaker an utterance id implies: its first path component (``id10270/abc/00001.wav`` -> ``id10270``)."""
    first = _normalise_id(utt).lstrip("/").split("/", 1)
    if len(first) < 2 or not first[0]:
        raise ScoreNormError(
            f"cannot tell the speaker of utterance id {utt!r}: it has no directory part; "
            "give an utt2spk file (UTTERANCE SPEAKER per line)"
        )
    return first[0]


def speakers_of(ids: Sequence[str], utt2spk: Optional[Mapping[str, str]] = None) -> List[str]:
    """The speaker of every utterance id: from ``utt2spk`` (looked up like trial ids, so extensions may
    differ) or, without it, the first path component of each id (see :func:`speaker_of`)."""
    if utt2spk is None:
        return [speaker_of(str(u)) for u in ids]
    return SpeakerLookup(utt2spk)(ids)


class SpeakerLookup:
    """:func:`speakers_of` with one ``utt2spk`` mapping, its index built once (for ids that come in parts)."""

    def __init__(self, utt2spk: Mapping[str, str]):
        self.index = EmbeddingIndex(list(utt2spk.keys()))
        self.labels = list(utt2spk.values())

    def __call__(self, ids: Sequence[str]) -> List[str]:
        speakers, missing = [], []
        for utt in (str(i) for i in ids):
            row = self.index.find(utt)
            if row is None:
                missing.append(utt)
            else:
                speakers.append(self.labels[row])
        if missing:
            raise ScoreNormError(
                f"{len(missing)} of {len(ids)} embedded utterances have no speaker in utt2spk "
                f"(e.g. {', '.join(missing[:3])}); add them to utt2spk or embed only the "
                "utterances that have one"
            )
        return speakers


def build_cohort(
    ids: Iterable[str], embeddings: np.ndarray, utt2spk: Optional[Mapping[str, str]] = None, min_utterances: int = 1
) -> Tuple[List[str], np.ndarray]:
    """``(speakers, means)``: the mean of the L2-normalised embeddings of every speaker, itself normalised.

    Speakers come from ``utt2spk`` (looked up like trial ids, so extensions may
    differ) or, without it, from the first path component of each id.
    Speakers with fewer than ``min_utterances`` utterances are left out.
    """
    ids = [str(i) for i in ids]
    unit = l2_normalize(embeddings)
    if len(ids) != unit.shape[0]:
        raise ScoreNormError(f"{len(ids)} ids for {unit.shape[0]} embeddings")
    speakers = speakers_of(ids, utt2spk)
    names, inverse, counts = np.unique(np.asarray(speakers, dtype=str), return_inverse=True, return_counts=True)
    sums = np.zeros((names.size, unit.shape[1]), dtype=np.float64)
    np.add.at(sums, inverse.reshape(-1), unit)
    keep = counts >= min_utterances
    if not keep.any():
        raise ScoreNormError(f"no speaker has at least {min_utterances} utterances; lower the minimum")
    means = (sums[keep] / counts[keep, None]).astype(np.float32)
    return names[keep].tolist(), l2_normalize(means)


_BLOCK_BYTES = 64 << 20
"""Largest block of cohort scores computed at once (rows of embeddings per block follow from the cohort size)."""


def cohort_statistics(
    unit_embeddings: np.ndarray, unit_cohort: np.ndarray, top_k: Optional[int] = None, index=None
) -> Tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each embedding's cosine scores against the cohort.

    With ``top_k`` only the ``top_k`` highest scores of each row count (AS-Norm);
    without it (or with ``top_k`` equal to the cohort size), all cohort scores
    (S-norm), computed from the cohort's mean and second-moment matrix: exact,
    and independent of the cohort's size per embedding.  Both inputs must be
    unit-length rows.

    ``index``: a nearest-neighbour index of the cohort rows (keys = row numbers,
    e.g. :class:`redimnet.speakers.vectors.HnswIndex`) for AS-Norm with a large
    cohort: each embedding's top-``top_k`` candidates come from it and are scored
    exactly, instead of scoring the whole cohort.  Worth it when embeddings come
    a few at a time; for a whole evaluation, one matrix product per block is
    cheaper.
    """
    n_cohort = unit_cohort.shape[0]
    if unit_embeddings.shape[1] != unit_cohort.shape[1]:
        raise ScoreNormError(
            f"cohort embeddings have dimension {unit_cohort.shape[1]}, evaluated embeddings "
            f"{unit_embeddings.shape[1]}: the cohort must come from the same model"
        )
    if n_cohort < 2:
        raise ScoreNormError(f"the cohort needs at least 2 embeddings, it has {n_cohort}")
    if top_k is not None and not 2 <= top_k <= n_cohort:
        raise ScoreNormError(f"top_k must be between 2 and the cohort size ({n_cohort}), got {top_k}")
    if top_k is None or top_k == n_cohort:
        return _all_scores_statistics(unit_embeddings, unit_cohort)
    if index is not None:
        return _indexed_top_statistics(unit_embeddings, unit_cohort, top_k, index)
    means = np.empty(unit_embeddings.shape[0], dtype=np.float64)
    stds = np.empty_like(means)
    cohort_t = np.ascontiguousarray(unit_cohort.T) if unit_embeddings.shape[0] > 8 else None
    rows = max(1, min(_ROWS_PER_BLOCK, _BLOCK_BYTES // (4 * n_cohort)))
    for start in range(0, unit_embeddings.shape[0], rows):
        chunk = unit_embeddings[start : start + rows]
        # a few rows: numpy's own loop on this thread (BLAS threads would spin for so little work)
        block = np.einsum("qd,nd->qn", chunk, unit_cohort) if cohort_t is None else chunk @ cohort_t
        block = np.partition(block, n_cohort - top_k, axis=1)[:, n_cohort - top_k :].astype(np.float64)
        means[start : start + rows] = block.mean(axis=1)
        stds[start : start + rows] = block.std(axis=1)
    return means, stds


def _all_scores_statistics(unit_embeddings: np.ndarray, unit_cohort: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """S-norm statistics: mean ``q.m`` and variance ``q'Sq - (q.m)^2`` with the cohort's mean ``m`` and
    second-moment matrix ``S``."""
    cohort = np.asarray(unit_cohort, dtype=np.float64)
    mean = cohort.mean(axis=0)
    second = cohort.T @ cohort / cohort.shape[0]
    queries = np.asarray(unit_embeddings, dtype=np.float64)
    means = queries @ mean
    variances = np.einsum("ij,jk,ik->i", queries, second, queries) - means**2
    return means, np.sqrt(np.maximum(variances, 0.0))


def _indexed_top_statistics(
    unit_embeddings: np.ndarray, unit_cohort: np.ndarray, top_k: int, index
) -> Tuple[np.ndarray, np.ndarray]:
    """AS-Norm statistics from the index's candidates, scored exactly (a row short of candidates is scored
    against the whole cohort)."""
    wanted = min(unit_cohort.shape[0], top_k + max(16, top_k // 4))
    keys, _ = index.search(np.asarray(unit_embeddings, dtype=np.float32), wanted)
    means = np.empty(unit_embeddings.shape[0], dtype=np.float64)
    stds = np.empty_like(means)
    for row, (query, candidates) in enumerate(zip(unit_embeddings, keys)):
        candidates = candidates[candidates >= 0]
        if candidates.size < top_k:
            scores = unit_cohort @ query
        else:
            scores = unit_cohort[candidates] @ query
        best = np.partition(scores, scores.size - top_k)[scores.size - top_k :].astype(np.float64)
        means[row], stds[row] = best.mean(), best.std()
    return means, stds


def normalize_scores(
    scores: np.ndarray,
    enroll_rows: np.ndarray,
    test_rows: np.ndarray,
    unit_embeddings: np.ndarray,
    unit_cohort: np.ndarray,
    top_k: Optional[int] = None,
) -> np.ndarray:
    """S-norm (``top_k=None``) or AS-Norm of trial ``scores``.

    ``scores[i]`` belongs to the trial ``unit_embeddings[enroll_rows[i]]`` against
    ``unit_embeddings[test_rows[i]]``; cohort statistics are computed once for
    every distinct utterance.  Returns ``((s - mu_e) / sd_e + (s - mu_t) / sd_t) / 2``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    enroll_rows = np.asarray(enroll_rows, dtype=np.int64)
    test_rows = np.asarray(test_rows, dtype=np.int64)
    used, inverse = np.unique(np.r_[enroll_rows, test_rows], return_inverse=True)
    means, stds = cohort_statistics(unit_embeddings[used], unit_cohort, top_k)
    flat = np.flatnonzero(stds <= 1e-12)
    if flat.size:
        raise ScoreNormError(
            f"{flat.size} utterance(s) score identically against every cohort member used; "
            "the cohort is degenerate (duplicate embeddings?) — use a larger or more varied cohort"
        )
    inverse = inverse.reshape(-1)
    e, t = inverse[: scores.size], inverse[scores.size :]
    return 0.5 * ((scores - means[e]) / stds[e] + (scores - means[t]) / stds[t])
