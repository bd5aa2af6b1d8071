"""``redimnet cohort``: build a score-normalisation cohort of per-speaker mean embeddings."""

from __future__ import annotations

from .._utils.validation import at_least
from ..embedding.io import load_embeddings, save_embeddings
from ..evaluation.score_norm import build_cohort
from ..evaluation.trials import read_utt2spk
from .common import UsageError
from .outputs import EMBEDDINGS, Inputs, check_output


def register(subparsers):
    parser = subparsers.add_parser(
        "cohort",
        help="build a cohort of per-speaker mean embeddings for AS-Norm / S-norm",
        description="Average the L2-normalised embeddings of each speaker (e.g. of the training set) into one "
        "unit-length embedding per speaker, for 'redimnet eval --cohort'. Speakers come from "
        "--utt2spk, or else from the first path component of each utterance id "
        "(id10270/5r0dWxy17C8/00001.wav -> id10270). The cohort speakers must not be in the "
        "evaluation trials.",
    )
    parser.add_argument("--embeddings", required=True, metavar="E.npz", help="embeddings from 'redimnet embed'")
    parser.add_argument("--utt2spk", metavar="FILE", help="Kaldi utt2spk file: 'UTTERANCE SPEAKER' per line")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="COHORT.npz",
        help="where to write the cohort (an embeddings file whose ids are speakers)",
    )
    parser.add_argument(
        "--min-utterances",
        type=int,
        default=1,
        metavar="N",
        help="leave out speakers with fewer than N utterances (default 1)",
    )
    parser.set_defaults(handler=run)


def run(args) -> int:
    at_least("--min-utterances", args.min_utterances, 1)
    output = check_output(args.output, EMBEDDINGS, Inputs(args.embeddings, args.utt2spk))
    ids, matrix = load_embeddings(args.embeddings)
    if len(ids) == 0:
        raise UsageError(f"{args.embeddings} holds no embeddings")
    utt2spk = read_utt2spk(args.utt2spk) if args.utt2spk else None
    speakers, means = build_cohort(ids, matrix, utt2spk, args.min_utterances)
    path = save_embeddings(output, speakers, means)
    print(
        f"wrote a cohort of {len(speakers)} speakers ({means.shape[1]}-dimensional) from {len(ids)} "
        f"utterances to {path}"
    )
    return 0
