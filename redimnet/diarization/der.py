"""Diarization error rate (DER): missed speech, false alarm and speaker confusion.

The definition is NIST's (md-eval) and pyannote.metrics': the hypothesis
labels are mapped one-to-one onto the reference labels so that the time they
agree is largest (Hungarian algorithm, ``scipy.optimize``); then, over the
scored time,

* missed speech = time where fewer hypothesis speakers than reference speakers are active, times the difference,
* false alarm = the same with the roles exchanged,
* confusion = time where both are active, times ``min(#ref, #hyp)`` minus the mapped agreements,

and ``DER = (missed + false alarm + confusion) / total reference speech``
(overlapped speech counts once per speaker).

Scored time: from the earliest to the latest segment of either side,
less a forgiveness collar of ``collar`` seconds on *each side* of every
reference boundary (md-eval's ``-c``; pyannote.metrics' ``collar``
argument is the whole width, ``2 * collar``), and less the regions where
reference speakers overlap when ``skip_overlap`` is set.  The computation is
exact on the elementary intervals between boundaries, not on frames.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .segments import Segment, merge_regions

DEFAULT_COLLAR = 0.25


@dataclass
class DERScore:
    """Seconds of ``total`` reference speech, ``missed``, ``false_alarm`` and ``confusion``."""

    total: float = 0.0
    missed: float = 0.0
    false_alarm: float = 0.0
    confusion: float = 0.0
    mapping: Dict[str, str] = field(default_factory=dict)

    @property
    def error(self) -> float:
        return self.missed + self.false_alarm + self.confusion

    @property
    def der(self) -> float:
        """The error rate (a fraction; 0 when there is no reference speech and no hypothesis speech)."""
        if self.total > 0:
            return self.error / self.total
        return 0.0 if self.error == 0 else float("inf")

    def __add__(self, other: "DERScore") -> "DERScore":
        return DERScore(
            self.total + other.total,
            self.missed + other.missed,
            self.false_alarm + other.false_alarm,
            self.confusion + other.confusion,
        )

    def as_dict(self) -> dict:
        rates = {
            f"{k}_rate": (v / self.total if self.total else 0.0)
            for k, v in (("missed", self.missed), ("false_alarm", self.false_alarm), ("confusion", self.confusion))
        }
        return {
            "der": self.der,
            "total": self.total,
            "missed": self.missed,
            "false_alarm": self.false_alarm,
            "confusion": self.confusion,
            **rates,
        }


def _activity(segments: Sequence[Segment], labels: List[str], bounds: np.ndarray) -> np.ndarray:
    """``[labels, intervals]`` 0/1: label active in the interval (its segments' union)."""
    active = np.zeros((len(labels), len(bounds) - 1), dtype=np.int8)
    index = {label: i for i, label in enumerate(labels)}
    delta = np.zeros((len(labels), len(bounds)), dtype=np.int64)
    for segment in segments:
        if segment.end <= segment.start:
            continue
        row = index[segment.label]
        delta[row, np.searchsorted(bounds, segment.start)] += 1
        delta[row, np.searchsorted(bounds, segment.end)] -= 1
    counts = np.cumsum(delta, axis=1)[:, :-1]
    active[:] = counts > 0
    return active


def diarization_error(
    reference: Sequence[Segment],
    hypothesis: Sequence[Segment],
    collar: float = DEFAULT_COLLAR,
    skip_overlap: bool = False,
    uem: Optional[Tuple[float, float]] = None,
) -> DERScore:
    """The :class:`DERScore` of ``hypothesis`` against ``reference`` (one recording)."""
    from scipy.optimize import linear_sum_assignment

    reference = [s for s in reference if s.end > s.start]
    hypothesis = [s for s in hypothesis if s.end > s.start]
    everything = reference + hypothesis
    if not everything:
        return DERScore()
    if uem is None:
        uem = (min(s.start for s in everything), max(s.end for s in everything))
    removed: List[Tuple[float, float]] = []
    if collar > 0:
        for segment in reference:
            removed += [(segment.start - collar, segment.start + collar), (segment.end - collar, segment.end + collar)]
    points = [uem[0], uem[1]] + [t for s in everything for t in (s.start, s.end)] + [t for r in removed for t in r]
    bounds = np.unique(np.clip(np.asarray(points, dtype=np.float64), uem[0], uem[1]))
    if len(bounds) < 2:
        return DERScore()
    ref_labels = sorted({s.label for s in reference})
    hyp_labels = sorted({s.label for s in hypothesis})
    ref = _activity(reference, ref_labels, bounds)
    hyp = _activity(hypothesis, hyp_labels, bounds)
    duration = np.diff(bounds)
    scored = np.ones(len(duration), dtype=bool)
    for start, end in merge_regions(removed):
        lo, hi = np.searchsorted(bounds, max(start, uem[0])), np.searchsorted(bounds, min(end, uem[1]))
        scored[lo:hi] = False
    n_ref = ref.sum(axis=0).astype(np.float64)
    n_hyp = hyp.sum(axis=0).astype(np.float64)
    if skip_overlap:
        scored &= n_ref < 2
    weight = duration * scored
    score = DERScore(
        total=float(np.dot(weight, n_ref)),
        missed=float(np.dot(weight, np.maximum(n_ref - n_hyp, 0))),
        false_alarm=float(np.dot(weight, np.maximum(n_hyp - n_ref, 0))),
    )
    if ref_labels and hyp_labels:
        agreement = (ref * weight) @ hyp.T.astype(np.float64)  # [ref labels, hyp labels] seconds
        rows, cols = linear_sum_assignment(agreement, maximize=True)
        correct = float(agreement[rows, cols].sum())
        score.mapping = {hyp_labels[c]: ref_labels[r] for r, c in zip(rows, cols) if agreement[r, c] > 0}
    else:
        correct = 0.0
    score.confusion = max(0.0, float(np.dot(weight, np.minimum(n_ref, n_hyp))) - correct)
    return score


def score_recordings(
    references: Dict[str, List[Segment]],
    hypotheses: Dict[str, List[Segment]],
    collar: float = DEFAULT_COLLAR,
    skip_overlap: bool = False,
) -> Dict[str, DERScore]:
    """Per-recording scores for every recording of the reference (a missing hypothesis scores as silence)."""
    return {
        name: diarization_error(segments, hypotheses.get(name, []), collar, skip_overlap)
        for name, segments in references.items()
    }
