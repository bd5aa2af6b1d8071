"""Speaker-verification metrics: equal error rate, minimum detection cost, DET curve.

Convention: a trial is *accepted* (declared a target) when its score is
``>= threshold``.  Scores that are equal form one threshold, so ties never
split.  Every function takes ``scores`` (any real numbers, higher means "more
likely the same speaker") and ``labels`` (1/True for target trials, 0/False
for non-target trials) and is vectorised: sorting the scores dominates, so
millions of trials take about a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Sequence, Tuple

import numpy as np
from numpy.typing import ArrayLike

from ..errors import RedimnetError

__all__ = [
    "MetricsError",
    "ErrorRates",
    "trial_arrays",
    "VerificationMetrics",
    "error_rates",
    "det_curve",
    "eer",
    "eer_with_threshold",
    "min_dcf",
    "min_dcf_with_threshold",
    "compute_metrics",
]


class MetricsError(RedimnetError):
    """Scores and labels from which a metric cannot be computed."""


@dataclass(frozen=True)
class ErrorRates:
    """Miss and false-alarm rates at every distinct threshold, thresholds ascending.

    ``thresholds[i]`` is a distinct score (the last one is ``+inf``, where every
    trial is rejected); ``miss[i]`` is the fraction of target trials scoring
    below it and ``false_alarm[i]`` the fraction of non-target trials scoring
    at or above it.  ``miss`` rises from 0 to 1, ``false_alarm`` falls from 1 to 0.
    """

    thresholds: np.ndarray
    miss: np.ndarray
    false_alarm: np.ndarray
    n_targets: int
    n_nontargets: int


def trial_arrays(scores: ArrayLike, labels: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
    """``(scores, labels)`` as float64 and bool arrays, checked: same length, finite, both classes present."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels_in = np.asarray(labels).reshape(-1)
    if scores.shape != labels_in.shape:
        raise MetricsError(f"scores and labels differ in length: {scores.size} scores, {labels_in.size} labels")
    if scores.size == 0:
        raise MetricsError("no trials: scores and labels are empty")
    if not np.all(np.isfinite(scores)):
        bad = int(np.count_nonzero(~np.isfinite(scores)))
        raise MetricsError(f"{bad} score(s) are NaN or infinite; check the embeddings that produced them")
    if labels_in.dtype == bool:
        labels_bool = labels_in
    else:
        try:
            numeric = labels_in.astype(np.float64)
        except (TypeError, ValueError):
            raise MetricsError("labels must be 0/1 or booleans (1 = target trial)") from None
        if not np.all((numeric == 0) | (numeric == 1)):
            raise MetricsError("labels must be 0/1 or booleans (1 = target trial); found other values")
        labels_bool = numeric == 1
    n_targets = int(np.count_nonzero(labels_bool))
    if n_targets == 0:
        raise MetricsError(
            f"no target trials among {scores.size}: the EER and minDCF need both target and non-target trials"
        )
    if n_targets == scores.size:
        raise MetricsError(
            f"no non-target trials among {scores.size}: the EER and minDCF need both target and non-target trials"
        )
    return scores, labels_bool


def error_rates(scores: ArrayLike, labels: ArrayLike) -> ErrorRates:
    """Miss and false-alarm rates at every distinct score used as a threshold (see :class:`ErrorRates`)."""
    scores, labels = trial_arrays(scores, labels)
    order = np.argsort(scores)
    sorted_scores = scores[order]
    sorted_labels = labels[order]
    n_targets = int(np.count_nonzero(labels))
    n_nontargets = labels.size - n_targets
    # start of every run of equal scores: those are the distinct thresholds
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    targets_below = np.r_[0, np.cumsum(sorted_labels)]  # targets among the first k sorted trials
    nontargets_below = np.arange(labels.size + 1) - targets_below
    cut = np.r_[starts, labels.size]  # trials below each threshold, then all of them
    miss = targets_below[cut] / n_targets
    false_alarm = (n_nontargets - nontargets_below[cut]) / n_nontargets
    thresholds = np.r_[sorted_scores[starts], np.inf]
    return ErrorRates(thresholds, miss, false_alarm, n_targets, n_nontargets)


def det_curve(scores: ArrayLike, labels: ArrayLike) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DET-curve points ``(false_alarm_rates, miss_rates, thresholds)``, thresholds ascending."""
    rates = error_rates(scores, labels)
    return rates.false_alarm, rates.miss, rates.thresholds


def _eer_from_rates(rates: ErrorRates) -> Tuple[float, float]:
    miss, fa, thresholds = rates.miss, rates.false_alarm, rates.thresholds
    # miss[0] = 0 < fa[0] = 1 and miss[-1] = 1 > fa[-1] = 0: the curves cross between i - 1 and i
    i = int(np.argmax(miss >= fa))
    m0, m1, f0, f1 = miss[i - 1], miss[i], fa[i - 1], fa[i]
    alpha = (f0 - m0) / ((m1 - m0) - (f1 - f0))  # denominator > 0: miss rose or false alarms fell
    value = m0 + alpha * (m1 - m0)
    t0, t1 = thresholds[i - 1], thresholds[i]
    threshold = t0 + alpha * (t1 - t0) if np.isfinite(t1) else t0
    return float(value), float(threshold)


def eer_with_threshold(scores: ArrayLike, labels: ArrayLike) -> Tuple[float, float]:
    """``(eer, threshold)``: the equal error rate (a fraction) and the score threshold where it is reached.

    The miss and false-alarm rates are interpolated linearly between adjacent
    distinct thresholds and the EER is where the two meet; the threshold is
    interpolated the same way.
    """
    return _eer_from_rates(error_rates(scores, labels))


def eer(scores: ArrayLike, labels: ArrayLike) -> float:
    """The equal error rate as a fraction (0.01 is 1 %)."""
    return eer_with_threshold(scores, labels)[0]


def _check_costs(p_target: float, c_miss: float, c_fa: float):
    if not 0.0 < p_target < 1.0:
        raise MetricsError(f"p_target must be strictly between 0 and 1, got {p_target}")
    if c_miss <= 0 or c_fa <= 0:
        raise MetricsError(f"detection costs must be positive, got c_miss={c_miss}, c_fa={c_fa}")


def _min_dcf_from_rates(rates: ErrorRates, p_target: float, c_miss: float, c_fa: float) -> Tuple[float, float]:
    _check_costs(p_target, c_miss, c_fa)
    cost = c_miss * p_target * rates.miss + c_fa * (1.0 - p_target) * rates.false_alarm
    default_cost = min(c_miss * p_target, c_fa * (1.0 - p_target))  # always accept or always reject
    best = int(np.argmin(cost))
    return float(cost[best] / default_cost), float(rates.thresholds[best])


def min_dcf_with_threshold(
    scores: ArrayLike, labels: ArrayLike, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0
) -> Tuple[float, float]:
    """``(min_dcf, threshold)``: the normalised minimum detection cost and the threshold reaching it.

    The cost ``c_miss * p_target * P_miss + c_fa * (1 - p_target) * P_fa`` is
    minimised over all thresholds and divided by the cost of the better
    trivial system (accepting or rejecting everything), so 1.0 means "no
    better than trivial".  The threshold may be ``inf`` (reject everything).
    """
    return _min_dcf_from_rates(error_rates(scores, labels), p_target, c_miss, c_fa)


def min_dcf(
    scores: ArrayLike, labels: ArrayLike, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0
) -> float:
    """The normalised minimum detection cost (see :func:`min_dcf_with_threshold`)."""
    return min_dcf_with_threshold(scores, labels, p_target, c_miss, c_fa)[0]


@dataclass(frozen=True)
class VerificationMetrics:
    """EER and minDCF of one set of trials, with their thresholds."""

    n_trials: int
    n_targets: int
    n_nontargets: int
    eer: float
    eer_threshold: float
    min_dcf: Dict[float, float] = field(default_factory=dict)  # p_target -> normalised minDCF
    min_dcf_threshold: Dict[float, float] = field(default_factory=dict)  # p_target -> threshold

    def to_dict(self) -> dict:
        return {
            "trials": self.n_trials,
            "targets": self.n_targets,
            "nontargets": self.n_nontargets,
            "eer": self.eer,
            "eer_threshold": self.eer_threshold,
            "min_dcf": {
                f"{p:g}": {"value": self.min_dcf[p], "threshold": _json_number(self.min_dcf_threshold[p])}
                for p in self.min_dcf
            },
        }


def _json_number(value: float):
    return value if np.isfinite(value) else None


def compute_metrics(
    scores: ArrayLike,
    labels: ArrayLike,
    p_targets: Sequence[float] = (0.01, 0.05),
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> VerificationMetrics:
    """EER and minDCF at each of ``p_targets`` from one sort of the scores."""
    rates = error_rates(scores, labels)
    value, threshold = _eer_from_rates(rates)
    dcf, dcf_threshold = {}, {}
    for p in p_targets:
        dcf[float(p)], dcf_threshold[float(p)] = _min_dcf_from_rates(rates, float(p), c_miss, c_fa)
    return VerificationMetrics(
        rates.n_targets + rates.n_nontargets, rates.n_targets, rates.n_nontargets, value, threshold, dcf, dcf_threshold
    )
