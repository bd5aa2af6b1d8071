"""Scoring back-ends and calibration: speed on large synthetic sets, quality on the synthetic corpus.

Speed (``--speed``): train an LDA+PLDA back-end on 100 000 embeddings (5 000
speakers x 20, 192 dimensions, drawn from a two-covariance model), score
1 000 000 trials with cosine and with PLDA, fit a calibration on 1 000 000
scores.  Wall-clock seconds, one process, the thread count given.

Quality (``--corpus``): a synthetic corpus (``python -m redimnet.testing.synth``), a
small ReDimNet trained on its training speakers with the shipped recipe
``synthetic_small`` (or ``--checkpoint``), then on held-out speakers split
into a development half and a test half: cosine, cosine + AS-Norm (cohort:
training speakers) and LDA + PLDA (trained on the training speakers) -- EER,
minDCF(0.01), minCllr, and Cllr of the raw scores and after a calibration
fitted on the development half.

    python benchmarks/backends.py --speed --corpus --threads 2 --json results.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redimnet.evaluation import (  # noqa: E402  (after the sys.path line, for runs from a checkout)
    ScoringRecipe,
    actual_dcf,
    build_cohort,
    cllr,
    compute_metrics,
    fit_calibration,
    min_cllr,
    train_backend,
)


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def speed(rng) -> dict:
    dim, speakers, per = 192, 5000, 20
    a = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    centres = rng.normal(size=(speakers, dim)) @ a
    x = (np.repeat(centres, per, axis=0) + 0.7 * rng.normal(size=(speakers * per, dim))).astype(np.float32)
    labels = np.repeat(np.arange(speakers), per)
    out = {"embeddings": int(x.shape[0]), "dim": dim, "speakers": speakers}
    backend, out["train_lda128_plda_s"] = timed(train_backend, x, labels, kind="plda", dim=128)
    _, out["train_plda_full_dim_s"] = timed(train_backend, x, labels, kind="plda")
    n_trials = 1_000_000
    enroll = rng.integers(0, x.shape[0], n_trials)
    test = rng.integers(0, x.shape[0], n_trials)
    cosine = ScoringRecipe().scorer(x)
    scores, out["score_1M_cosine_s"] = timed(cosine, enroll, test)
    plda = ScoringRecipe(backend=backend).scorer(x)
    _, out["score_1M_plda_s"] = timed(plda, enroll, test)
    trial_labels = labels[enroll] == labels[test]
    # make sure both classes are present in the calibration set
    trial_labels[:1000] = True
    _, out["fit_calibration_1M_s"] = timed(fit_calibration, scores, trial_labels)
    return out


def _cli(*argv) -> None:
    from redimnet.cli import main

    code = main([str(a) for a in argv])
    if code != 0:
        raise SystemExit(f"redimnet {' '.join(map(str, argv))} failed with exit status {code}")


def corpus(work: Path, checkpoint: str | None, threads: int) -> dict:
    import torch

    from redimnet.embedding.io import load_embeddings
    from redimnet.testing import synth

    train_speakers, held_out, utterances = 48, 32, 8
    data = work / "corpus"
    synth.main(
        [
            str(data),
            "--speakers",
            str(train_speakers + held_out),
            "--utterances",
            str(utterances),
            "--seconds",
            "3.0",
            "--held-out",
            str(held_out),
        ]
    )
    timings = {}
    if checkpoint is None:
        _cli("prepare", data / "train", "-o", work / "lists")
        torch.manual_seed(42)
        start = time.perf_counter()
        _cli(
            "train",
            "--config",
            "synthetic_small",
            "--set",
            f"data.wav_scp={work / 'lists' / 'wav.scp'}",
            "--set",
            f"data.utt2spk={work / 'lists' / 'utt2spk'}",
            "--set",
            f"train.output_dir={work / 'exp'}",
            "--set",
            "train.progress=false",
        )
        _cli("average", work / "exp", "--last", "3", "-o", work / "avg3.pt")
        timings["train_s"] = time.perf_counter() - start
        checkpoint = str(work / "avg3.pt")
    for part in ("train", "test"):
        _cli(
            "embed",
            data / part,
            "-o",
            work / f"{part}.npz",
            "--checkpoint",
            checkpoint,
            "--decode-workers",
            "0",
            "--no-progress",
            "--threads",
            threads,
        )
    train_ids, train_x = load_embeddings(work / "train.npz")
    held_ids, held_x = load_embeddings(work / "test.npz")
    train_speakers_of = [i.split("/")[0] for i in train_ids]
    held_speakers = np.array([i.split("/")[0] for i in held_ids])
    names = sorted(set(held_speakers))
    dev_names, test_names = set(names[: len(names) // 2]), set(names[len(names) // 2 :])

    def trials(chosen):
        rows = [i for i, s in enumerate(held_speakers) if s in chosen]
        pairs = np.array(list(itertools.combinations(rows, 2)))
        return pairs[:, 0], pairs[:, 1], held_speakers[pairs[:, 0]] == held_speakers[pairs[:, 1]]

    dev, test = trials(dev_names), trials(test_names)
    _, cohort = build_cohort(train_ids, train_x)
    recipes = {
        "cosine": ScoringRecipe(),
        "cosine + AS-Norm": ScoringRecipe(norm="asnorm", top_k=20, cohort=cohort),
        "LDA + PLDA": ScoringRecipe(backend=train_backend(train_x, train_speakers_of, kind="plda", dim=32)),
    }
    rows = {}
    for name, recipe in recipes.items():
        scorer = recipe.scorer(held_x)
        dev_scores = scorer(dev[0], dev[1])
        test_scores = scorer(test[0], test[1])
        metrics = compute_metrics(test_scores, test[2], (0.01,))
        calibration = fit_calibration(dev_scores, dev[2], recipe=recipe.describe())
        llrs = calibration.llr(test_scores)
        rows[name] = {
            "eer_percent": 100 * metrics.eer,
            "min_dcf_0.01": metrics.min_dcf[0.01],
            "min_cllr": min_cllr(test_scores, test[2]),
            "cllr_raw": cllr(test_scores, test[2]),
            "cllr_calibrated": cllr(llrs, test[2]),
            "act_dcf_0.01_calibrated": actual_dcf(llrs, test[2], 0.01),
        }
    return {
        "train_speakers": train_speakers,
        "dev_speakers": len(dev_names),
        "test_speakers": len(test_names),
        "test_trials": int(test[2].size),
        "test_targets": int(test[2].sum()),
        **timings,
        "results": rows,
    }


def main():
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--speed", action="store_true", help="timing on 100k embeddings / 1M trials")
    parser.add_argument("--corpus", action="store_true", help="quality on the synthetic corpus (trains a model)")
    parser.add_argument("--checkpoint", help="use this model instead of training one (--corpus)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {args.threads} thread(s)",
        "python": platform.python_version(),
    }
    rng = np.random.default_rng(0)
    if args.speed:
        report["speed"] = speed(rng)
        print(json.dumps(report["speed"], indent=2))
    if args.corpus:
        with tempfile.TemporaryDirectory() as work:
            report["corpus"] = corpus(Path(work), args.checkpoint, args.threads)
        result = report["corpus"]
        print(
            f"{'scoring':<18} {'EER %':>6} {'minDCF':>7} {'minCllr':>8} {'Cllr raw':>9} {'Cllr cal':>9} "
            f"{'actDCF cal':>10}"
        )
        for name, row in result["results"].items():
            print(
                f"{name:<18} {row['eer_percent']:>6.2f} {row['min_dcf_0.01']:>7.4f} {row['min_cllr']:>8.4f} "
                f"{row['cllr_raw']:>9.4f} {row['cllr_calibrated']:>9.4f} {row['act_dcf_0.01_calibrated']:>10.4f}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
