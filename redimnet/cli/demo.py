"""``redimnet demo``: embed the example speech shipped with the package and score every pair.

Without ``--model`` or ``--checkpoint`` it uses the default published model
(:data:`redimnet.hub.registry.DEFAULT_WEIGHTS`), downloaded once into the cache; offline, the
download's own message says how to fetch the file by hand.
"""

import json

from .._utils import threads
from ..examples import UTTERANCES, example_files, example_pairs
from ..hub.registry import DEFAULT_WEIGHTS
from .common import UsageError, show
from .models import add_model_arguments, model_from_arguments, weights_from_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="score the example speech shipped with redimnet (downloads the default model once)",
        description="Embed the three example utterances shipped with redimnet (two synthetic speakers) and "
        f"print the cosine score of every pair. Default model: {DEFAULT_WEIGHTS}, "
        "downloaded once; --model or --checkpoint choose another.",
    )
    add_model_arguments(parser, required=False)
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    threads.add_threads_argument(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--copy-examples",
        metavar="DIR",
        help="only copy the example recordings into DIR (created if needed) to try other verbs on",
    )
    parser.set_defaults(handler=run)


def copy_examples(folder) -> int:
    """Copy the shipped example files into ``folder``; existing files of the same name are left alone."""
    import shutil
    from pathlib import Path

    target = Path(folder)
    if target.exists() and not target.is_dir():
        raise UsageError(f"--copy-examples {show(target)} exists and is not a folder")
    target.mkdir(parents=True, exist_ok=True)
    copied, kept = [], []
    for path in example_files().values():
        destination = target / path.name
        if destination.exists():
            kept.append(path.name)
            continue
        shutil.copyfile(path, destination)
        copied.append(path.name)
    print(f"copied {len(copied)} example recording(s) to {show(target)}" + (f": {', '.join(copied)}" if copied else ""))
    if kept:
        print(f"left alone (already there): {', '.join(kept)}")
    return 0


def run(args) -> int:
    from ..embedding.embedder import Embedder

    if args.copy_examples:
        return copy_examples(args.copy_examples)
    if args.checkpoint:
        model_name = show(args.checkpoint)
    elif args.random_init:
        model_name = f"{args.model or weights_from_arguments(args).arch} (random weights: the scores mean nothing)"
    else:
        model_name = f"{weights_from_arguments(args).name} (published weights)"
    threads.configure(args.threads)
    embedder = Embedder(model_from_arguments(args), device=args.device)
    files = example_files()
    embeddings = dict(zip(files, embedder.embed_files(list(files.values()))))
    pairs = example_pairs()
    scores = [embedder.score(embeddings[a], embeddings[b]) for a, b, _ in pairs]
    rows = [{"a": a, "b": b, "same_speaker": same, "score": score} for (a, b, same), score in zip(pairs, scores)]
    separated = min(score for (_, _, same), score in zip(pairs, scores) if same) > max(
        score for (_, _, same), score in zip(pairs, scores) if not same
    )
    if args.json:
        print(json.dumps({"model": model_name, "pairs": rows, "same_speaker_pairs_score_highest": separated}))
        return 0
    speakers = sorted({speaker for speaker, _ in UTTERANCES.values()})
    print(f"model: {model_name}")
    print(f"examples: {len(files)} utterances by {len(speakers)} synthetic speakers (espeak-ng), shipped with redimnet")
    print("  score  pair")
    for row in rows:
        truth = "same speaker" if row["same_speaker"] else "different speakers"
        print(f"{row['score']:7.4f}  {row['a']} - {row['b']}  ({truth})")
    print(f"same-speaker pairs score above every different-speaker pair: {'yes' if separated else 'no'}")
    print("next: redimnet verify A.wav B.wav (your own recordings; see redimnet verify --help)")
    return 0
