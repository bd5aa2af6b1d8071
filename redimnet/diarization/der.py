"""Diarization error rate (DER: missed speech, false alarm, speaker confusion) and Jaccard error rate (JER).

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

JER (DIHARD II's definition, as pyannote.metrics') uses the same mapping and
scored time.  Each reference speaker with scored speech gets the error
``1 - |ref & hyp| / |ref | hyp|`` against the hypothesis speaker mapped to
it (1 when none is), so ``(false alarm + missed) / union`` for that pair;
JER is the mean over reference speakers.  Hypothesis speakers left unmapped
are not counted, and every speaker weighs the same however long they speak.
Over several recordings the mean is taken over all their reference speakers.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .segments import Segment, merge_regions

DEFAULT_COLLAR = 0.25


@dataclass
class DERScore:
    """Seconds of ``total`` reference speech, ``missed``, ``false_alarm`` and ``confusion``; JER's parts.

    ``speakers``: reference speakers with scored speech; ``speaker_error``:
    the sum of their Jaccard errors (so ``jer = speaker_error / speakers``).
    """

    total: float = 0.0
    missed: float = 0.0
    false_alarm: float = 0.0
    confusion: float = 0.0
    mapping: Dict[str, str] = field(default_factory=dict)
    speakers: int = 0
    speaker_error: float = 0.0

    @property
    def error(self) -> float:
        return self.missed + self.false_alarm + self.confusion

    @property
    def defined(self) -> bool:
        """Whether :attr:`der` is a number: false when no reference speech is scored (none, or all of
        it inside the collars) but the hypothesis has scored speech."""
        return self.total > 0 or self.error == 0

    @property
    def der(self) -> float:
        """The error rate (a fraction; 0 when there is no reference speech and no hypothesis speech;
        infinite when only the hypothesis has scored speech: see :attr:`defined`)."""
        if self.total > 0:
            return self.error / self.total
        return 0.0 if self.error == 0 else float("inf")

    @property
    def jer(self) -> float:
        """The Jaccard error rate, a fraction from 0 to 1.

        With no scored reference speaker it is 0 when the hypothesis has no
        scored speech either, else 1.
        """
        if self.speakers:
            return self.speaker_error / self.speakers
        return 0.0 if self.false_alarm == 0 else 1.0

    def __add__(self, other: "DERScore") -> "DERScore":
        return DERScore(
            self.total + other.total,
            self.missed + other.missed,
            self.false_alarm + other.false_alarm,
            self.confusion + other.confusion,
            speakers=self.speakers + other.speakers,
            speaker_error=self.speaker_error + other.speaker_error,
        )

    def as_dict(self) -> dict:
        rates = {
            f"{k}_rate": (v / self.total if self.total else 0.0)
            for k, v in (("missed", self.missed), ("false_alarm", self.false_alarm), ("confusion", self.confusion))
        }
        return {
            "der": self.der if self.defined else None,  # JSON has no infinity: null means undefined
            "jer": self.jer,
            "speakers": self.speakers,
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
    """The :class:`DERScore` (DER and JER) of ``hypothesis`` against ``reference`` (one recording)."""
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
    ref_seconds = ref @ weight  # scored speech per reference label
    hyp_seconds = hyp @ weight
    paired = np.zeros(len(ref_labels))  # Jaccard index of each reference label with its mapped hypothesis label
    if ref_labels and hyp_labels:
        agreement = (ref * weight) @ hyp.T.astype(np.float64)  # [ref labels, hyp labels] seconds
        rows, cols = linear_sum_assignment(agreement, maximize=True)
        correct = float(agreement[rows, cols].sum())
        score.mapping = {hyp_labels[c]: ref_labels[r] for r, c in zip(rows, cols) if agreement[r, c] > 0}
        both = agreement[rows, cols]
        union = ref_seconds[rows] + hyp_seconds[cols] - both
        paired[rows] = np.divide(both, union, out=np.zeros_like(both), where=union > 0)
    else:
        correct = 0.0
    score.confusion = max(0.0, float(np.dot(weight, np.minimum(n_ref, n_hyp))) - correct)
    scored_speakers = ref_seconds > 0  # a speaker wholly inside collars or overlap is not scored
    score.speakers = int(scored_speakers.sum())
    score.speaker_error = float(np.sum(1.0 - paired[scored_speakers]))
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
