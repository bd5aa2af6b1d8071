"""EER, minDCF and DET points: hand-computed cases and a brute-force reference."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import redimnet.metrics as short_name
from redimnet.evaluation.metrics import (
    MetricsError,
    compute_metrics,
    det_curve,
    eer,
    eer_with_threshold,
    error_rates,
    min_dcf,
    min_dcf_with_threshold,
)

# ---------------------------------------------------------------- independent reference (plain Python loops)


def brute_force_rates(scores, labels):
    """[(threshold, miss, false_alarm)] for every distinct score and +inf, by counting, in exact fractions."""
    targets = [s for s, label in zip(scores, labels) if label]
    nontargets = [s for s, label in zip(scores, labels) if not label]
    points = []
    for t in sorted(set(scores)) + [float("inf")]:
        miss = Fraction(sum(1 for s in targets if s < t), len(targets))
        fa = Fraction(sum(1 for s in nontargets if s >= t), len(nontargets))
        points.append((t, miss, fa))
    return points


def brute_force_eer(scores, labels):
    """Where the piecewise-linear (false alarm, miss) curve meets the line miss = false alarm."""
    points = brute_force_rates(scores, labels)
    for (_, m0, f0), (_, m1, f1) in zip(points, points[1:]):
        d0, d1 = m0 - f0, m1 - f1  # signed distance from the diagonal, rises along the curve
        if d0 < 0 <= d1:
            s = -d0 / (d1 - d0)  # fraction of the way along the segment
            return float(m0 + s * (m1 - m0))
    raise AssertionError("the curve never crosses the diagonal")


def brute_force_min_dcf(scores, labels, p_target, c_miss=1.0, c_fa=1.0):
    best = min(
        c_miss * p_target * float(m) + c_fa * (1 - p_target) * float(f) for _, m, f in brute_force_rates(scores, labels)
    )
    return best / min(c_miss * p_target, c_fa * (1 - p_target))


# ---------------------------------------------------------------- hand-computed cases


def test_perfect_separation_gives_zero():
    scores = [0.9, 0.8, 0.7, 0.2, 0.1]
    labels = [1, 1, 1, 0, 0]
    assert eer(scores, labels) == 0.0
    assert min_dcf(scores, labels) == 0.0
    assert min_dcf(scores, labels, p_target=0.05) == 0.0
    value, threshold = eer_with_threshold(scores, labels)
    assert 0.2 < threshold <= 0.7  # a threshold that separates the two classes


def test_inverted_scores_give_one():
    assert eer([0.0, 1.0, 2.0, 3.0], [1, 1, 0, 0]) == pytest.approx(1.0)
    assert min_dcf([0.0, 1.0, 2.0, 3.0], [1, 1, 0, 0]) == pytest.approx(1.0)  # no better than rejecting all


def test_all_equal_scores_are_one_threshold():
    scores = [0.3] * 6
    labels = [1, 0, 1, 0, 0, 1]
    # accept all: miss 0, fa 1; reject all: miss 1, fa 0 -> the straight line between meets the diagonal at 1/2
    assert eer(scores, labels) == pytest.approx(0.5)
    # the best trivial system is the only choice: normalised cost exactly 1
    assert min_dcf(scores, labels, p_target=0.01) == pytest.approx(1.0)
    assert min_dcf(scores, labels, p_target=0.5) == pytest.approx(1.0)


def test_tied_target_and_nontarget_are_not_split():
    # targets 1, 2; non-targets 0, 1 (tie at 1).  Thresholds 0, 1, 2, inf:
    # miss 0, 0, 1/2, 1; fa 1, 1/2, 0, 0 -> crossing halfway between (0, 1/2) and (1/2, 0): EER 1/4 at 1.5
    scores = [1.0, 2.0, 0.0, 1.0]
    labels = [1, 1, 0, 0]
    value, threshold = eer_with_threshold(scores, labels)
    assert value == pytest.approx(0.25)
    assert threshold == pytest.approx(1.5)
    # order of tied trials must not matter
    assert eer([1.0, 1.0, 2.0, 0.0], [0, 1, 1, 0]) == pytest.approx(0.25)


def test_unequal_class_sizes_interpolate():
    # targets 2, 3, 4; non-targets 1, 2.5.  Thresholds 1, 2, 2.5, 3, 4, inf:
    # miss 0, 0, 1/3, 1/3, 2/3, 1; fa 1, 1/2, 1/2, 0, 0, 0.
    # Crossing between (1/3, 1/2) at 2.5 and (1/3, 0) at 3: EER 1/3, a third of the way: threshold 2.5 + 1/6
    scores = [2.0, 3.0, 4.0, 1.0, 2.5]
    labels = [1, 1, 1, 0, 0]
    value, threshold = eer_with_threshold(scores, labels)
    assert value == pytest.approx(1 / 3)
    assert threshold == pytest.approx(2.5 + 1 / 6)


def test_min_dcf_tiny_list_by_hand():
    # targets 0.3, 0.9; non-targets 0.1, 0.5.  p_target 0.5: normalised cost = miss + fa,
    # thresholds 0.1, 0.3, 0.5, 0.9, inf give 1, 0.5, 1, 0.5, 1 -> 0.5, first reached at 0.3
    scores = [0.3, 0.9, 0.1, 0.5]
    labels = [True, True, False, False]
    value, threshold = min_dcf_with_threshold(scores, labels, p_target=0.5)
    assert value == pytest.approx(0.5)
    assert threshold == pytest.approx(0.3)
    # p_target 0.01: cost 0.01 miss + 0.99 fa over 0.01 -> at 0.9: 0.5; at inf: 1 -> 0.5
    assert min_dcf(scores, labels, p_target=0.01) == pytest.approx(0.5)
    # c_miss 10 at p 0.5: normalised cost 10 miss + fa -> 1, 0.5, 5.5, 5, 10 -> 0.5
    assert min_dcf(scores, labels, p_target=0.5, c_miss=10) == pytest.approx(0.5)
    assert min_dcf(scores, labels, p_target=0.5, c_miss=10) == pytest.approx(
        brute_force_min_dcf(scores, labels, 0.5, c_miss=10)
    )


def test_single_target_single_nontarget():
    assert eer([1.0, 0.0], [1, 0]) == 0.0
    assert eer([0.0, 1.0], [1, 0]) == pytest.approx(1.0)
    assert eer([0.5, 0.5], [1, 0]) == pytest.approx(0.5)


def test_error_rates_and_det_curve_shape():
    rates = error_rates([0.1, 0.4, 0.4, 0.8], [0, 1, 0, 1])
    np.testing.assert_array_equal(rates.thresholds, [0.1, 0.4, 0.8, np.inf])
    np.testing.assert_allclose(rates.miss, [0, 0, 0.5, 1])
    np.testing.assert_allclose(rates.false_alarm, [1, 0.5, 0, 0])
    fa, miss, thresholds = det_curve([0.1, 0.4, 0.4, 0.8], [0, 1, 0, 1])
    np.testing.assert_allclose(fa, rates.false_alarm)
    np.testing.assert_allclose(miss, rates.miss)


def test_labels_as_booleans_or_integers_agree():
    scores = [0.2, 0.5, 0.1, 0.7, 0.4]
    assert eer(scores, [0, 1, 0, 1, 1]) == eer(scores, np.array([False, True, False, True, True]))


def test_alias_module():
    assert short_name.eer is eer and short_name.min_dcf is min_dcf


# ---------------------------------------------------------------- bad input: clear errors, never NaN


@pytest.mark.parametrize("labels, words", [([1, 1, 1], "no non-target"), ([0, 0, 0], "no target")])
def test_single_class_is_an_error(labels, words):
    with pytest.raises(MetricsError, match=words):
        eer([0.1, 0.2, 0.3], labels)
    with pytest.raises(MetricsError, match=words):
        min_dcf([0.1, 0.2, 0.3], labels)


def test_other_bad_input():
    with pytest.raises(MetricsError, match="empty"):
        eer([], [])
    with pytest.raises(MetricsError, match="length"):
        eer([0.1, 0.2], [1, 0, 1])
    with pytest.raises(MetricsError, match="NaN"):
        eer([0.1, float("nan")], [1, 0])
    with pytest.raises(MetricsError, match="0/1"):
        eer([0.1, 0.2], [1, 2])
    with pytest.raises(MetricsError, match="p_target"):
        min_dcf([0.1, 0.2], [1, 0], p_target=1.0)


# ---------------------------------------------------------------- agreement with the brute-force reference

trial_lists = (
    st.integers(min_value=2, max_value=40)
    .flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(min_value=-5, max_value=5).map(lambda v: v / 4), min_size=n, max_size=n),
            st.lists(st.booleans(), min_size=n, max_size=n),
        )
    )
    .filter(lambda sl: any(sl[1]) and not all(sl[1]))
)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(trial_lists)
def test_matches_brute_force(trials):
    scores, labels = trials  # few distinct values: many ties
    assert eer(scores, labels) == pytest.approx(brute_force_eer(scores, labels), abs=1e-12)
    for p in (0.01, 0.05, 0.5):
        assert min_dcf(scores, labels, p_target=p) == pytest.approx(
            brute_force_min_dcf(scores, labels, p), rel=1e-9, abs=1e-12
        )
    points = brute_force_rates(scores, labels)
    value = eer(scores, labels)
    # the EER lies between the best "worse error" and the worst "better error" of the real operating points
    assert max(float(min(m, f)) for _, m, f in points) - 1e-12 <= value
    assert value <= min(float(max(m, f)) for _, m, f in points) + 1e-12


def test_matches_brute_force_on_random_continuous_scores():
    rng = np.random.default_rng(7)
    labels = rng.random(300) < 0.3
    scores = rng.normal(size=300) + 1.5 * labels
    assert eer(scores, labels) == pytest.approx(brute_force_eer(scores.tolist(), labels.tolist()), abs=1e-12)
    result = compute_metrics(scores, labels, p_targets=(0.01, 0.05))
    assert result.eer == pytest.approx(eer(scores, labels))
    assert result.n_targets == labels.sum() and result.n_trials == 300
    for p in (0.01, 0.05):
        assert result.min_dcf[p] == pytest.approx(brute_force_min_dcf(scores.tolist(), labels.tolist(), p))
        # the reported threshold really reaches the reported cost
        t = result.min_dcf_threshold[p]
        miss = np.mean(scores[labels] < t)
        fa = np.mean(scores[~labels] >= t)
        assert (p * miss + (1 - p) * fa) / min(p, 1 - p) == pytest.approx(result.min_dcf[p])


def test_eer_threshold_balances_errors_on_large_list():
    rng = np.random.default_rng(3)
    labels = rng.random(200_000) < 0.5
    scores = rng.normal(size=labels.size) + 2.0 * labels
    value, threshold = eer_with_threshold(scores, labels)
    # two unit Gaussians 2 apart cross at 1: EER = P(N(0,1) > 1) = 0.1587
    assert value == pytest.approx(0.158655, abs=0.004)
    assert threshold == pytest.approx(1.0, abs=0.03)
    assert np.mean(scores[labels] < threshold) == pytest.approx(value, abs=1e-3)
    assert np.mean(scores[~labels] >= threshold) == pytest.approx(value, abs=1e-3)


def test_probit_and_thinned_det_points():
    from statistics import NormalDist

    from redimnet.evaluation.plots import det_points, probit

    p = np.array([1e-6, 1e-4, 0.01, 0.02425, 0.3, 0.5, 0.8, 0.99, 1 - 1e-7])
    expected = [NormalDist().inv_cdf(float(v)) for v in p]
    np.testing.assert_allclose(probit(p), expected, rtol=1e-8, atol=1e-8)
    with pytest.raises(ValueError):
        probit(np.array([0.0, 0.5]))
    rng = np.random.default_rng(0)
    labels = rng.random(100_000) < 0.5
    scores = rng.normal(size=labels.size) + 2 * labels
    fa, miss = det_points(scores, labels)
    assert 50 < fa.size < 5000  # thinned from ~100 000 points
    assert fa[0] == pytest.approx(1 - 1e-5) and miss[-1] == pytest.approx(1 - 1e-5)  # both ends kept
    assert np.all(np.diff(fa) <= 0) and np.all(np.diff(miss) >= 0)
