"""Score calibration: from scores to log-likelihood ratios, and the metrics that judge it.

A raw score (a cosine, an AS-Norm score, a PLDA output) ranks trials but has no
absolute meaning: 0.45 may be a safe accept for one model and recording
condition and a coin toss for another.  A *calibrated* score is a
log-likelihood ratio (LLR), ``log p(score | same speaker) - log p(score |
different speakers)``, so a decision can be taken for any prior and costs
with Bayes' rule, and the result carries over to every application that shares
the recording conditions of the development data.

:func:`fit_calibration` fits the affine map ``llr = scale * score + offset (+
weights . quality)`` by prior-weighted logistic regression on a development
trial list (the linear calibration of the BOSARIS toolkit, with optional
quality measures such as the durations of the two recordings).  The
:class:`Calibration` it returns remembers the scoring *recipe* it was fitted on
(cosine / AS-Norm / PLDA, cohort and back-end fingerprints, model
fingerprint) and refuses scores produced by another recipe.

Metrics of calibration: :func:`cllr` (the cost of the LLRs as they are),
:func:`min_cllr` (the cost after the best monotonic recalibration, found with
the pool-adjacent-violators algorithm), :func:`actual_dcf` (the detection cost
of Bayes decisions taken with the LLRs, to compare with the minimum DCF), and
:func:`threshold_at_rate` (the score threshold for a target false-accept or
false-reject rate).
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union, cast

import numpy as np
from numpy.typing import ArrayLike

from .._utils.fileio import atomic_write, read_text
from ..errors import RedimnetError, RedimnetWarning
from .metrics import MetricsError, error_rates, trial_arrays

__all__ = [
    "CalibrationError",
    "Calibration",
    "Decision",
    "fit_calibration",
    "cllr",
    "min_cllr",
    "actual_dcf",
    "bayes_threshold",
    "posterior",
    "threshold_at_rate",
    "array_fingerprint",
    "quality_from_durations",
    "QUALITY_DURATIONS",
]

FORMAT = "redimnet-calibration"
VERSION = 1

# quality measures computed from the two recordings' durations (seconds)
QUALITY_DURATIONS = ("log_min_duration", "log_max_duration")

#: Fewest target and fewest non-target development trials a calibration is fitted on (hundreds of each
#: make a reliable one; below this the fit says nothing about the scores).
MIN_TRIALS_PER_CLASS = 10

# false-accept rates at which the development non-target LLRs are tabulated (for --far)
_FAR_GRID = np.logspace(-5, np.log10(0.5), 60)


# recipe keys that are compared only when both sides know them
_OPTIONAL_RECIPE_KEYS = ("model",)


class CalibrationError(RedimnetError):
    """A calibration that cannot be fitted, read, or applied to these scores."""


def _logit(p: float) -> float:
    return math.log(p) - math.log1p(-p)


def _check_prior(p: float, name: str = "prior") -> float:
    p = float(p)
    if not 0.0 < p < 1.0:
        raise CalibrationError(f"{name} must be strictly between 0 and 1, got {p:g}")
    return p


def array_fingerprint(matrix: np.ndarray) -> str:
    """A short SHA-256 of an array's shape and float32 values (identifies a cohort or a back-end)."""
    matrix = np.ascontiguousarray(np.asarray(matrix, dtype=np.float32))
    digest = hashlib.sha256(str(matrix.shape).encode())
    digest.update(matrix.tobytes())
    return digest.hexdigest()[:16]


def quality_from_durations(first: ArrayLike, second: ArrayLike) -> np.ndarray:
    """``[N, 2]`` quality measures of trials from the durations (seconds) of their two recordings.

    The columns are the logarithms of the shorter and of the longer duration
    (:data:`QUALITY_DURATIONS`), the measures used by quality-aware calibration:
    a short recording gives a less reliable score, so the fitted weights
    shrink its LLR towards zero.
    """
    first = np.asarray(first, dtype=np.float64).reshape(-1)
    second = np.asarray(second, dtype=np.float64).reshape(-1)
    if first.shape != second.shape:
        raise CalibrationError(f"{first.size} durations for the first side, {second.size} for the second")
    if first.size and (
        not np.all(np.isfinite(first)) or not np.all(np.isfinite(second)) or min(first.min(), second.min()) <= 0
    ):
        raise CalibrationError("recording durations must be positive finite seconds")
    return np.stack([np.log(np.minimum(first, second)), np.log(np.maximum(first, second))], axis=1)


def _quality_matrix(quality: Optional[np.ndarray], n: int, expected: int) -> np.ndarray:
    if quality is None:
        if expected:
            raise CalibrationError(
                f"this calibration uses {expected} quality measure(s) per trial "
                "(e.g. the recordings' durations); pass them"
            )
        return np.zeros((n, 0))
    quality = np.asarray(quality, dtype=np.float64)
    if quality.ndim == 1:
        quality = quality[:, None]
    if quality.shape != (n, expected):
        raise CalibrationError(f"quality measures have shape {quality.shape}, expected ({n}, {expected})")
    if not np.all(np.isfinite(quality)):
        raise CalibrationError("quality measures contain NaN or infinite values")
    return quality


def posterior(llr, p_target: float) -> np.ndarray:
    """The probability of "same speaker" given the LLR and the prior probability ``p_target``."""
    p_target = _check_prior(p_target, "p_target")
    llr = np.asarray(llr, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-(llr + _logit(p_target))))


def bayes_threshold(p_target: float, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """The LLR threshold of the Bayes decision: accept when ``llr >= -logit(effective prior)``."""
    p_target = _check_prior(p_target, "p_target")
    if c_miss <= 0 or c_fa <= 0:
        raise CalibrationError(f"costs must be positive, got c_miss={c_miss:g}, c_fa={c_fa:g}")
    return math.log(c_fa * (1.0 - p_target)) - math.log(c_miss * p_target)


def cllr(llrs: ArrayLike, labels: ArrayLike) -> float:
    """Cost of the log-likelihood-ratio (bits): 0 is perfect, 1 is an uninformative system.

    The average over target trials of ``log2(1 + exp(-llr))`` and over
    non-target trials of ``log2(1 + exp(llr))``, the two halves weighted
    equally.  It counts both discrimination and calibration; compare with
    :func:`min_cllr`, which counts discrimination only.
    """
    llrs = np.asarray(llrs, dtype=np.float64).reshape(-1)
    finite = np.where(np.isinf(llrs), 0.0, llrs)  # infinities are allowed (checked below), not NaN
    _, labels = trial_arrays(finite, labels)
    if np.any(np.isnan(llrs)):
        raise MetricsError("LLRs contain NaN")
    target_cost = np.logaddexp(0.0, -llrs[labels]).mean()
    nontarget_cost = np.logaddexp(0.0, llrs[~labels]).mean()
    return float((target_cost + nontarget_cost) / (2.0 * math.log(2.0)))


def _pav_llrs(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """LLRs of the best non-decreasing map of ``scores`` (pool-adjacent-violators on the target labels)."""
    from scipy.optimize import isotonic_regression

    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    # equal scores must get one value: pool them before the regression
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    counts = np.diff(np.r_[starts, scores.size])
    targets = np.add.reduceat(labels[order].astype(np.float64), starts)
    fitted = isotonic_regression(targets / counts, weights=counts, increasing=True).x
    fitted = np.clip(fitted, 0.0, 1.0)
    n_targets = int(labels.sum())
    prior_logit = math.log(n_targets) - math.log(labels.size - n_targets)
    with np.errstate(divide="ignore"):
        group_llr = np.log(fitted) - np.log1p(-fitted) - prior_logit
    llrs = np.empty(scores.size)
    llrs[order] = np.repeat(group_llr, counts)
    return llrs


def min_cllr(scores: ArrayLike, labels: ArrayLike) -> float:
    """The Cllr after the best monotonic (non-decreasing) recalibration of ``scores``: discrimination only."""
    scores, labels = trial_arrays(scores, labels)
    return cllr(_pav_llrs(scores, labels), labels)


def actual_dcf(
    llrs: ArrayLike, labels: ArrayLike, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0
) -> float:
    """Normalised detection cost of accepting exactly the trials with ``llr >= bayes_threshold(p_target)``.

    Normalised as :func:`redimnet.evaluation.min_dcf` is (by the better trivial
    system), so a well calibrated system has actual DCF close to its minimum DCF.
    """
    llrs, labels = trial_arrays(llrs, labels)
    threshold = bayes_threshold(p_target, c_miss, c_fa)
    accept = llrs >= threshold
    p_miss = np.count_nonzero(~accept & labels) / np.count_nonzero(labels)
    p_fa = np.count_nonzero(accept & ~labels) / np.count_nonzero(~labels)
    cost = c_miss * p_target * p_miss + c_fa * (1.0 - p_target) * p_fa
    return float(cost / min(c_miss * p_target, c_fa * (1.0 - p_target)))


def threshold_at_rate(
    scores: ArrayLike, labels: ArrayLike, far: Optional[float] = None, frr: Optional[float] = None
) -> Tuple[float, float, float]:
    """``(threshold, false_accept_rate, false_reject_rate)`` for a target rate on these trials.

    With ``far``: the lowest threshold whose false-accept rate is at most
    ``far`` (so the fewest false rejections under that constraint).  With
    ``frr``: the highest threshold whose false-reject rate is at most ``frr``.
    Give exactly one.  Accept means ``score >= threshold``.
    """
    if (far is None) == (frr is None):
        raise CalibrationError("give exactly one of far= or frr=")
    rate = far if far is not None else cast(float, frr)  # exactly one is given
    if not 0.0 <= float(rate) <= 1.0:
        raise CalibrationError(f"a target rate must be between 0 and 1, got {rate:g}")
    rates = error_rates(scores, labels)
    if far is not None:
        i = int(np.argmax(rates.false_alarm <= far))  # false_alarm falls to 0 at the last threshold
    else:
        i = int(np.flatnonzero(rates.miss <= frr)[-1])  # miss starts at 0 at the first threshold
    return float(rates.thresholds[i]), float(rates.false_alarm[i]), float(rates.miss[i])


@dataclass(frozen=True)
class Decision:
    """A calibrated decision: the LLR, the posterior at the prior, the threshold used and the outcome."""

    llr: float
    posterior: float
    p_target: float
    threshold: float
    accept: bool
    far: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        return {
            "llr": self.llr,
            "posterior": self.posterior,
            "p_target": self.p_target,
            "llr_threshold": self.threshold,
            "rule": "far" if self.far is not None else "bayes",
            "far": self.far,
            "decision": "accept" if self.accept else "reject",
        }


@dataclass
class Calibration:
    """An affine map from scores (and quality measures) to log-likelihood ratios, and what it was fitted on.

    ``llr = scale * score + offset + quality @ quality_weights``.  ``recipe``
    describes how the scores were made (``scoring``: ``cosine`` / ``snorm`` /
    ``asnorm`` / ``plda``, ``top_k``, ``cohort``, ``backend`` and ``model``
    fingerprints, the embedding dimension); :meth:`check_recipe` refuses
    scores made another way.  ``far_table`` holds the development set's
    non-target LLR thresholds for a grid of false-accept rates (for decisions by
    false-accept rate).  Made by :func:`fit_calibration` or :meth:`load`.

    Args:
        scale: multiplies the score.
        offset: added to the scaled score.
        quality_names: names of the quality measures the map uses (empty: none).
        quality_weights: one weight per quality measure.
        recipe: how the calibrated scores were made (see above).
        train_prior: the target prior the fit used.
        far_table: ``(false-accept rate, LLR threshold)`` pairs of the development set.
        dev: facts about the development set (trial and target counts, Cllr, minimum Cllr).
    """

    scale: float
    offset: float
    quality_names: Tuple[str, ...] = ()
    quality_weights: Tuple[float, ...] = ()
    recipe: Dict[str, Any] = field(default_factory=dict)
    train_prior: float = 0.5
    far_table: List[Tuple[float, float]] = field(default_factory=list)
    dev: Dict[str, Any] = field(default_factory=dict)

    def llr(self, scores, quality: Optional[np.ndarray] = None) -> np.ndarray:
        """Log-likelihood ratios of ``scores`` (``quality``: ``[N, len(quality_names)]``, when the map uses it)."""
        scores = np.asarray(scores, dtype=np.float64)
        shape = scores.shape
        flat = scores.reshape(-1)
        if not np.all(np.isfinite(flat)):
            raise CalibrationError("scores contain NaN or infinite values")
        q = _quality_matrix(quality, flat.size, len(self.quality_names))
        out = self.scale * flat + self.offset
        if q.shape[1]:
            out = out + q @ np.asarray(self.quality_weights, dtype=np.float64)
        return out.reshape(shape)

    def check_recipe(self, recipe: Mapping[str, Any]) -> None:
        """Raise :class:`CalibrationError` when ``recipe`` differs from the one this calibration was fitted on.

        Every key must match, except the model fingerprint, which is compared
        only when both sides know it (embeddings files do not always record
        their model).
        """
        problems = []
        for key in sorted(set(self.recipe) | set(recipe)):
            mine, theirs = self.recipe.get(key), recipe.get(key)
            if key not in _OPTIONAL_RECIPE_KEYS or (mine is not None and theirs is not None):
                if mine != theirs:
                    problems.append(f"{key}: fitted on {mine!r}, now {theirs!r}")
        if problems:
            raise CalibrationError(
                "this calibration was fitted on other scores and would give wrong "
                "likelihood ratios (" + "; ".join(problems) + "); fit a calibration for "
                "this scoring recipe with 'redimnet calibrate'"
            )

    def llr_threshold_at_far(self, far: float) -> float:
        """The LLR threshold that gave false-accept rate ``far`` on the development trials (interpolated)."""
        if not self.far_table:
            raise CalibrationError("this calibration has no false-accept-rate table")
        rates = np.array([r for r, _ in self.far_table])
        thresholds = np.array([t for _, t in self.far_table])
        if not rates.min() <= far <= rates.max():
            raise CalibrationError(
                f"false-accept rate {far:g} is outside what the development trials can "
                f"estimate ({rates.min():.2g} to {rates.max():.2g}); use more non-target "
                "trials or another rate"
            )
        order = np.argsort(rates)
        return float(np.interp(np.log(far), np.log(rates[order]), thresholds[order]))

    def decide(
        self, llr: float, p_target: float = 0.5, far: Optional[float] = None, c_miss: float = 1.0, c_fa: float = 1.0
    ) -> "Decision":
        """The decision for one LLR: at the Bayes threshold for ``p_target`` (and costs), or at the LLR
        threshold that gave false-accept rate ``far`` on the development trials."""
        threshold = self.llr_threshold_at_far(far) if far is not None else bayes_threshold(p_target, c_miss, c_fa)
        return Decision(float(llr), float(posterior(llr, p_target)), p_target, threshold, bool(llr >= threshold), far)

    # ---- file format ----------------------------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "scale": self.scale,
            "offset": self.offset,
            "quality_names": list(self.quality_names),
            "quality_weights": list(self.quality_weights),
            "recipe": dict(self.recipe),
            "train_prior": self.train_prior,
            "far_table": [list(row) for row in self.far_table],
            "dev": dict(self.dev),
        }

    def save(self, path: Union[str, Path]) -> Path:
        """Write the calibration as JSON (atomically)."""
        path = Path(path)
        with atomic_write(path, mode="w", suffix=".tmp.json") as stream:
            json.dump(self.to_dict(), stream, indent=2, allow_nan=False)
            stream.write("\n")
        return path

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "calibration") -> "Calibration":
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise CalibrationError(f"{where} is not a redimnet calibration file (written by 'redimnet calibrate')")
        if data.get("version") != VERSION:
            raise CalibrationError(
                f"{where} has format version {data.get('version')!r}; this redimnet reads version {VERSION}"
            )
        try:
            names = tuple(str(n) for n in data.get("quality_names", []))
            weights = tuple(float(w) for w in data.get("quality_weights", []))
            calibration = cls(
                scale=float(data["scale"]),
                offset=float(data["offset"]),
                quality_names=names,
                quality_weights=weights,
                recipe=dict(data.get("recipe") or {}),
                train_prior=float(data.get("train_prior", 0.5)),
                far_table=[(float(r), float(t)) for r, t in data.get("far_table", [])],
                dev=dict(data.get("dev") or {}),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise CalibrationError(f"{where} is damaged: {type(error).__name__}: {error}") from None
        numbers = [
            calibration.scale,
            calibration.offset,
            *calibration.quality_weights,
            *(v for row in calibration.far_table for v in row),
        ]
        if len(names) != len(weights) or not all(math.isfinite(v) for v in numbers):
            raise CalibrationError(f"{where} is damaged: non-finite numbers or mismatched quality weights")
        return calibration

    @classmethod
    def load(cls, path: Union[str, Path]) -> "Calibration":
        """Read a file written by :meth:`save`."""
        path = Path(path)
        text = read_text(path, "calibration file", CalibrationError)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise CalibrationError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None
        return cls.from_dict(data, str(path))


def fit_calibration(
    scores: ArrayLike,
    labels: ArrayLike,
    quality: Optional[np.ndarray] = None,
    quality_names: Sequence[str] = (),
    recipe: Optional[Mapping[str, Any]] = None,
    train_prior: float = 0.5,
) -> Calibration:
    """Fit ``llr = scale * score + offset (+ w . quality)`` by prior-weighted logistic regression.

    The objective is the Cllr at the effective prior ``train_prior``: target
    and non-target trials are weighted so each class counts in proportion to
    that prior whatever their numbers (the linear calibration of the BOSARIS
    toolkit).  ``quality`` is an optional ``[N, K]`` matrix of quality measures
    (see :func:`quality_from_durations`).

    Args:
        scores: the development trials' scores, ``[N]``.
        labels: 1/True for target trials, 0/False for non-target ones, ``[N]``.
        quality: optional quality measures of each trial, ``[N]`` or ``[N, K]``.
        quality_names: names of the ``K`` quality measures (default ``q0``, ``q1``, ...).
        recipe: how the scores were made (stored; :meth:`Calibration.check_recipe` compares it later).
        train_prior: the target prior at which the fit minimises Cllr, in (0, 1).

    Returns:
        The fitted :class:`Calibration`, with its development-set false-accept table.

    Raises:
        MetricsError: scores and labels differ in length, are not finite, or lack one class.
        CalibrationError: fewer than :data:`MIN_TRIALS_PER_CLASS` target or non-target trials, all
            scores are equal, the quality measures do not match the trials, or the fit does not
            converge to finite values.

    Warns (:class:`~redimnet.errors.RedimnetWarning`) when every target trial scores above every
    non-target one: nothing in the data then bounds the slope, and the LLRs are overconfident.
    """
    from scipy.optimize import minimize

    scores, labels = trial_arrays(scores, labels)
    train_prior = _check_prior(train_prior, "train_prior")
    n_t, n_n = int(labels.sum()), int((~labels).sum())
    if min(n_t, n_n) < MIN_TRIALS_PER_CLASS:
        raise CalibrationError(
            f"{n_t} target and {n_n} non-target trial(s) are too few to fit a calibration: each class needs "
            f"at least {MIN_TRIALS_PER_CLASS} (hundreds make a reliable one); use a larger development trial list"
        )
    q = _quality_matrix(
        quality,
        scores.size,
        quality.shape[1] if quality is not None and np.ndim(quality) == 2 else (1 if quality is not None else 0),
    )
    names = tuple(quality_names) or tuple(f"q{i}" for i in range(q.shape[1]))
    if len(names) != q.shape[1]:
        raise CalibrationError(f"{len(names)} quality names for {q.shape[1]} quality measures")
    # standardise the inputs so the optimiser sees a well-conditioned problem
    features = np.column_stack([scores, q])
    mean, std = features.mean(axis=0), features.std(axis=0)
    if std[0] == 0:
        raise CalibrationError("all scores are equal: nothing to calibrate")
    std[std == 0] = 1.0
    x = (features - mean) / std
    weights = np.where(labels, train_prior / n_t, (1.0 - train_prior) / n_n)
    sign = np.where(labels, -1.0, 1.0)  # cost softplus(sign * (llr + logit prior))
    shift = _logit(train_prior)

    def objective(params):
        z = sign * (x @ params[1:] + params[0] + shift)
        value = float(np.sum(weights * np.logaddexp(0.0, z)))
        slope = weights * sign / (1.0 + np.exp(-z))  # d softplus(z) / dz = sigmoid(z)
        return value, np.r_[slope.sum(), x.T @ slope]

    start = np.zeros(1 + x.shape[1])
    start[1] = 1.0
    result = minimize(objective, start, jac=True, method="L-BFGS-B")
    if not np.all(np.isfinite(result.x)):
        raise CalibrationError("the calibration did not converge (non-finite parameters)")
    bias, coefs = result.x[0], result.x[1:] / std
    offset = float(bias - np.dot(coefs, mean))
    calibration = Calibration(
        scale=float(coefs[0]),
        offset=offset,
        quality_names=names,
        quality_weights=tuple(float(c) for c in coefs[1:]),
        recipe=dict(recipe or {}),
        train_prior=train_prior,
    )
    llrs = calibration.llr(scores, q if q.shape[1] else None)
    if llrs[labels].min() > llrs[~labels].max():
        warnings.warn(
            f"every target trial scores above every non-target one in these {scores.size} development trials: "
            f"nothing bounds the fitted slope ({calibration.scale:.4g}), so the log-likelihood ratios are "
            "overconfident; calibrate on more (or harder) trials where some scores overlap",
            RedimnetWarning,
            stacklevel=2,
        )
    nontarget = np.sort(llrs[~labels])
    table = []
    for rate in _FAR_GRID:
        if rate * n_n < 1:
            continue  # fewer than one false accept: not estimable from these trials
        index = min(n_n - 1, int(math.ceil((1.0 - rate) * n_n)))
        table.append((float(rate), float(nontarget[index])))
    calibration.far_table = table
    calibration.dev = {
        "trials": int(scores.size),
        "targets": n_t,
        "cllr": cllr(llrs, labels),
        "min_cllr": min_cllr(scores, labels),
    }
    return calibration
