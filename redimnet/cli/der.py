"""``redimnet der``: score hypothesis RTTMs against reference RTTMs (diarization and Jaccard error rates).

``REFERENCE`` and ``HYPOTHESIS`` are RTTM files or folders of ``*.rttm``
files; recordings are matched by the RTTM file id.  Every reference
recording is scored (a recording missing from the hypothesis is all missed
speech); hypothesis recordings without a reference are listed and ignored.
"""

import json
import sys
from pathlib import Path
from typing import Dict, List

from .._utils.validation import within
from .common import UsageError, show


def register(subparsers) -> None:
    from ..diarization.der import DEFAULT_COLLAR

    parser = subparsers.add_parser(
        "der",
        help="diarization error rate (and JER) of RTTM hypotheses against references",
        description="Score diarization output: DER = missed speech + false alarm + speaker confusion, "
        "and JER (Jaccard error rate, the mean over reference speakers), per recording and in total, "
        "with the optimal one-to-one label mapping.",
    )
    parser.add_argument("reference", metavar="REFERENCE", help="reference RTTM file or folder of .rttm files")
    parser.add_argument("hypothesis", metavar="HYPOTHESIS", help="hypothesis RTTM file or folder of .rttm files")
    parser.add_argument(
        "--collar",
        type=float,
        default=DEFAULT_COLLAR,
        metavar="S",
        help=f"seconds not scored on each side of every reference boundary "
        f"(default {DEFAULT_COLLAR}; md-eval's -c; 0 scores everything)",
    )
    parser.add_argument(
        "--skip-overlap", action="store_true", help="do not score regions where reference speakers overlap"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=run)


def read_rttms(location: str) -> Dict[str, list]:
    """Segments by recording id from an RTTM file or every ``*.rttm`` file in a folder."""
    from ..diarization.segments import read_rttm

    path = Path(location)
    if path.is_dir():
        files = sorted(path.rglob("*.rttm"))
        if not files:
            raise UsageError(f"{path}: the folder contains no .rttm files")
    else:
        files = [path]
    recordings: Dict[str, list] = {}
    for file in files:
        for name, segments in read_rttm(file).items():
            recordings.setdefault(name, []).extend(segments)
    return recordings


def run(args) -> int:
    from ..diarization.der import DERScore, score_recordings
    from ..diarization.segments import MAX_SECONDS

    within("--collar", args.collar, 0, MAX_SECONDS, " seconds")
    references = read_rttms(args.reference)
    hypotheses = read_rttms(args.hypothesis)
    if not references:
        raise UsageError(f"{args.reference}: no reference segments to score against")
    scores = score_recordings(references, hypotheses, args.collar, args.skip_overlap)
    total = sum(scores.values(), DERScore())
    extra: List[str] = sorted(set(hypotheses) - set(references))
    missing: List[str] = sorted(set(references) - set(hypotheses))
    if args.json:
        print(
            json.dumps(
                {
                    "collar": args.collar,
                    "skip_overlap": args.skip_overlap,
                    "recordings": {k: v.as_dict() for k, v in scores.items()},
                    "total": total.as_dict(),
                    "hypothesis_without_reference": extra,
                    "reference_without_hypothesis": missing,
                },
                indent=2,
            )
        )
    else:
        width = max([len("recording")] + [len(show(k)) for k in scores])
        print(
            f"{'recording':<{width}}  {'DER %':>7}  {'missed %':>8}  {'false al. %':>11}  {'confusion %':>11}  "
            f"{'speech s':>9}  {'JER %':>7}  {'speakers':>8}"
        )
        for name, score in list(scores.items()) + [("TOTAL", total)]:
            d = score.as_dict()
            der = f"{100 * d['der']:>7.2f}" if score.defined else f"{'undef.':>7}"
            print(
                f"{show(name):<{width}}  {der}  {100 * d['missed_rate']:>8.2f}  "
                f"{100 * d['false_alarm_rate']:>11.2f}  {100 * d['confusion_rate']:>11.2f}  {d['total']:>9.2f}  "
                f"{100 * d['jer']:>7.2f}  {d['speakers']:>8}"
            )
        print(f"(collar {args.collar} s each side, overlap {'skipped' if args.skip_overlap else 'scored'})")
    undefined = [name for name, score in scores.items() if not score.defined]
    if undefined:
        print(
            f"note: the DER of {len(undefined)} recording(s) is undefined: no reference speech is left to score "
            f"(none, or all of it within the {args.collar:g} s collars) but the hypothesis has speech there: "
            f"{', '.join(map(show, undefined[:5]))}" + ("" if total.defined else "; so is the total"),
            file=sys.stderr,
        )
    if missing:
        print(
            f"note: {len(missing)} reference recording(s) have no hypothesis segments (absent or empty; "
            f"scored as missed speech): "
            f"{', '.join(map(show, missing[:5]))}",
            file=sys.stderr,
        )
    if extra:
        print(
            f"note: {len(extra)} hypothesis recording(s) have no reference (ignored): "
            f"{', '.join(map(show, extra[:5]))}",
            file=sys.stderr,
        )
    return 0
