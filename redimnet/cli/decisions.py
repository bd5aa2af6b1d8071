"""Options and output shared by the verbs that take decisions on scores (``verify``, ``identify``).

``--backend`` scores with a trained back-end instead of cosine; ``--calibration``
turns the score into a log-likelihood ratio and decides at the Bayes threshold
for ``--prior`` (or at ``--far``).  The calibration must have been fitted on the
same scoring recipe and model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, cast

import numpy as np
from numpy.typing import ArrayLike

from ..evaluation.backend import Backend
from ..evaluation.calibration import QUALITY_DURATIONS, Calibration, Decision, quality_from_durations
from .common import UsageError


def add_decision_arguments(parser, threshold: bool = True) -> None:
    group = parser.add_argument_group("scoring and decisions")
    if threshold:
        group.add_argument(
            "--threshold",
            type=float,
            default=None,
            help="accept when the raw score is at least this (without --calibration)",
        )
    group.add_argument("--backend", metavar="B.npz", help="score with a trained back-end ('redimnet backend train')")
    group.add_argument(
        "--calibration",
        metavar="CAL.json",
        help="print the log-likelihood ratio and decide with a calibration ('redimnet calibrate')",
    )
    group.add_argument(
        "--prior",
        type=float,
        default=0.5,
        metavar="P",
        help="prior probability of the same speaker, for the posterior and the Bayes decision (default 0.5)",
    )
    group.add_argument(
        "--far",
        type=float,
        default=None,
        metavar="RATE",
        help="decide at the threshold that gave this false-accept rate on the calibration's "
        "development trials instead of the Bayes threshold",
    )


@dataclass
class Scoring:
    """The back-end and calibration the options ask for, checked against the model."""

    backend: Optional[Backend]
    calibration: Optional[Calibration]
    prior: float
    far: Optional[float]

    @property
    def name(self) -> str:
        return self.backend.kind if self.backend is not None else "cosine"

    def llrs(self, scores: Sequence[float], durations: Optional[ArrayLike] = None) -> np.ndarray:
        """Scores as LLRs (``durations``: the two recordings' seconds per score, when the calibration uses them)."""
        calibration = cast(Calibration, self.calibration)  # callers check that one is loaded
        quality = None
        if calibration.quality_names:
            if tuple(calibration.quality_names) != QUALITY_DURATIONS or durations is None:
                raise UsageError("this calibration needs quality measures this verb cannot provide")
            pairs = np.asarray(durations, dtype=np.float64).reshape(-1, 2)
            quality = quality_from_durations(pairs[:, 0], pairs[:, 1])
        return calibration.llr(np.asarray(scores, dtype=np.float64), quality)

    def decide(self, llr: float) -> Decision:
        return cast(Calibration, self.calibration).decide(llr, self.prior, self.far)  # callers check it is loaded


def scoring_from_arguments(args, model_fingerprint: str, dim: int) -> Scoring:
    if not 0.0 < args.prior < 1.0:
        raise UsageError(f"--prior must be strictly between 0 and 1, got {args.prior:g}")
    if args.far is not None and not args.calibration:
        raise UsageError("--far needs --calibration (the false-accept rates come from its development trials)")
    if getattr(args, "threshold", None) is not None and args.calibration:
        raise UsageError("--threshold applies to raw scores; with --calibration the decision uses --prior or --far")
    backend = Backend.load(args.backend) if args.backend else None
    if backend is not None and backend.input_dim != dim:
        raise UsageError(
            f"back-end {args.backend} was trained on {backend.input_dim}-dimensional embeddings; this "
            f"model makes {dim}-dimensional ones"
        )
    calibration = None
    if args.calibration:
        calibration = Calibration.load(args.calibration)
        recipe = {
            "scoring": backend.kind if backend is not None else "cosine",
            "top_k": None,
            "subtract_mean": None,
            "cohort": None,
            "backend": backend.fingerprint() if backend is not None else None,
            "model": model_fingerprint,
        }
        calibration.check_recipe(recipe)
        if args.far is not None:
            calibration.llr_threshold_at_far(args.far)  # fail early when the rate is out of range
    return Scoring(backend, calibration, args.prior, args.far)


def describe_decision(decision: Decision) -> str:
    rule = (
        f"threshold for false-accept rate {100 * decision.far:g} %"
        if decision.far is not None
        else f"Bayes threshold at prior {decision.p_target:g}"
    )
    verdict = "accept (same speaker)" if decision.accept else "reject (different speakers)"
    return (
        f"llr {decision.llr:+.3f}  P(same) {decision.posterior:.4f} at prior {decision.p_target:g}  "
        f"{verdict}; {rule}: llr >= {decision.threshold:+.3f}"
    )


def durations_of(paths: List[str]) -> List[float]:
    """Durations in seconds of audio files (for quality-aware calibrations)."""
    import soundfile

    return [float(soundfile.info(str(p)).duration) for p in paths]
