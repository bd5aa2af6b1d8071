"""``redimnet calibrate`` (scores -> log-likelihood ratios) and ``redimnet backend train|adapt`` (LDA / PLDA)."""

from __future__ import annotations

import sys
from typing import Dict, List, Optional, Tuple

import numpy as np

from .._utils.validation import strictly_between
from ..audio.lists import read_table
from ..embedding.io import embeddings_model, load_embeddings
from ..evaluation.backend import BACKEND_KINDS, Backend, default_dim, train_backend
from ..evaluation.calibration import QUALITY_DURATIONS, fit_calibration, quality_from_durations
from ..evaluation.score_norm import speakers_of
from ..evaluation.trials import EmbeddingIndex, index_trials, read_trials, read_utt2spk
from .common import UsageError
from .evaluate import add_recipe_arguments, check_recipe_arguments, recipe_from_arguments
from .outputs import BACKEND, CALIBRATION, Inputs, check_output


def register(subparsers):
    parser = subparsers.add_parser(
        "calibrate",
        help="fit a calibration: scores to log-likelihood ratios (for verify/identify/eval)",
        description="Score the development trials exactly as 'redimnet eval' would with the same options "
        "(cosine, AS-Norm / S-norm with --cohort, or a trained --backend) and fit a logistic-regression "
        "calibration that maps those scores to log-likelihood ratios. The file remembers the scoring "
        "recipe and refuses scores made another way. Use development trials that resemble the "
        "recordings the calibration will be used on.",
    )
    parser.add_argument("--trials", nargs="+", required=True, metavar="T", help="development trial list(s)")
    parser.add_argument(
        "--embeddings",
        required=True,
        metavar="E.npz",
        help="embeddings of the development utterances (from 'redimnet embed')",
    )
    parser.add_argument("-o", "--output", required=True, metavar="CAL.json", help="where to write the calibration")
    add_recipe_arguments(parser)
    parser.add_argument(
        "--durations",
        metavar="UTT2DUR",
        help="Kaldi utt2dur file ('UTTERANCE SECONDS'): use the two recordings' durations as "
        "quality measures (then verify needs them too, which it measures itself)",
    )
    parser.add_argument(
        "--prior",
        type=float,
        default=0.5,
        metavar="P",
        help="effective target prior the fit optimises for (default 0.5)",
    )
    parser.add_argument("--skip-missing", action="store_true", help="score only trials with embeddings")
    parser.set_defaults(handler=run_calibrate)

    backend = subparsers.add_parser(
        "backend",
        help="train or adapt a scoring back-end (LDA, PLDA) on labelled embeddings",
        description="'backend train' fits mean subtraction, whitening, LDA or LDA+PLDA on embeddings with "
        "speaker labels; 'backend adapt' adapts a PLDA back-end to unlabelled in-domain embeddings. "
        "Use the result with 'redimnet eval/verify/identify --backend'.",
    )
    actions = backend.add_subparsers(title="actions", metavar="ACTION")
    train = actions.add_parser("train", help="train a back-end on labelled embeddings")
    train.add_argument(
        "--embeddings",
        required=True,
        nargs="+",
        metavar="E.npz",
        help="training embeddings: one file or several of the same model (e.g. 'diarize --save-windows' of "
        "several corpora), pooled; an id may appear in only one of them",
    )
    train.add_argument(
        "--utt2spk",
        metavar="FILE",
        help="Kaldi utt2spk file; without it the speaker is the first path component of each id",
    )
    train.add_argument(
        "--kind",
        choices=BACKEND_KINDS,
        default="plda",
        help="plda (LDA + length norm + two-covariance PLDA, default), lda, whiten or mean",
    )
    train.add_argument(
        "--dim",
        type=int,
        metavar="N",
        help="LDA output dimension (default: it follows the training speakers S: lda S - 1; plda every "
        "dimension while D <= 4 (S - 1) for D-dimensional embeddings, else LDA to S - 1 first)",
    )
    train.add_argument("--iterations", type=int, default=10, metavar="N", help="PLDA EM iterations (default 10)")
    train.add_argument("-o", "--output", required=True, metavar="B.npz", help="where to write the back-end")
    train.set_defaults(handler=run_backend_train)
    adapt = actions.add_parser("adapt", help="adapt a PLDA back-end to unlabelled in-domain embeddings")
    adapt.add_argument("--backend", required=True, metavar="B.npz", help="trained PLDA back-end")
    adapt.add_argument("--embeddings", required=True, metavar="E.npz", help="in-domain embeddings (no labels)")
    adapt.add_argument("-o", "--output", required=True, metavar="B.npz", help="where to write the adapted back-end")
    adapt.set_defaults(handler=run_backend_adapt)
    backend.set_defaults(handler=lambda args: _backend_usage(backend))


def _backend_usage(parser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _durations(path: str, ids: List[str]) -> np.ndarray:
    table = read_table(path, ("UTTERANCE", "SECONDS"), UsageError, "utt2dur file")
    index = EmbeddingIndex(list(table.keys()))
    values = list(table.values())
    out = np.empty(len(ids))
    for i, utt in enumerate(ids):
        row = index.find(utt)
        if row is None:
            raise UsageError(f"{path} has no duration for utterance {utt!r}")
        try:
            out[i] = float(values[row])
        except ValueError:
            raise UsageError(f"{path}: duration of {utt!r} is not a number: {values[row]!r}") from None
        if not np.isfinite(out[i]) or out[i] <= 0:
            raise UsageError(f"{path}: duration of {utt!r} must be positive seconds, got {values[row]!r}")
    return out


def run_calibrate(args) -> int:
    norm = check_recipe_arguments(args)
    strictly_between("--prior", args.prior, 0.0, 1.0)
    inputs = Inputs(*args.trials, args.embeddings, args.cohort, args.backend, args.durations)
    output = check_output(args.output, CALIBRATION, inputs)
    trial_lists = [read_trials(path) for path in args.trials]
    ids, matrix = load_embeddings(args.embeddings)
    index = EmbeddingIndex(ids)
    indexed = [index_trials(t, index, args.skip_missing, str(args.embeddings)) for t in trial_lists]
    recipe = recipe_from_arguments(args, norm, matrix.shape[1], model=embeddings_model(args.embeddings))
    used = np.unique(np.concatenate([np.r_[i.enroll_rows, i.test_rows] for i in indexed]))
    scorer = recipe.scorer(matrix, used)
    scores = np.concatenate([scorer(i.enroll_rows, i.test_rows) for i in indexed])
    labels = np.concatenate([i.labels for i in indexed])
    quality = None
    if args.durations:
        seconds = _durations(args.durations, ids.tolist())
        enroll = np.concatenate([i.enroll_rows for i in indexed])
        test = np.concatenate([i.test_rows for i in indexed])
        quality = quality_from_durations(seconds[enroll], seconds[test])
    calibration = fit_calibration(
        scores,
        labels,
        quality=quality,
        quality_names=QUALITY_DURATIONS if quality is not None else (),
        recipe=recipe.describe(),
        train_prior=args.prior,
    )
    path = calibration.save(output)
    dev = calibration.dev
    print(
        f"calibrated {recipe.title()} scores on {dev['trials']} trials ({dev['targets']} targets): "
        f"llr = {calibration.scale:.4f} * score {_signed(calibration.offset)}"
        + "".join(f" {_signed(w)} * {n}" for n, w in zip(calibration.quality_names, calibration.quality_weights))
    )
    print(f"development Cllr {dev['cllr']:.4f} (minCllr {dev['min_cllr']:.4f})")
    print(f"wrote {path}")
    return 0


def _signed(value: float) -> str:
    return f"{'-' if value < 0 else '+'} {abs(value):.4f}"


def _pooled_embeddings(paths: List[str]) -> Tuple[np.ndarray, np.ndarray]:
    """``(ids, embeddings)`` of every file in ``paths``, in order; the files must hold embeddings of one
    model (same dimension and, where recorded, the same model fingerprint) and no id twice."""
    ids: List[np.ndarray] = []
    rows: List[np.ndarray] = []
    owner: Dict[str, str] = {}
    first_model: Optional[Tuple[str, str]] = None
    for path in paths:
        file_ids, matrix = load_embeddings(path)
        if len(file_ids) == 0:
            raise UsageError(f"{path} holds no embeddings")
        if rows and matrix.shape[1] != rows[0].shape[1]:
            raise UsageError(
                f"{path} holds {matrix.shape[1]}-dimensional embeddings, {paths[0]} {rows[0].shape[1]}-dimensional: "
                "a back-end is trained on embeddings of one model"
            )
        model = embeddings_model(path)
        if model is not None:
            if first_model is not None and model != first_model[0]:
                raise UsageError(
                    f"{path} and {first_model[1]} hold embeddings of different models: "
                    "a back-end is trained on embeddings of one model"
                )
            first_model = first_model or (model, path)
        for name in file_ids.tolist():
            if name in owner:
                raise UsageError(f"id {name!r} is in both {owner[name]} and {path}: give each utterance one id")
            owner[name] = path
        ids.append(file_ids)
        rows.append(matrix)
    return np.concatenate(ids), np.concatenate(rows)


def run_backend_train(args) -> int:
    output = check_output(args.output, BACKEND, Inputs(*args.embeddings, args.utt2spk))
    ids, matrix = _pooled_embeddings([str(path) for path in args.embeddings])
    utt2spk = read_utt2spk(args.utt2spk) if args.utt2spk else None
    speakers = speakers_of(ids.tolist(), utt2spk)
    count = len(set(speakers))
    dim = args.dim if args.dim is not None else default_dim(args.kind, matrix.shape[1], count)
    backend = train_backend(matrix, speakers, kind=args.kind, dim=dim, iterations=args.iterations)
    path = backend.save(output)
    info = backend.info
    extra = ""
    if "dim" in info:
        extra = f", {info['dim']} dimensions"
        if args.dim is None and info["dim"] < matrix.shape[1]:
            extra += f" (LDA from {matrix.shape[1]}: the default with {count} training speakers; --dim N to choose)"
    print(
        f"trained a {args.kind} back-end on {info['embeddings']} embeddings of {info['speakers']} speakers"
        f"{extra}: {path}"
    )
    if count < 100:
        print(
            f"redimnet: note: {count} training speakers are few for a back-end: compare it with plain cosine "
            "scoring (redimnet eval without --backend) on trials of held-out speakers before using it",
            file=sys.stderr,
        )
    return 0


def run_backend_adapt(args) -> int:
    output = check_output(args.output, BACKEND, Inputs(args.backend, args.embeddings))
    backend = Backend.load(args.backend)
    _, matrix = load_embeddings(args.embeddings)
    adapted = backend.adapt(matrix)
    path = adapted.save(output)
    print(f"adapted {args.backend} to {matrix.shape[0]} in-domain embeddings: {path}")
    return 0
