"""Score calibration and its metrics, on data whose answer is known from theory."""

import json
import math
import warnings

import numpy as np
import pytest

from redimnet.errors import RedimnetWarning
from redimnet.evaluation.calibration import (
    Calibration,
    CalibrationError,
    actual_dcf,
    bayes_threshold,
    cllr,
    fit_calibration,
    min_cllr,
    posterior,
    quality_from_durations,
    threshold_at_rate,
)
from redimnet.evaluation.metrics import MetricsError, min_dcf


def gaussian_scores(rng, n, mu_t=2.0, mu_n=-1.0, sigma=1.0):
    """Scores of two equal-variance Gaussian classes: the true LLR is affine with known coefficients."""
    scores = np.r_[rng.normal(mu_t, sigma, n), rng.normal(mu_n, sigma, n)]
    labels = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    scale = (mu_t - mu_n) / sigma**2
    offset = -(mu_t**2 - mu_n**2) / (2 * sigma**2)
    return scores, labels, scale, offset


def test_cllr_of_uninformative_and_confident_systems():
    labels = [1, 1, 0, 0]
    assert cllr([0.0, 0.0, 0.0, 0.0], labels) == pytest.approx(1.0)
    assert cllr([50.0, 50.0, -50.0, -50.0], labels) == pytest.approx(0.0, abs=1e-12)
    # confidently wrong costs a lot: log2(1 + e^10) per trial
    assert cllr([-10.0, -10.0, 10.0, 10.0], labels) == pytest.approx(math.log2(1 + math.exp(10)))
    assert cllr([np.inf, np.inf, -np.inf, -np.inf], labels) == 0.0


def test_cllr_refuses_nan_and_one_class():
    with pytest.raises(MetricsError):
        cllr([np.nan, 1.0], [1, 0])
    with pytest.raises(MetricsError):
        cllr([1.0, 2.0], [1, 1])


def test_min_cllr_perfect_separation_and_pav_with_ties():
    assert min_cllr([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == pytest.approx(0.0)
    # one tied pair of a target and a non-target: PAV gives that pair posterior 1/2 (LLR 0 at an even prior),
    # the others are separated: cost = (log2(2) + log2(2)) / 2 / 2 per class half -> 0.5
    assert min_cllr([0.1, 0.5, 0.5, 0.9], [0, 0, 1, 1]) == pytest.approx(0.5)


def test_fitted_calibration_recovers_the_true_llr():
    rng = np.random.default_rng(1)
    scores, labels, scale, offset = gaussian_scores(rng, 20000)
    calibration = fit_calibration(scores, labels)
    assert calibration.scale == pytest.approx(scale, abs=0.1)
    assert calibration.offset == pytest.approx(offset, abs=0.1)


def test_calibration_transfers_to_held_out_trials():
    rng = np.random.default_rng(2)
    # raw scores on an arbitrary scale (a cosine-like range): badly calibrated as they are
    scores, labels, _, _ = gaussian_scores(rng, 8000, mu_t=0.6, mu_n=0.1, sigma=0.15)
    order = rng.permutation(scores.size)
    first, second = order[: scores.size // 2], order[scores.size // 2 :]
    calibration = fit_calibration(scores[first], labels[first])
    llrs = calibration.llr(scores[second])
    assert cllr(scores[second], labels[second]) > 0.5  # raw cosines are not LLRs
    assert cllr(llrs, labels[second]) <= min_cllr(scores[second], labels[second]) + 0.02
    for p in (0.01, 0.05):
        assert actual_dcf(llrs, labels[second], p) <= min_dcf(scores[second], labels[second], p) + 0.05


def test_quality_measures_help_when_scores_shift_with_duration():
    rng = np.random.default_rng(3)
    n = 6000
    durations = rng.uniform(1.0, 20.0, size=(2 * n, 2))
    shorter = durations.min(axis=1)
    labels = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    # short recordings give lower scores for both classes: the true LLR is affine in score and log duration
    scores = np.where(labels, 1.0, -1.0) + 1.5 * np.log(shorter) + rng.normal(0, 1, 2 * n)
    quality = quality_from_durations(durations[:, 0], durations[:, 1])
    half = rng.permutation(2 * n)
    a, b = half[:n], half[n:]
    plain = fit_calibration(scores[a], labels[a])
    aware = fit_calibration(scores[a], labels[a], quality=quality[a], quality_names=("qmin", "qmax"))
    assert aware.quality_names == ("qmin", "qmax")
    assert cllr(aware.llr(scores[b], quality[b]), labels[b]) < cllr(plain.llr(scores[b]), labels[b]) - 0.1
    with pytest.raises(CalibrationError, match="quality"):
        aware.llr(scores[b])


def test_bayes_threshold_and_posterior():
    assert bayes_threshold(0.5) == 0.0
    assert bayes_threshold(0.01) == pytest.approx(math.log(99))
    assert bayes_threshold(0.5, c_miss=10, c_fa=1) == pytest.approx(-math.log(10))
    assert posterior(0.0, 0.5) == pytest.approx(0.5)
    assert posterior(math.log(99), 0.01) == pytest.approx(0.5)
    with pytest.raises(CalibrationError):
        bayes_threshold(1.0)


def test_threshold_at_rate_on_a_hand_made_list():
    scores = [0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9]
    labels = [0, 0, 0, 1, 0, 1, 1, 1]
    # four non-targets: a false-accept rate of at most 25 % allows one of them (0.6) above the threshold
    threshold, far, frr = threshold_at_rate(scores, labels, far=0.25)
    assert (threshold, far, frr) == (0.4, 0.25, 0.0)
    threshold, far, frr = threshold_at_rate(scores, labels, far=0.0)
    assert (threshold, far, frr) == (0.7, 0.0, 0.25)
    threshold, far, frr = threshold_at_rate(scores, labels, frr=0.25)
    assert (threshold, far, frr) == (0.7, 0.0, 0.25)
    with pytest.raises(CalibrationError):
        threshold_at_rate(scores, labels)


def test_far_table_gives_the_requested_false_accept_rate():
    rng = np.random.default_rng(4)
    scores, labels, _, _ = gaussian_scores(rng, 20000)
    calibration = fit_calibration(scores, labels)
    fresh, fresh_labels, _, _ = gaussian_scores(np.random.default_rng(5), 20000)
    llrs = calibration.llr(fresh)
    for far in (0.1, 0.01):
        threshold = calibration.llr_threshold_at_far(far)
        measured = np.mean(llrs[~fresh_labels] >= threshold)
        assert measured == pytest.approx(far, rel=0.25)
    with pytest.raises(CalibrationError, match="outside"):
        calibration.llr_threshold_at_far(1e-7)


def test_save_load_round_trip_and_recipe_check(tmp_path):
    rng = np.random.default_rng(6)
    scores, labels, _, _ = gaussian_scores(rng, 500)
    recipe = {"scoring": "cosine", "model": "abc123", "cohort": None, "dim": 192}
    calibration = fit_calibration(scores, labels, recipe=recipe)
    path = calibration.save(tmp_path / "cal.json")
    loaded = Calibration.load(path)
    assert np.allclose(loaded.llr(scores), calibration.llr(scores))
    loaded.check_recipe({"scoring": "cosine", "model": "abc123", "dim": 192})
    with pytest.raises(CalibrationError, match="model"):
        loaded.check_recipe({"scoring": "cosine", "model": "other", "dim": 192})
    with pytest.raises(CalibrationError, match="scoring"):
        loaded.check_recipe({"scoring": "asnorm", "model": "abc123", "dim": 192})


@pytest.mark.parametrize(
    "content, match",
    [
        ("{not json", r"cal.json:1"),
        ('{"format": "something-else"}', "not a redimnet calibration"),
        ('{"format": "redimnet-calibration", "version": 1}', "damaged"),
        ('{"format": "redimnet-calibration", "version": 1, "scale": "x", "offset": 0}', "damaged"),
        ('{"format": "redimnet-calibration", "version": 99, "scale": 1, "offset": 0}', "version"),
    ],
)
def test_damaged_calibration_files(tmp_path, content, match):
    path = tmp_path / "cal.json"
    path.write_text(content)
    with pytest.raises(CalibrationError, match=match):
        Calibration.load(path)


def test_non_finite_calibration_file_is_refused(tmp_path):
    data = fit_calibration(np.arange(24.0) % 5, np.arange(24) % 2).to_dict()
    data["scale"] = float("inf")
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CalibrationError, match="non-finite"):
        Calibration.load(path)


def test_calibration_refuses_constant_scores():
    with pytest.raises(CalibrationError, match="equal"):
        fit_calibration(np.full(40, 0.5), np.arange(40) % 2)


def test_calibration_refuses_too_few_trials_and_warns_on_separated_ones():
    """3 trials (1 target) used to give a slope of thousands without a word."""
    with pytest.raises(CalibrationError, match="1 target and 2 non-target trial.*too few.*at least 10"):
        fit_calibration([0.9, 0.1, 0.2], [1, 0, 0])
    rng = np.random.default_rng(0)
    separated = np.r_[rng.uniform(0.6, 0.9, 30), rng.uniform(0.0, 0.4, 30)]
    labels = np.r_[np.ones(30), np.zeros(30)]
    with pytest.warns(RedimnetWarning, match="every target trial scores above every non-target one"):
        fit_calibration(separated, labels)
    overlapping = np.r_[rng.normal(0.6, 0.15, 30), rng.normal(0.3, 0.15, 30)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_calibration(overlapping, labels)  # overlapping classes: no warning
