"""``redimnet verify A B``: are two recordings the same speaker?  Prints the cosine score and a decision.

The threshold depends on the model and on the recording conditions; choose it
on a development trial list, e.g. the EER threshold that ``redimnet eval``
reports.  Without ``--threshold`` only the score is printed.
"""

import json

from .embed import add_embedder_arguments, embedder_from_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "verify", help="score two recordings: same speaker or not",
        description="Print the cosine similarity of the speaker embeddings of two audio files and, with "
                    "--threshold, accept (same speaker, score >= threshold) or reject. Choose the threshold on "
                    "a development trial list (the EER threshold printed by 'redimnet eval').")
    parser.add_argument("first", metavar="A", help="audio file")
    parser.add_argument("second", metavar="B", help="audio file")
    parser.add_argument("--threshold", type=float, default=None,
                        help="accept when the score is at least this (default: print the score only)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_embedder_arguments(parser)
    parser.set_defaults(handler=run)


def run(args) -> int:
    embedder = embedder_from_arguments(args)
    embeddings = embedder.embed_files([args.first, args.second])
    score = embedder.score(embeddings[0], embeddings[1])
    decision = None if args.threshold is None else ("accept" if score >= args.threshold else "reject")
    if args.json:
        print(json.dumps({"a": args.first, "b": args.second, "score": score, "threshold": args.threshold,
                          "decision": decision}))
    elif decision is None:
        print(f"score {score:.4f}")
    else:
        print(f"score {score:.4f}  {decision} (threshold {args.threshold:g}: "
              f"{'same speaker' if decision == 'accept' else 'different speakers'})")
    return 0
