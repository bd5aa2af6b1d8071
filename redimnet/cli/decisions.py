"""Options and output shared by the verbs that take decisions on scores (``verify``, ``identify``).

``--backend`` scores with a trained back-end instead of cosine; ``--calibration``
turns the score into a log-likelihood ratio and decides at the Bayes threshold
for ``--prior`` (or at ``--far``).  The calibration must have been fitted on the
same scoring recipe and model.  The options become a :class:`redimnet.speakers.scorer.Scorer`,
which does the scoring and the decisions.
"""

from __future__ import annotations

from typing import List

from .._utils.validation import strictly_between
from ..evaluation.backend import Backend
from ..evaluation.calibration import Calibration, Decision
from ..speakers.scorer import Scorer
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


def scoring_from_arguments(args, model_fingerprint: str, dim: int) -> Scorer:
    """The :class:`~redimnet.speakers.scorer.Scorer` the options ask for, checked against the model."""
    strictly_between("--prior", args.prior, 0.0, 1.0)
    if args.far is not None and not args.calibration:
        raise UsageError("--far needs --calibration (the false-accept rates come from its development trials)")
    if getattr(args, "threshold", None) is not None and args.calibration:
        raise UsageError("--threshold applies to raw scores; with --calibration the decision uses --prior or --far")
    backend = Backend.load(args.backend) if args.backend else None
    calibration = Calibration.load(args.calibration) if args.calibration else None
    return Scorer.create(
        model_fingerprint, dim, backend, calibration, args.prior, args.far, backend_source=args.backend
    )


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
