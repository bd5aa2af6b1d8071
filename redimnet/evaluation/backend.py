"""Scoring back-ends trained on labelled embeddings: mean subtraction, whitening, LDA and PLDA.

A back-end is one chain, applied in this order:

1. L2 normalisation of the raw embedding (the space cosine scoring lives in);
2. subtraction of the training mean;
3. an optional linear projection: ``whiten`` (the training covariance becomes
   the identity) or ``lda`` (the directions that best separate the training
   speakers, ``dim`` of them);
4. length normalisation again (Garcia-Romero & Espy-Wilson, 2011), so the
   vectors suit the Gaussian model of the next step;
5. scoring: the cosine of the transformed vectors, or the log-likelihood ratio
   of a two-covariance PLDA model (``plda``).

The PLDA model is the two-covariance model: an embedding is ``x = y + e``
with the speaker variable ``y ~ N(mu, B)`` shared by all recordings of a
speaker and the recording noise ``e ~ N(0, W)``.  :meth:`PLDA.fit` estimates
``mu``, ``B`` and ``W`` by expectation-maximisation; scoring diagonalises both
covariances at once, so a trial costs O(dim).  Enrolment with several
recordings uses all of them by the book: the posterior of ``y`` given the
``n`` enrolment vectors (their count and mean) predicts the test vector.
Cosine back-ends enrol with the mean of the normalised vectors.

:meth:`PLDA.adapt` adapts a model to unlabelled in-domain embeddings (the
unsupervised adaptation of Kaldi and WeSpeaker): the mean moves to the
in-domain mean and, where the in-domain data vary more than the model
expects, the excess variance is shared between ``W`` and ``B``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike

from .._utils.fileio import atomic_write
from ..embedding.similarity import ScoringError, l2_normalize
from ..errors import RedimnetError
from .calibration import array_fingerprint

__all__ = ["BackendError", "PLDA", "Backend", "train_backend", "default_dim", "BACKEND_KINDS"]

FORMAT = "redimnet-backend"
VERSION = 1
BACKEND_KINDS = ("mean", "whiten", "lda", "plda")
_CHUNK = 65536


class BackendError(RedimnetError):
    """A back-end that cannot be trained, read or applied."""


def _unit_rows(matrix: np.ndarray, what: str) -> np.ndarray:
    """Float64 unit rows under the one zero / non-finite policy (:func:`redimnet.embedding.similarity.l2_normalize`)."""
    try:
        return l2_normalize(matrix, what, dtype=np.float64)
    except ScoringError as error:
        raise BackendError(str(error)) from None


def _group(labels: Sequence) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(names, inverse, counts)`` of speaker labels."""
    names, inverse, counts = np.unique(np.asarray([str(s) for s in labels]), return_inverse=True, return_counts=True)
    return names, inverse.reshape(-1), counts


def _regularised(matrix: np.ndarray, floor: float) -> np.ndarray:
    """``matrix`` made symmetric with its eigenvalues floored at ``floor`` times their mean (never singular)."""
    matrix = 0.5 * (matrix + matrix.T)
    values, vectors = np.linalg.eigh(matrix)
    minimum = floor * max(float(np.mean(np.abs(values))), 1e-12)
    values = np.maximum(values, minimum)
    return (vectors * values) @ vectors.T


def _scatter(x: np.ndarray, inverse: np.ndarray, counts: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(speaker_means, between_cov, within_cov)`` of centred vectors ``x``."""
    sums = np.zeros((counts.size, x.shape[1]))
    np.add.at(sums, inverse, x)
    means = sums / counts[:, None]
    residual = x - means[inverse]
    within = residual.T @ residual / x.shape[0]
    centred = means - means.mean(axis=0)
    between = centred.T @ centred / counts.size
    return means, between, within


@dataclass
class PLDA:
    """Two-covariance PLDA: ``x = y + e``, ``y ~ N(mean, between)``, ``e ~ N(0, within)``."""

    mean: np.ndarray
    between: np.ndarray
    within: np.ndarray

    def __post_init__(self):
        self.mean = np.asarray(self.mean, dtype=np.float64)
        self.between = np.asarray(self.between, dtype=np.float64)
        self.within = np.asarray(self.within, dtype=np.float64)
        dim = self.mean.shape[0]
        if self.between.shape != (dim, dim) or self.within.shape != (dim, dim):
            raise BackendError(
                f"PLDA parameters do not fit together: mean {self.mean.shape}, between "
                f"{self.between.shape}, within {self.within.shape}"
            )
        self._diagonalise()

    def _diagonalise(self):
        # a transform T with T W T' = I and T B T' = diag(psi): scoring is then per dimension
        within = _regularised(self.within, 1e-6)
        chol = np.linalg.cholesky(within)
        inv_chol = np.linalg.inv(chol)
        between_white = inv_chol @ _regularised(self.between, 1e-9) @ inv_chol.T
        psi, vectors = np.linalg.eigh(0.5 * (between_white + between_white.T))
        self.psi = np.maximum(psi, 0.0)
        self.transform = vectors.T @ inv_chol

    # ---- training -------------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, vectors: np.ndarray, speakers: Sequence, iterations: int = 10, floor: float = 1e-4) -> "PLDA":
        """Estimate the model from ``vectors`` ``[N, dim]`` and their speaker labels by EM.

        Needs at least two speakers and at least one speaker with two or more
        vectors (otherwise the recording variability cannot be told from the
        speaker variability).  Covariances are regularised: eigenvalues below
        ``floor`` times their mean are raised to it, so a singular within-class
        covariance (more dimensions than recordings) still gives finite scores.
        """
        x = np.asarray(vectors, dtype=np.float64)
        if x.ndim != 2 or not np.all(np.isfinite(x)):
            raise BackendError("PLDA training vectors must be a finite 2-D matrix [vectors, dim]")
        names, inverse, counts = _group(speakers)
        if len(inverse) != x.shape[0]:
            raise BackendError(f"{x.shape[0]} vectors but {len(inverse)} speaker labels")
        if names.size < 2:
            raise BackendError(f"PLDA needs at least 2 speakers, got {names.size}")
        if counts.max() < 2:
            raise BackendError(
                "PLDA needs speakers with at least two recordings each (all speakers have one): "
                "the recording variability cannot be estimated"
            )
        if iterations < 1:
            raise BackendError(f"iterations must be at least 1, got {iterations}")
        n, dim = x.shape
        sums = np.zeros((names.size, dim))
        np.add.at(sums, inverse, x)
        second = x.T @ x  # sum of x x'
        mean = x.mean(axis=0)
        _, between, within = _scatter(x - mean, inverse, counts)
        between = _regularised(between, floor)
        within = _regularised(within, floor)
        sizes, size_index = np.unique(counts, return_inverse=True)
        for _ in range(iterations):
            inv_b = np.linalg.inv(between)
            inv_w = np.linalg.inv(within)
            prior_term = inv_b @ mean
            posterior_means = np.empty((names.size, dim))
            covariance_sum = np.zeros((dim, dim))
            for k, size in enumerate(sizes):
                members = np.flatnonzero(size_index == k)
                cov = np.linalg.inv(inv_b + size * inv_w)  # posterior covariance of y for this count
                posterior_means[members] = (prior_term + sums[members] @ inv_w) @ cov
                covariance_sum += members.size * cov
            count_weighted_cov = sum(
                np.count_nonzero(counts == size) * size * np.linalg.inv(inv_b + size * inv_w) for size in sizes
            )
            mean = posterior_means.mean(axis=0)
            yy = (posterior_means.T @ posterior_means + covariance_sum) / names.size
            between = _regularised(yy - np.outer(mean, mean), floor)
            cross = sums.T @ posterior_means  # sum_i f_i E[y_i]'
            within_sum = second - cross - cross.T + (posterior_means.T * counts) @ posterior_means + count_weighted_cov
            within = _regularised(within_sum / n, floor)
        return cls(mean, between, within)

    def adapt(
        self, vectors: np.ndarray, within_scale: float = 0.3, between_scale: float = 0.7, mean_scale: float = 1.0
    ) -> "PLDA":
        """A copy adapted to unlabelled in-domain ``vectors`` (same space as the training vectors).

        The mean moves ``mean_scale`` of the way to the in-domain mean.  In the
        space where the model's total covariance ``B + W`` is the identity, every
        direction in which the in-domain covariance exceeds 1 adds its excess
        to ``W`` (``within_scale`` of it) and to ``B`` (``between_scale``).
        Directions where the in-domain data vary less are left alone.
        """
        x = np.asarray(vectors, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.mean.shape[0] or not np.all(np.isfinite(x)):
            raise BackendError(f"adaptation vectors must be a finite [N, {self.mean.shape[0]}] matrix")
        if x.shape[0] < 2:
            raise BackendError("adaptation needs at least 2 in-domain vectors")
        if min(within_scale, between_scale, mean_scale) < 0:
            raise BackendError("adaptation scales must not be negative")
        shift = x.mean(axis=0) - self.mean
        mean = self.mean + mean_scale * shift
        covariance = np.cov(x, rowvar=False, bias=True) + mean_scale * np.outer(shift, shift)
        total = self.between + self.within
        values, vectors_ = np.linalg.eigh(_regularised(total, 1e-9))
        to_white = (vectors_ / np.sqrt(values)).T  # to_white @ total @ to_white.T = I
        from_white = vectors_ * np.sqrt(values)
        in_white = to_white @ covariance @ to_white.T
        excess_values, directions = np.linalg.eigh(0.5 * (in_white + in_white.T))
        excess = np.maximum(excess_values - 1.0, 0.0)
        added = (directions * excess) @ directions.T
        within = self.within + within_scale * from_white @ added @ from_white.T
        between = self.between + between_scale * from_white @ added @ from_white.T
        return PLDA(mean, between, within)

    # ---- scoring --------------------------------------------------------------------------------------------
    def project(self, vectors: np.ndarray) -> np.ndarray:
        """Vectors in the diagonal space (within covariance I, between diag(psi))."""
        return (np.asarray(vectors, dtype=np.float64) - self.mean) @ self.transform.T

    def llr_projected(self, enroll_means: np.ndarray, enroll_counts: np.ndarray, test: np.ndarray) -> np.ndarray:
        """LLRs of trials given projected enrolment means (with their counts) and projected test vectors."""
        psi = self.psi
        counts = np.asarray(enroll_counts, dtype=np.float64).reshape(-1, 1)
        shrink = counts * psi / (counts * psi + 1.0)  # posterior mean factor
        post_var = psi / (counts * psi + 1.0)
        pred_var = 1.0 + post_var
        prior_var = 1.0 + psi
        diff = test - shrink * enroll_means
        same = -0.5 * (np.log(pred_var) + diff**2 / pred_var)
        other = -0.5 * (np.log(prior_var) + test**2 / prior_var)
        return np.sum(same - other, axis=1)

    def single_trial_terms(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """``(d, a, b, c)`` with ``llr(e, t) = sum(d e t) + sum(a e^2) + sum(b t^2) + c`` for one enrolment vector
        (both in the projected space): the expansion of :meth:`llr_projected` with a count of one."""
        psi = self.psi
        shrink = psi / (psi + 1.0)
        pred_var = 1.0 + psi / (psi + 1.0)
        prior_var = 1.0 + psi
        d = shrink / pred_var
        a = -0.5 * shrink**2 / pred_var
        b = 0.5 / prior_var - 0.5 / pred_var
        c = float(0.5 * np.sum(np.log(prior_var) - np.log(pred_var)))
        return d, a, b, c

    def llr(self, enroll: np.ndarray, test: np.ndarray) -> float:
        """LLR that ``test`` (one vector) comes from the speaker of ``enroll`` (``[n, dim]`` or one vector)."""
        enroll = np.atleast_2d(np.asarray(enroll, dtype=np.float64))
        projected = self.project(enroll)
        return float(
            self.llr_projected(
                projected.mean(axis=0, keepdims=True), np.array([enroll.shape[0]]), self.project(np.atleast_2d(test))
            )[0]
        )


@dataclass
class Backend:
    """A trained chain of transforms and a scoring rule (see the module description).

    Made by :func:`train_backend` or :meth:`load`, rather than built by hand.

    Args:
        kind: ``mean``, ``whiten``, ``lda`` or ``plda`` (``BACKEND_KINDS``).
        mean: the training mean of the L2-normalised embeddings, ``[dim]``.
        projection: the whitening or LDA matrix ``[dim, dim']`` (None for ``mean``).
        plda: the PLDA model for ``plda`` (None otherwise).
        info: facts about the training data (counts of embeddings and speakers), stored with the back-end.

    Raises:
        BackendError: ``kind`` is not one of ``BACKEND_KINDS``.
    """

    kind: str
    mean: np.ndarray
    projection: Optional[np.ndarray] = None
    plda: Optional[PLDA] = None
    info: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in BACKEND_KINDS:
            raise BackendError(f"unknown back-end kind {self.kind!r}; choose one of {', '.join(BACKEND_KINDS)}")
        self.mean = np.asarray(self.mean, dtype=np.float64)
        if self.info is None:  # an explicit None, as older callers pass
            self.info = {}

    @property
    def input_dim(self) -> int:
        return int(self.mean.shape[0])

    @property
    def scoring(self) -> str:
        """``plda`` or ``cosine``: what :meth:`score_trials` returns."""
        return "plda" if self.plda is not None else "cosine"

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        """Raw embeddings ``[N, dim]`` through the chain, up to (not including) scoring."""
        x = _unit_rows(embeddings, "embeddings")
        if x.shape[1] != self.input_dim:
            raise BackendError(
                f"this back-end was trained on {self.input_dim}-dimensional embeddings, got "
                f"{x.shape[1]}: use embeddings of the same model"
            )
        x = x - self.mean
        if self.projection is not None:
            x = x @ self.projection
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return x / norms * (math.sqrt(x.shape[1]) if self.kind == "plda" else 1.0)

    def _prepare(self, embeddings: np.ndarray) -> np.ndarray:
        x = self.transform(embeddings)
        return self.plda.project(x) if self.plda is not None else x

    def _score_prepared(self, enroll: np.ndarray, counts: np.ndarray, test: np.ndarray) -> np.ndarray:
        if self.plda is not None:
            return self.plda.llr_projected(enroll, counts, test)
        norms = np.linalg.norm(enroll, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return np.einsum("ij,ij->i", enroll / norms, test)

    def score_trials(self, embeddings: np.ndarray, enroll_rows: ArrayLike, test_rows: ArrayLike) -> np.ndarray:
        """Scores of single-recording trials ``embeddings[enroll_rows[i]]`` vs ``embeddings[test_rows[i]]``.

        PLDA's LLR of one enrolment vector ``e`` and a test vector ``t`` is a
        quadratic form, ``e' D t + q_enrol(e) + q_test(t) + c`` with diagonal ``D``
        in the model's space; the two quadratic terms are computed once per
        embedding, so a trial costs one weighted dot product, as a cosine does.
        """
        prepared = self._prepare(embeddings)
        enroll_rows = np.asarray(enroll_rows, dtype=np.int64)
        test_rows = np.asarray(test_rows, dtype=np.int64)
        if self.plda is not None:
            weights, enrol_q, test_q, constant = self.plda.single_trial_terms()
            left = prepared * weights
            enrol_terms = (prepared**2) @ enrol_q
            test_terms = (prepared**2) @ test_q + constant
        else:
            left, enrol_terms, test_terms = prepared, None, None
        scores = np.empty(enroll_rows.size)
        for start in range(0, enroll_rows.size, _CHUNK):
            e = enroll_rows[start : start + _CHUNK]
            t = test_rows[start : start + _CHUNK]
            block = np.einsum("ij,ij->i", left[e], prepared[t])
            if enrol_terms is not None:
                block += enrol_terms[e] + test_terms[t]
            scores[start : start + _CHUNK] = block
        return scores

    def score_sets(self, enrollments: Sequence[np.ndarray], tests: np.ndarray) -> np.ndarray:
        """Scores ``[len(tests), len(enrollments)]`` of test embeddings against multi-recording enrolments.

        PLDA scores each enrolment by its count and mean in the model's space;
        cosine by the mean of the transformed, normalised recordings.
        """
        tests_prepared = self._prepare(np.atleast_2d(tests))
        means, counts = [], []
        for item in enrollments:
            prepared = self._prepare(np.atleast_2d(item))
            means.append(prepared.mean(axis=0))
            counts.append(prepared.shape[0])
        means_arr, counts_arr = np.asarray(means), np.asarray(counts, dtype=np.float64)
        out = np.empty((tests_prepared.shape[0], len(enrollments)))
        for j in range(len(enrollments)):
            out[:, j] = self._score_prepared(
                np.repeat(means_arr[j : j + 1], tests_prepared.shape[0], axis=0),
                np.full(tests_prepared.shape[0], counts_arr[j]),
                tests_prepared,
            )
        return out

    def adapt(self, embeddings: np.ndarray, **scales) -> "Backend":
        """A copy whose PLDA model is adapted to unlabelled in-domain ``embeddings`` (see :meth:`PLDA.adapt`)."""
        if self.plda is None:
            raise BackendError("only a PLDA back-end can be adapted")
        adapted = self.plda.adapt(self.transform(embeddings), **scales)
        info = dict(self.info or {}, adapted_on=int(np.asarray(embeddings).shape[0]))
        return Backend(self.kind, self.mean, self.projection, adapted, info)

    def fingerprint(self) -> str:
        parts = [self.mean] + ([self.projection] if self.projection is not None else [])
        if self.plda is not None:
            parts += [self.plda.mean, self.plda.between, self.plda.within]
        return array_fingerprint(np.concatenate([np.asarray(p, dtype=np.float32).reshape(-1) for p in parts]))

    # ---- file format ----------------------------------------------------------------------------------------
    def save(self, path: Union[str, Path]) -> Path:
        """Write the back-end as ``.npz`` (numbers only; read back with :meth:`load`, no pickle)."""
        arrays = {"mean": self.mean}
        if self.projection is not None:
            arrays["projection"] = self.projection
        if self.plda is not None:
            arrays.update(plda_mean=self.plda.mean, plda_between=self.plda.between, plda_within=self.plda.within)
        meta = {"format": FORMAT, "version": VERSION, "kind": self.kind, "info": self.info}
        arrays["meta"] = np.array(json.dumps(meta))
        path = Path(path)
        with atomic_write(path, suffix=".tmp.npz") as stream:
            np.savez(stream, **arrays)  # type: ignore[arg-type]  # numpy's stub confuses **arrays with allow_pickle
        return path

    @classmethod
    def load(cls, path: Union[str, Path]) -> "Backend":
        path = Path(path)
        if not path.is_file():
            raise BackendError(f"back-end file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
            meta = json.loads(str(arrays.pop("meta")))
        except Exception as error:  # zip / json / value errors of a damaged or foreign file
            raise BackendError(f"cannot read back-end file {path}: {type(error).__name__}: {error}") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise BackendError(f"{path} is not a redimnet back-end file (written by 'redimnet backend train')")
        if meta.get("version") != VERSION:
            raise BackendError(f"{path} has format version {meta.get('version')!r}; this redimnet reads {VERSION}")
        for key, value in arrays.items():
            if not np.issubdtype(value.dtype, np.floating) or not np.all(np.isfinite(value)):
                raise BackendError(f"{path}: array {key!r} is not finite floating-point data")
        try:
            plda = (
                PLDA(arrays["plda_mean"], arrays["plda_between"], arrays["plda_within"])
                if "plda_mean" in arrays
                else None
            )
            backend = cls(
                str(meta.get("kind")), arrays["mean"], arrays.get("projection"), plda, dict(meta.get("info") or {})
            )
        except (KeyError, np.linalg.LinAlgError) as error:
            raise BackendError(f"{path} is damaged: {type(error).__name__}: {error}") from None
        if backend.projection is not None and backend.projection.shape[0] != backend.input_dim:
            raise BackendError(f"{path} is damaged: projection {backend.projection.shape} does not fit the mean")
        return backend


def default_dim(kind: str, input_dim: int, speakers: int) -> Optional[int]:
    """The LDA dimension ``redimnet backend train`` uses without ``--dim``: it follows the speakers.

    ``lda``: ``speakers - 1`` (at most ``input_dim``), all LDA can separate.  ``plda``: every
    dimension (None) while the training data has at least a quarter as many speakers as the
    embeddings have dimensions (``input_dim <= 4 * (speakers - 1)``); with fewer speakers, LDA to
    ``speakers - 1`` first.  Measured on held-out voices (synthetic, festival/flite and espeak-ng
    speakers; back-ends trained on 28-33 other speakers): for 192-dimensional embeddings LDA to
    ``speakers - 1`` lowered the EER by up to 2 points (9.0 -> 7.3 %, 7.4 -> 5.4 %; 5.7 -> 5.7 % on
    the third set); for 64-dimensional ones neither choice won everywhere (one model lost up to 1.3
    points with LDA, another gained up to 0.8), so they keep every dimension.  ``mean`` and
    ``whiten`` have no dimension (None).
    """
    if kind == "lda":
        return max(1, min(input_dim, speakers - 1))
    if kind == "plda" and input_dim > 4 * (speakers - 1):
        return max(1, speakers - 1)
    return None


def train_backend(
    embeddings: np.ndarray, speakers: Sequence, kind: str = "plda", dim: Optional[int] = None, iterations: int = 10
) -> Backend:
    """Train a back-end of ``kind`` (``mean``, ``whiten``, ``lda`` or ``plda``) on labelled embeddings.

    ``plda`` is LDA to ``dim`` dimensions (no reduction when ``dim`` is None)
    followed by length normalisation and PLDA.  LDA needs more speakers than
    ``dim``; whitening and LDA regularise a singular covariance (documented
    floor: 1e-4 of the mean eigenvalue).

    Args:
        embeddings: raw embeddings ``[N, dim]`` (normalised here).
        speakers: the speaker label of each row (any values; compared as strings).
        kind: ``mean``, ``whiten``, ``lda`` or ``plda``.
        dim: output dimension of LDA (``lda``, ``plda``); None keeps every dimension (``plda``)
            or at most ``speakers - 1`` (``lda``).
        iterations: EM iterations of the PLDA fit.

    Returns:
        The trained :class:`Backend`.

    Raises:
        BackendError: unknown kind, fewer than two speakers, labels and rows that differ in
            number, or a ``dim`` the data cannot support.
    """
    if kind not in BACKEND_KINDS:
        raise BackendError(f"unknown back-end kind {kind!r}; choose one of {', '.join(BACKEND_KINDS)}")
    x = _unit_rows(embeddings, "training embeddings")
    names, inverse, counts = _group(speakers)
    if len(inverse) != x.shape[0]:
        raise BackendError(f"{x.shape[0]} embeddings but {len(inverse)} speaker labels")
    if names.size < 2:
        raise BackendError(f"a back-end needs embeddings of at least 2 speakers, got {names.size}")
    mean = x.mean(axis=0)
    centred = x - mean
    info: Dict[str, Any] = {
        "embeddings": int(x.shape[0]),
        "speakers": int(names.size),
        "single_recording_speakers": int(np.count_nonzero(counts == 1)),
    }
    projection = None
    if kind == "whiten":
        covariance = _regularised(np.cov(centred, rowvar=False, bias=True), 1e-4)
        values, vectors = np.linalg.eigh(covariance)
        projection = vectors / np.sqrt(values)
    elif kind in ("lda", "plda"):
        target = x.shape[1] if dim is None else int(dim)
        if kind == "lda" and dim is None:
            target = min(x.shape[1], names.size - 1)
        if not 1 <= target <= x.shape[1]:
            raise BackendError(f"LDA dimension must be between 1 and {x.shape[1]}, got {target}")
        if target > names.size - 1 and dim is not None:
            raise BackendError(
                f"LDA to {target} dimensions needs more than {target} speakers; the training "
                f"data has {names.size}: choose --dim {names.size - 1} or fewer"
            )
        if target < x.shape[1] or kind == "lda":
            if counts.max() < 2:
                raise BackendError("LDA needs speakers with at least two recordings (all speakers have one)")
            import scipy.linalg

            _, between, within = _scatter(centred, inverse, counts)
            values, vectors = scipy.linalg.eigh(_regularised(between, 1e-9), _regularised(within, 1e-4))
            projection = vectors[:, ::-1][:, :target]
        info["dim"] = target
    backend = Backend(kind, mean, projection, None, info)
    if kind == "plda":
        transformed = backend.transform(embeddings)
        plda = PLDA.fit(transformed, [names[i] for i in inverse], iterations=iterations)
        backend = Backend(kind, mean, projection, plda, info)
    return backend
