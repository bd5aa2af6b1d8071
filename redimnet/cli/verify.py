"""``redimnet verify A B``: are two recordings the same speaker?  Prints the cosine score and a decision.

The threshold depends on the model and on the recording conditions; choose it
on a development trial list, e.g. the EER threshold that ``redimnet eval``
reports.  Without ``--threshold`` only the score is printed.
"""

import json

from ..models.fingerprint import model_fingerprint
from .decisions import add_decision_arguments, describe_decision, durations_of, scoring_from_arguments
from .embed import add_embedder_arguments, embedder_from_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="score two recordings: same speaker or not",
        description="Print the cosine similarity of the speaker embeddings of two audio files and, with "
        "--threshold, accept (same speaker, score >= threshold) or reject. Choose the threshold on "
        "a development trial list (the EER threshold printed by 'redimnet eval').",
    )
    parser.add_argument("first", metavar="A", help="audio file")
    parser.add_argument("second", metavar="B", help="audio file")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_decision_arguments(parser)
    add_embedder_arguments(parser)
    parser.set_defaults(handler=run)


def run(args) -> int:
    embedder = embedder_from_arguments(args)
    embeddings = embedder.embed_files([args.first, args.second])
    scoring = scoring_from_arguments(args, model_fingerprint(embedder.model), int(embeddings.shape[1]))
    score = scoring.score_pair(embeddings[0], embeddings[1])
    if scoring.calibration is not None:
        durations = durations_of([args.first, args.second]) if scoring.calibration.quality_names else None
        decision = scoring.decide(float(scoring.llrs([score], durations)[0]))
        if args.json:
            print(
                json.dumps(
                    {"a": args.first, "b": args.second, "scoring": scoring.name, "score": score, **decision.to_dict()}
                )
            )
        else:
            print(f"score {score:.4f} ({scoring.name})  {describe_decision(decision)}")
        return 0
    verdict = None if args.threshold is None else ("accept" if score >= args.threshold else "reject")
    if args.json:
        print(
            json.dumps(
                {
                    "a": args.first,
                    "b": args.second,
                    "scoring": scoring.name,
                    "score": score,
                    "threshold": args.threshold,
                    "decision": verdict,
                }
            )
        )
    elif verdict is None:
        print(f"score {score:.4f}")
    else:
        print(
            f"score {score:.4f}  {verdict} (threshold {args.threshold:g}: "
            f"{'same speaker' if verdict == 'accept' else 'different speakers'})"
        )
    return 0
