"""Pictures of an evaluation: DET curves on normal-deviate axes and score histograms (PNG).

matplotlib is an optional dependency (``pip install "redimnet[plot]"``),
imported only when a picture is drawn.  Figures are drawn with the Agg canvas
directly, so no global pyplot state or display is touched.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike

from .._utils.optional import require
from ..errors import RedimnetError
from .metrics import eer_with_threshold, error_rates

__all__ = [
    "PlotError",
    "require_matplotlib",
    "probit",
    "det_points",
    "plot_det",
    "plot_score_histogram",
    "reliability_points",
    "plot_reliability",
]

PathLike = Union[str, os.PathLike]
Scored = Tuple[ArrayLike, ArrayLike]  # (scores, labels)

_TICKS = [0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95]


class PlotError(RedimnetError):
    """A picture cannot be drawn (matplotlib missing, nothing to plot)."""


def require_matplotlib():
    """``(Figure, FigureCanvasAgg)``, or a clear error when matplotlib is not installed."""
    backend = require("matplotlib.backends.backend_agg", "plots")
    figure = require("matplotlib.figure", "plots")
    return figure.Figure, backend.FigureCanvasAgg


# Rational approximation of the inverse standard normal CDF (P. J. Acklam), relative error below 1.2e-9.
_A = (
    -3.969683028665376e01,
    2.209460984245205e02,
    -2.759285104469687e02,
    1.383577518672690e02,
    -3.066479806614716e01,
    2.506628277459239e00,
)
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01, -1.328068155288572e01)
_C = (
    -7.784894002430293e-03,
    -3.223964580411365e-01,
    -2.400758277161838e00,
    -2.549732539343734e00,
    4.374664141464968e00,
    2.938163982698783e00,
)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)


def _poly(coefficients, x):
    result = np.zeros_like(x)
    for c in coefficients:
        result = result * x + c
    return result


def probit(p: Union[float, np.ndarray]) -> np.ndarray:
    """The standard normal deviate of probabilities ``p`` (inverse normal CDF), for ``0 < p < 1``."""
    p = np.asarray(p, dtype=np.float64)
    if np.any((p <= 0) | (p >= 1)):
        raise ValueError("probit needs probabilities strictly between 0 and 1")
    out = np.empty_like(p)
    low, high = p < 0.02425, p > 1 - 0.02425
    mid = ~(low | high)
    q = p[mid] - 0.5
    r = q * q
    out[mid] = _poly(_A, r) * q / (_poly(_B, r) * r + 1)
    for mask, sign, tail in ((low, 1.0, p[low]), (high, -1.0, 1 - p[high])):
        q = np.sqrt(-2 * np.log(tail))
        out[mask] = sign * _poly(_C, q) / (_poly(_D, q) * q + 1)
    return out


def det_points(
    scores: ArrayLike, labels: ArrayLike, floor: float = 1e-5, step: float = 0.01
) -> Tuple[np.ndarray, np.ndarray]:
    """DET curve ``(false_alarm, miss)`` thinned for drawing.

    Rates are clipped to ``[floor, 1 - floor]`` and points closer than ``step``
    (in normal-deviate units) to the previously kept one are dropped, so a
    curve of millions of trials is drawn with a few thousand points.
    """
    rates = error_rates(scores, labels)
    fa = np.clip(rates.false_alarm, floor, 1 - floor)
    miss = np.clip(rates.miss, floor, 1 - floor)
    x, y = probit(fa), probit(miss)
    travelled = np.r_[0.0, np.cumsum(np.hypot(np.diff(x), np.diff(y)))]
    bucket = np.floor(travelled / step)
    keep = np.r_[True, bucket[1:] != bucket[:-1]]
    keep[-1] = True
    return fa[keep], miss[keep]


def plot_det(curves: Mapping[str, Scored], path: PathLike, title: str = "DET curve") -> Path:
    """Draw every ``name -> (scores, labels)`` DET curve on one normal-deviate plot and save a PNG."""
    if not curves:
        raise PlotError("no trial lists to draw a DET curve of")
    Figure, FigureCanvasAgg = require_matplotlib()
    figure = Figure(figsize=(6, 6), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    highest = 0.0
    for name, (scores, labels) in curves.items():
        fa, miss = det_points(scores, labels)
        value, _ = eer_with_threshold(scores, labels)
        highest = max(highest, value)
        (line,) = axes.plot(probit(fa), probit(miss), linewidth=1.5, label=f"{name} (EER {100 * value:.2f} %)")
        clipped = min(max(value, 1e-5), 1 - 1e-5)
        axes.plot([probit(clipped)], [probit(clipped)], "o", color=line.get_color(), markersize=4)
    upper = 0.5 if highest < 0.25 else 0.95
    ticks = [t for t in _TICKS if t <= upper]
    limits = probit(np.array([ticks[0], upper]))
    axes.plot(limits, limits, ":", color="grey", linewidth=0.8)
    tick_positions = probit(np.array(ticks))
    tick_labels = [f"{100 * t:g}" for t in ticks]
    axes.set_xticks(tick_positions)
    axes.set_xticklabels(tick_labels, rotation=45)
    axes.set_yticks(tick_positions)
    axes.set_yticklabels(tick_labels)
    axes.set_xlim(*limits)
    axes.set_ylim(*limits)
    axes.set_xlabel("false alarm rate (%)")
    axes.set_ylabel("miss rate (%)")
    axes.set_title(title)
    axes.grid(True, linestyle="--", linewidth=0.5, alpha=0.6)
    axes.legend(loc="upper right", fontsize="small")
    figure.tight_layout()
    return _save(figure, path)


def plot_score_histogram(
    scores: ArrayLike, labels: ArrayLike, path: PathLike, title: str = "scores", bins: int = 100
) -> Path:
    """Histogram of target and non-target scores (densities), with the EER threshold marked, as a PNG."""
    Figure, FigureCanvasAgg = require_matplotlib()
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    value, threshold = eer_with_threshold(scores, labels)
    figure = Figure(figsize=(7, 4), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    edges = np.histogram_bin_edges(scores, bins=bins)
    axes.hist(scores[~labels], bins=edges, density=True, alpha=0.55, label=f"non-target ({np.count_nonzero(~labels)})")
    axes.hist(scores[labels], bins=edges, density=True, alpha=0.55, label=f"target ({np.count_nonzero(labels)})")
    axes.axvline(
        threshold,
        color="black",
        linestyle="--",
        linewidth=1,
        label=f"EER threshold {threshold:.3f} (EER {100 * value:.2f} %)",
    )
    axes.set_xlabel("score")
    axes.set_ylabel("density")
    axes.set_title(title)
    axes.legend(loc="upper left", fontsize="small")  # a fixed place: "best" is slow over many bars
    figure.tight_layout()
    return _save(figure, path)


def reliability_points(
    llrs: ArrayLike, labels: ArrayLike, bins: int = 10, min_count: int = 5
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(predicted, observed, counts)`` of a reliability diagram at an even prior.

    Trials are grouped into ``bins`` equal-count bins of their LLR; for each
    bin, ``predicted`` is the mean posterior ``sigmoid(llr)`` and ``observed``
    the fraction of target trials, after reweighting the two classes to equal
    totals (so the diagram does not depend on the list's target proportion).
    Bins with fewer than ``min_count`` trials are dropped.
    """
    llrs = np.asarray(llrs, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).astype(bool).reshape(-1)
    weights = np.where(labels, 0.5 / max(1, labels.sum()), 0.5 / max(1, (~labels).sum()))
    order = np.argsort(llrs, kind="stable")
    predicted, observed, counts = [], [], []
    for chunk in np.array_split(order, bins):
        if chunk.size < min_count:
            continue
        w = weights[chunk]
        predicted.append(float(np.mean(1.0 / (1.0 + np.exp(-llrs[chunk])))))
        observed.append(float(np.sum(w * labels[chunk]) / np.sum(w)))
        counts.append(chunk.size)
    return np.asarray(predicted), np.asarray(observed), np.asarray(counts)


def plot_reliability(curves: Mapping[str, Scored], path: PathLike, title: str = "reliability") -> Path:
    """Reliability (calibration) diagram of LLRs: predicted vs observed target probability at an even prior."""
    Figure, FigureCanvasAgg = require_matplotlib()
    figure = Figure(figsize=(5, 5), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfect calibration")
    for name, (llrs, labels) in curves.items():
        predicted, observed, _ = reliability_points(llrs, labels)
        axes.plot(predicted, observed, marker="o", label=name)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("predicted P(target) at prior 0.5")
    axes.set_ylabel("observed fraction of targets (classes reweighted)")
    axes.set_title(title)
    axes.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    return _save(figure, path)


def _save(figure, path: PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
