"""S-norm / AS-Norm and cohort building."""

import numpy as np
import pytest

from redimnet.evaluation.metrics import eer
from redimnet.evaluation.score_norm import ScoreNormError, build_cohort, cohort_statistics, normalize_scores, speaker_of
from redimnet.evaluation.scoring import cosine_scores, l2_normalize


def clustered_population(seed=0):
    """Speakers in clusters of very different tightness, plus a disjoint cohort from the same clusters.

    Non-target pairs inside a tight cluster score as high as target pairs of a loose one, so one global
    threshold does badly; scores standardised by each utterance's nearest cohort speakers do much better.
    """
    rng = np.random.default_rng(seed)
    dim, centres = 32, rng.normal(size=(4, 32))
    spread = np.array([0.4, 0.7, 1.2, 2.0])

    def utterances(n_speakers, per_speaker):
        cluster = rng.integers(0, 4, size=n_speakers)
        speakers = centres[cluster] + spread[cluster, None] * rng.normal(size=(n_speakers, dim))
        noise = (
            0.5 * rng.normal(size=(n_speakers * per_speaker, dim)) * np.repeat(spread[cluster], per_speaker)[:, None]
        )
        return (np.repeat(speakers, per_speaker, axis=0) + noise).astype(np.float32), np.repeat(
            np.arange(n_speakers), per_speaker
        )

    evaluated, speaker = utterances(60, 4)
    cohort, _ = utterances(300, 1)
    return evaluated, speaker, cohort


def test_as_norm_lowers_eer_on_clustered_speakers():
    evaluated, speaker, cohort = clustered_population()
    enroll, test = np.triu_indices(len(evaluated), 1)
    labels = speaker[enroll] == speaker[test]
    raw = cosine_scores(evaluated, enroll, test)
    unit, unit_cohort = l2_normalize(evaluated), l2_normalize(cohort)
    raw_eer = eer(raw, labels)
    s_norm_eer = eer(normalize_scores(raw, enroll, test, unit, unit_cohort, top_k=None), labels)
    as_norm_eer = eer(normalize_scores(raw, enroll, test, unit, unit_cohort, top_k=20), labels)
    assert raw_eer > 0.02
    assert s_norm_eer < raw_eer
    assert as_norm_eer < 0.5 * raw_eer
    assert as_norm_eer < s_norm_eer


def test_normalisation_matches_a_direct_computation():
    rng = np.random.default_rng(1)
    unit = l2_normalize(rng.normal(size=(6, 5)))
    unit_cohort = l2_normalize(rng.normal(size=(9, 5)))
    enroll = np.array([0, 1, 2, 0, 5])
    test = np.array([3, 4, 5, 4, 1])
    scores = np.einsum("ij,ij->i", unit[enroll], unit[test]).astype(np.float64)

    def stats(row, k):
        cohort_scores = sorted((float(unit[row] @ c) for c in unit_cohort), reverse=True)[:k]
        return np.mean(cohort_scores), np.std(cohort_scores)

    for k in (3, 9):
        expected = []
        for s, e, t in zip(scores, enroll, test):
            (me, se), (mt, st) = stats(e, k), stats(t, k)
            expected.append(0.5 * ((s - me) / se + (s - mt) / st))
        np.testing.assert_allclose(
            normalize_scores(scores, enroll, test, unit, unit_cohort, top_k=k), expected, rtol=1e-5
        )
    # top_k equal to the cohort size is plain S-norm
    np.testing.assert_allclose(
        normalize_scores(scores, enroll, test, unit, unit_cohort, top_k=9),
        normalize_scores(scores, enroll, test, unit, unit_cohort, top_k=None),
        rtol=1e-6,
    )


def test_cohort_statistics_errors():
    unit = l2_normalize(np.eye(3))
    with pytest.raises(ScoreNormError, match="at least 2"):
        cohort_statistics(unit, unit[:1])
    with pytest.raises(ScoreNormError, match="top_k"):
        cohort_statistics(unit, unit, top_k=5)
    with pytest.raises(ScoreNormError, match="same model"):
        cohort_statistics(unit, l2_normalize(np.ones((4, 2))))
    same = l2_normalize(np.ones((3, 3)))
    with pytest.raises(ScoreNormError, match="degenerate"):
        normalize_scores(np.zeros(1), np.array([0]), np.array([1]), unit, same)


def test_build_cohort_from_paths_and_utt2spk():
    ids = ["spkA/v1/1.wav", "spkA/v2/2.wav", "spkB/v1/1.wav", "spkC/v9/1.wav", "spkC/v9/2.wav", "spkC/v9/3.wav"]
    matrix = np.array([[2, 0], [0, 3], [1, 1], [1, 0], [1, 0], [0, 5]], dtype=np.float32)
    speakers, means = build_cohort(ids, matrix)
    assert speakers == ["spkA", "spkB", "spkC"]
    expected_a = np.array([0.5, 0.5]) / np.linalg.norm([0.5, 0.5])
    np.testing.assert_allclose(means[0], expected_a, rtol=1e-6)
    expected_c = np.array([2 / 3, 1 / 3]) / np.linalg.norm([2 / 3, 1 / 3])
    np.testing.assert_allclose(means[2], expected_c, rtol=1e-6)
    speakers, _ = build_cohort(ids, matrix, min_utterances=2)
    assert speakers == ["spkA", "spkC"]
    # utt2spk overrides the path, and is matched without extensions
    utt2spk = {
        "spkA/v1/1": "x",
        "spkA/v2/2": "x",
        "spkB/v1/1": "y",
        "spkC/v9/1": "y",
        "spkC/v9/2": "z",
        "spkC/v9/3": "z",
    }
    speakers, means = build_cohort(ids, matrix, utt2spk)
    assert speakers == ["x", "y", "z"]
    with pytest.raises(ScoreNormError, match="no speaker in utt2spk"):
        build_cohort(ids, matrix, {"spkA/v1/1": "x"})
    with pytest.raises(ScoreNormError, match="at least 9"):
        build_cohort(ids, matrix, min_utterances=9)


def test_speaker_of():
    assert speaker_of("id10270/5r0dWxy17C8/00001.wav") == "id10270"
    assert speaker_of("./id1/a.wav") == "id1"
    with pytest.raises(ScoreNormError, match="utt2spk"):
        speaker_of("00001.wav")


def test_s_norm_statistics_equal_the_mean_and_deviation_of_every_cohort_score():
    rng = np.random.default_rng(7)
    unit = l2_normalize(rng.normal(size=(40, 16)) + 0.5)
    cohort = l2_normalize(rng.normal(size=(3000, 16)) + 0.5)
    means, stds = cohort_statistics(unit, cohort)
    scores = unit.astype(np.float64) @ cohort.T.astype(np.float64)
    np.testing.assert_allclose(means, scores.mean(axis=1), atol=1e-9)
    np.testing.assert_allclose(stds, scores.std(axis=1), atol=1e-7)


def test_as_norm_through_a_cohort_index_matches_the_full_scan():
    from redimnet.speakers.index import ExactIndex, usearch_available

    rng = np.random.default_rng(8)
    centres = rng.normal(size=(300, 24))
    cohort = l2_normalize(np.repeat(centres, 10, axis=0) + 0.4 * rng.normal(size=(3000, 24)))
    unit = l2_normalize(centres[:50] + 0.4 * rng.normal(size=(50, 24)))
    exact = cohort_statistics(unit, cohort, top_k=50)
    index = ExactIndex(24)
    index.upsert(np.arange(cohort.shape[0]), cohort)
    np.testing.assert_allclose(cohort_statistics(unit, cohort, top_k=50, index=index), exact, atol=1e-6)
    if usearch_available():
        from redimnet.speakers.index import HnswIndex

        graph = HnswIndex(24)
        graph.upsert(np.arange(cohort.shape[0]), cohort)
        approximate = cohort_statistics(unit, cohort, top_k=50, index=graph)
        np.testing.assert_allclose(approximate, exact, atol=2e-3)  # a missed candidate moves the mean a little
