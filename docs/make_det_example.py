"""Draw docs/det_example.png: DET curves of SYNTHETIC scores (no model, no real data involved).

Three made-up trial lists of Gaussian scores with decreasing separation stand in
for easy / medium / hard lists.  Run: python docs/make_det_example.py
"""

from pathlib import Path

import numpy as np

from redimnet.evaluation.metrics import compute_metrics
from redimnet.evaluation.plots import plot_det


def synthetic_list(rng: np.random.Generator, n_trials: int, separation: float):
    """Half target, half non-target; non-targets ~ N(0, 1), targets ~ N(separation, 1)."""
    labels = rng.random(n_trials) < 0.5
    scores = rng.normal(size=n_trials) + separation * labels
    return scores, labels


def main() -> Path:
    rng = np.random.default_rng(2407)
    curves = {
        "synthetic easy": synthetic_list(rng, 40_000, 4.6),
        "synthetic medium": synthetic_list(rng, 200_000, 4.1),
        "synthetic hard": synthetic_list(rng, 200_000, 3.5),
    }
    for name, (scores, labels) in curves.items():
        metrics = compute_metrics(scores, labels)
        print(f"{name:<17} EER {100 * metrics.eer:.2f} %  minDCF(0.01) {metrics.min_dcf[0.01]:.4f}")
    path = plot_det(curves, Path(__file__).resolve().parent / "det_example.png", title="DET curves of synthetic scores")
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
