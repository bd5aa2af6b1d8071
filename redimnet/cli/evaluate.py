"""``redimnet eval``: score trial lists, normalise scores, report EER and minDCF, draw DET curves."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from .._utils import threads
from .._utils.validation import at_least, within
from ..embedding.io import EmbeddingsFileError, check_cache_model, embeddings_model, load_embeddings
from ..evaluation.backend import Backend
from ..evaluation.calibration import Calibration, actual_dcf, cllr, min_cllr, threshold_at_rate
from ..evaluation.metrics import compute_metrics
from ..evaluation.recipe import ScoringRecipe
from ..evaluation.scoring import write_scores
from ..evaluation.trials import EmbeddingIndex, IndexedTrials, TrialList, index_trials, read_trials
from ..models.fingerprint import model_fingerprint
from .common import UsageError, show
from .models import add_model_arguments, model_from_arguments
from .outputs import EMBEDDINGS, FOLDER, PNG, SCORES, Inputs, check_output, output_below

P_TARGETS = (0.01, 0.05)


def register(subparsers):
    parser = subparsers.add_parser(
        "eval",
        help="evaluate speaker verification on trial lists (EER, minDCF)",
        description="Score the trials of one or more lists (VoxCeleb 'LABEL ENROLL TEST' or Kaldi "
        "'ENROLL TEST target|nontarget') by cosine similarity of L2-normalised embeddings, "
        "optionally normalise the scores against a cohort (AS-Norm or S-norm), and print the "
        "EER and minDCF (p_target 0.01 and 0.05) of each list.",
    )
    parser.add_argument("--trials", nargs="+", required=True, metavar="T", help="trial list file(s)")
    source = parser.add_argument_group("embeddings (one of)")
    source.add_argument(
        "--embeddings",
        metavar="E.npz",
        help="embeddings written by 'redimnet embed'; ids are looked up as the trial lists write them",
    )
    source.add_argument(
        "--audio-root",
        metavar="DIR",
        help="extract the embeddings first from the audio files under DIR (the trial paths are "
        "relative to it) with --model, --checkpoint or the default model",
    )
    add_model_arguments(parser, required=False)
    threads.add_threads_argument(source)
    parser.add_argument(
        "--cache",
        metavar="PATH",
        help="keep the embeddings extracted with --audio-root in this .npz file and reuse them on the next run "
        "(default: OUTPUT_DIR/embeddings.npz with --output-dir, else they are not kept)",
    )
    parser.add_argument(
        "--output-dir",
        metavar="DIR",
        help="write one score file per trial list here ('ENROLL TEST SCORE target|nontarget' lines)",
    )
    add_recipe_arguments(parser)
    backend = parser.add_argument_group("calibration and operating points")
    backend.add_argument(
        "--calibration",
        metavar="CAL.json",
        help="turn the scores into log-likelihood ratios with a calibration fitted by "
        "'redimnet calibrate' on the same scoring recipe; adds Cllr and actual DCF",
    )
    backend.add_argument(
        "--far",
        type=float,
        action="append",
        default=[],
        metavar="RATE",
        help="also report the threshold giving at most this false-accept rate (repeatable)",
    )
    backend.add_argument(
        "--frr",
        type=float,
        action="append",
        default=[],
        metavar="RATE",
        help="also report the threshold giving at most this false-reject rate (repeatable)",
    )
    parser.add_argument(
        "--skip-missing",
        action="store_true",
        help="score only trials whose utterances have embeddings (default: missing ones are an error)",
    )
    parser.add_argument(
        "--plot",
        metavar="DIR",
        help='write det.png and a score histogram per list here (needs matplotlib: pip install "redimnet[plot]")',
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.set_defaults(handler=run)


def add_recipe_arguments(parser) -> None:
    """The options that choose how trials are scored (shared by eval and calibrate)."""
    norm = parser.add_argument_group("scoring recipe")
    norm.add_argument("--cohort", metavar="C.npz", help="cohort embeddings (e.g. from 'redimnet cohort')")
    norm.add_argument(
        "--norm",
        choices=("none", "snorm", "asnorm"),
        help="normalisation: asnorm (default with --cohort), snorm, or none (default without)",
    )
    norm.add_argument(
        "--top-k",
        type=int,
        default=300,
        metavar="K",
        help="AS-Norm cohort size per utterance (default 300; capped at the cohort size)",
    )
    norm.add_argument(
        "--subtract-mean",
        choices=("cohort", "eval"),
        help="subtract the mean embedding of the cohort or of the evaluated embeddings before cosine scoring",
    )
    norm.add_argument(
        "--backend",
        metavar="B.npz",
        help="score with a trained back-end (LDA / PLDA, from 'redimnet backend train') instead of "
        "cosine; not combined with --norm / --subtract-mean",
    )


def check_recipe_arguments(args) -> str:
    """The normalisation the recipe options ask for, after checking that they fit together."""
    norm = args.norm or ("asnorm" if args.cohort else "none")
    if norm != "none" and not args.cohort:
        raise UsageError(f"--norm {norm} needs a cohort: --cohort C.npz (build one with 'redimnet cohort')")
    if args.cohort and norm == "none" and args.subtract_mean != "cohort":
        raise UsageError("--cohort is given but not used: choose --norm asnorm/snorm or --subtract-mean cohort")
    if args.subtract_mean == "cohort" and not args.cohort:
        raise UsageError("--subtract-mean cohort needs --cohort C.npz")
    at_least("--top-k", args.top_k, 2)
    if args.backend and (norm != "none" or args.subtract_mean):
        raise UsageError("--backend has its own mean and normalisation: drop --norm / --subtract-mean / --cohort")
    return norm


def _check_arguments(args) -> str:
    """The normalisation to apply, after checking that the options fit together."""
    has_model = bool(getattr(args, "model", None) or getattr(args, "checkpoint", None))
    if bool(args.embeddings) == bool(args.audio_root):
        raise UsageError(
            "give exactly one of --embeddings E.npz (precomputed) or --audio-root DIR (to extract the embeddings first)"
        )
    if args.embeddings and has_model:
        raise UsageError(
            "--model/--checkpoint are only used with --audio-root; with --embeddings the "
            "embeddings are already computed"
        )
    norm = check_recipe_arguments(args)
    for name, rates in (("--far", args.far), ("--frr", args.frr)):
        for rate in rates:
            within(name, rate, 0, 1)
    return norm


def _cache_file(args, inputs: Inputs) -> Optional[Path]:
    """Where --audio-root's embeddings are kept: --cache, else OUTPUT_DIR/embeddings.npz, else nowhere."""
    if args.cache:
        return check_output(args.cache, EMBEDDINGS, inputs, "--cache")
    if args.output_dir:
        return check_output(Path(args.output_dir) / "embeddings.npz", EMBEDDINGS, inputs, "")
    return None


def _extract_embeddings(args, utterances: List[str], cache: Optional[Path]) -> Tuple[np.ndarray, np.ndarray, str]:
    """Embeddings of ``utterances`` under --audio-root, from the cache when it already holds them all."""
    root = Path(args.audio_root)
    if not root.is_dir():
        raise UsageError(f"--audio-root {root} is not a directory")
    try:
        from ..embedding.embedder import embed_directory
    except ImportError:
        raise UsageError(
            "extracting embeddings from --audio-root is not available in this installation; "
            "extract them with 'redimnet embed' first and pass --embeddings E.npz"
        ) from None
    threads.configure(args.threads)
    model = model_from_arguments(args)
    if cache is not None and cache.is_file():  # reused only when this model made it
        try:
            check_cache_model(cache, model_fingerprint(model))
        except EmbeddingsFileError as error:
            raise UsageError(f"{error} (--cache, or embeddings.npz in --output-dir)") from None
        ids, matrix = load_embeddings(cache)
        index = EmbeddingIndex(ids)
        if all(index.find(u) is not None for u in utterances):
            return ids, matrix, f"cached embeddings {cache}"
    ids, matrix = embed_directory(model, root, utterances, cache)
    if cache is None:
        print(
            "redimnet: note: the embeddings were not kept; --cache FILE.npz (or --output-dir) keeps them for "
            "the next run",
            file=sys.stderr,
        )
    kept = f"cache {cache}" if cache is not None else "not kept"
    return np.asarray(ids).astype(str), np.asarray(matrix, dtype=np.float32), f"embeddings of {root} ({kept})"


def _load_cohort(path: str, dim: int) -> np.ndarray:
    ids, matrix = load_embeddings(path)
    if matrix.shape[1] != dim:
        raise UsageError(
            f"cohort {path} has {matrix.shape[1]}-dimensional embeddings but the evaluated ones have "
            f"{dim}: the cohort must come from the same model"
        )
    if matrix.shape[0] < 2:
        raise UsageError(f"cohort {path} has {matrix.shape[0]} embedding(s); it needs at least 2")
    return matrix


def _score_file_names(trial_lists: List[TrialList]) -> List[str]:
    names: List[str] = []
    seen: Dict[str, int] = {}
    for trials in trial_lists:
        count = seen.get(trials.name, 0)
        seen[trials.name] = count + 1
        names.append(f"{trials.name}.scores" if count == 0 else f"{trials.name}_{count + 1}.scores")
    return names


def run(args) -> int:
    norm = _check_arguments(args)
    if args.plot:
        from ..evaluation.plots import require_matplotlib

        require_matplotlib()  # fail before the work when matplotlib is missing
    inputs = Inputs(*args.trials, args.embeddings, args.cohort, args.backend, args.calibration)
    output_dir = check_output(args.output_dir, FOLDER, inputs, "--output-dir") if args.output_dir else None
    plot_dir = check_output(args.plot, FOLDER, inputs, "--plot") if args.plot else None
    cache = _cache_file(args, inputs) if args.audio_root else None
    trial_lists = [read_trials(path) for path in args.trials]
    file_names = _score_file_names(trial_lists)
    named = "score file name (from the trial list's name)"
    score_files = [output_below(output_dir, name, "", SCORES, inputs, named) for name in file_names if output_dir]
    if args.audio_root:
        utterances = list(dict.fromkeys(u for t in trial_lists for u in t.utterances()))
        ids, matrix, source = _extract_embeddings(args, utterances, cache)
    else:
        ids, matrix = load_embeddings(args.embeddings)
        source = str(args.embeddings)
    index = EmbeddingIndex(ids)
    indexed: List[IndexedTrials] = [index_trials(t, index, args.skip_missing, source) for t in trial_lists]
    model = embeddings_model(args.embeddings) if args.embeddings else None
    recipe = recipe_from_arguments(args, norm, matrix.shape[1], model=model)
    used = np.unique(np.concatenate([np.r_[i.enroll_rows, i.test_rows] for i in indexed]))
    scorer = recipe.scorer(matrix, used)
    calibration = None
    if args.calibration:
        calibration = Calibration.load(args.calibration)
        calibration.check_recipe(recipe.describe())

    notes: List[str] = []
    if norm == "asnorm" and recipe.top_k < args.top_k:
        notes.append(f"--top-k {args.top_k} is larger than the cohort; using all {recipe.top_k} cohort embeddings")

    results: List[Dict] = []
    curves, llr_curves = {}, {}
    for number, (item, file_name) in enumerate(zip(indexed, file_names)):
        scores = scorer(item.enroll_rows, item.test_rows)
        labels = item.labels
        metrics = compute_metrics(scores, labels, P_TARGETS)
        entry = {
            "name": item.trials.name,
            "trials_file": str(item.trials.path),
            "missing_trials": item.n_missing_trials,
            "missing_utterances": len(item.missing_utterances),
            **metrics.to_dict(),
            "score_file": None,
        }
        entry.update(_calibration_metrics(scores, labels, recipe, calibration, args))
        if score_files:
            enroll, test = item.kept_pairs()
            entry["score_file"] = str(write_scores(score_files[number], enroll, test, scores, labels))
        results.append(entry)
        curves[file_name[: -len(".scores")]] = (scores, labels)
        if calibration is not None or recipe.gives_llrs:
            llr_curves[file_name[: -len(".scores")]] = (
                calibration.llr(scores) if calibration is not None else scores,
                labels,
            )

    plots: List[str] = []
    if plot_dir is not None:
        from ..evaluation.plots import plot_det, plot_reliability, plot_score_histogram

        def picture(name: str) -> Path:
            return output_below(plot_dir, name, ".png", PNG, inputs, "plot name (from the trial list's name)")

        plots.append(str(plot_det(curves, picture("det"), title=f"DET ({recipe.title()})")))
        for name, (scores, labels) in curves.items():
            target = picture(f"scores_{name}")
            plots.append(str(plot_score_histogram(scores, labels, target, title=f"{name} scores ({recipe.title()})")))
        if llr_curves:
            plots.append(
                str(plot_reliability(llr_curves, picture("reliability"), title=f"reliability ({recipe.title()})"))
            )

    for note in notes:
        print(f"redimnet: note: {note}", file=sys.stderr)
    for entry in results:
        if entry["missing_trials"]:
            print(
                f"redimnet: warning: skipped {entry['missing_trials']} trial(s) of {show(entry['trials_file'])} "
                f"({entry['missing_utterances']} utterance(s) without embeddings)",
                file=sys.stderr,
            )
    settings = {
        "embeddings": source,
        "normalisation": norm,
        "top_k": recipe.top_k if norm == "asnorm" else None,
        "cohort": args.cohort,
        "subtract_mean": args.subtract_mean,
        "backend": args.backend,
        "calibration": args.calibration,
    }
    if args.json:
        print(json.dumps({"settings": settings, "results": results, "plots": plots}, indent=2))
        return 0
    _print_table(results, recipe.title())
    for entry in results:
        for key in ("far_thresholds", "frr_thresholds"):
            for row in entry.get(key, []):
                print(
                    f"{show(entry['name'])}: threshold {row['threshold']:.4f} gives false-accept rate "
                    f"{100 * row['far']:.3f} % and false-reject rate {100 * row['frr']:.3f} % "
                    f"(asked: {key[:3].upper()} <= {100 * row['target']:g} %)"
                )
        if entry["score_file"]:
            print(f"scores: {entry['score_file']}")
    for path in plots:
        print(f"plot: {path}")
    return 0


def recipe_from_arguments(args, norm: str, dim: int, model: Optional[str] = None) -> ScoringRecipe:
    """The scoring recipe the options describe (cohort and back-end files read and checked against ``dim``)."""
    cohort = _load_cohort(args.cohort, dim) if args.cohort else None
    backend = Backend.load(args.backend) if getattr(args, "backend", None) else None
    if backend is not None and backend.input_dim != dim:
        raise UsageError(
            f"back-end {args.backend} was trained on {backend.input_dim}-dimensional embeddings, "
            f"these have {dim}: train it on embeddings of the same model"
        )
    return ScoringRecipe(
        norm=norm,
        top_k=args.top_k if norm == "asnorm" else None,
        cohort=cohort,
        subtract_mean=args.subtract_mean,
        backend=backend,
        model=model,
    )


def _calibration_metrics(scores, labels, recipe: ScoringRecipe, calibration: Optional[Calibration], args) -> Dict:
    """minCllr always; Cllr and actual DCF when the scores are LLRs; thresholds for --far / --frr."""
    out: Dict = {"min_cllr": min_cllr(scores, labels)}
    llrs = calibration.llr(scores) if calibration is not None else (scores if recipe.gives_llrs else None)
    if llrs is not None:
        out["cllr"] = cllr(llrs, labels)
        out["act_dcf"] = {format(p, "g"): actual_dcf(llrs, labels, p) for p in P_TARGETS}
    for key, rates in (("far_thresholds", args.far), ("frr_thresholds", args.frr)):
        rows = []
        for rate in rates:
            threshold, far, frr = threshold_at_rate(scores, labels, **{key[:3]: rate})
            rows.append({"target": rate, "threshold": threshold, "far": far, "frr": frr})
        if rows:
            out[key] = rows
    return out


def _print_table(results: List[Dict], title: str):
    width = max(10, *(len(show(r["name"])) for r in results))
    calibrated = "cllr" in results[0]
    header = f"{'trial list':<{width}} {'trials':>9} {'targets':>8} {'missing':>8} {'EER %':>7} " + " ".join(
        f"{'minDCF(' + format(p, 'g') + ')':>13}" for p in P_TARGETS
    )
    if calibrated:
        header += " " + " ".join(f"{'actDCF(' + format(p, 'g') + ')':>13}" for p in P_TARGETS) + f" {'Cllr':>7}"
    header += f" {'minCllr':>8}"
    print(f"scoring: {title}")
    print(header)
    for r in results:
        dcf = " ".join(f"{r['min_dcf'][format(p, 'g')]['value']:>13.4f}" for p in P_TARGETS)
        line = (
            f"{show(r['name']):<{width}} {r['trials']:>9} {r['targets']:>8} {r['missing_trials']:>8} "
            f"{100 * r['eer']:>7.3f} {dcf}"
        )
        if calibrated:
            line += " " + " ".join(f"{r['act_dcf'][format(p, 'g')]:>13.4f}" for p in P_TARGETS) + f" {r['cllr']:>7.4f}"
        print(line + f" {r['min_cllr']:>8.4f}")
