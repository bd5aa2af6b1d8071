"""PLDA / LDA / whitening back-ends, checked on data drawn from the model they assume."""

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from redimnet.evaluation.backend import PLDA, Backend, BackendError, train_backend
from redimnet.evaluation.metrics import eer


def two_covariance_data(rng, dim=6, speakers=400, per_speaker=8):
    a = rng.normal(size=(dim, dim))
    between = a @ a.T / dim + 0.5 * np.eye(dim)
    c = rng.normal(size=(dim, dim))
    within = c @ c.T / dim * 0.3 + 0.1 * np.eye(dim)
    mean = rng.normal(size=dim)
    y = rng.multivariate_normal(mean, between, size=speakers)
    x = np.repeat(y, per_speaker, axis=0) + rng.multivariate_normal(np.zeros(dim), within, size=speakers * per_speaker)
    labels = np.repeat(np.arange(speakers), per_speaker)
    return x, labels, mean, between, within


def closed_form_llr(mean, between, within, enroll, test):
    """log p(enrol, test | same) - log p(enrol) - log p(test), from the joint Gaussians directly."""
    n = enroll.shape[0]
    joint = np.kron(np.ones((n + 1, n + 1)), between) + np.kron(np.eye(n + 1), within)
    enrol_only = np.kron(np.ones((n, n)), between) + np.kron(np.eye(n), within)
    return (
        multivariate_normal(np.tile(mean, n + 1), joint).logpdf(np.r_[enroll.ravel(), test])
        - multivariate_normal(np.tile(mean, n), enrol_only).logpdf(enroll.ravel())
        - multivariate_normal(mean, between + within).logpdf(test)
    )


def test_plda_em_recovers_the_generating_covariances():
    rng = np.random.default_rng(0)
    x, labels, mean, between, within = two_covariance_data(rng, speakers=1500, per_speaker=6)
    model = PLDA.fit(x, labels, iterations=20)
    assert np.linalg.norm(model.within - within) / np.linalg.norm(within) < 0.05
    assert np.linalg.norm(model.between - between) / np.linalg.norm(between) < 0.1
    assert np.abs(model.mean - mean).max() < 0.15


@pytest.mark.parametrize("n_enroll", [1, 3])
def test_plda_llr_matches_the_closed_form(n_enroll):
    rng = np.random.default_rng(1)
    x, labels, *_ = two_covariance_data(rng, speakers=100)
    model = PLDA.fit(x, labels)
    for test_row in (n_enroll + 1, 500):  # same speaker, then another speaker
        expected = closed_form_llr(model.mean, model.between, model.within, x[:n_enroll], x[test_row])
        assert model.llr(x[:n_enroll], x[test_row]) == pytest.approx(expected, rel=1e-8, abs=1e-8)


def test_plda_beats_cosine_where_the_within_class_noise_is_anisotropic():
    rng = np.random.default_rng(2)
    dim = 20
    speakers = rng.normal(size=(300, dim))
    noise_scale = np.r_[np.full(4, 4.0), np.full(dim - 4, 0.3)]  # loud nuisance directions
    x = np.repeat(speakers, 6, axis=0) + rng.normal(size=(1800, dim)) * noise_scale
    labels = np.repeat(np.arange(300), 6)
    train = labels < 200
    backend = train_backend(x[train], labels[train], kind="plda")
    cosine = train_backend(x[train], labels[train], kind="mean")
    test = np.flatnonzero(~train)
    enroll_rows = np.r_[test[::2], test[::2]]
    test_rows = np.r_[test[1::2], rng.permutation(test[1::2])]
    trial_labels = labels[enroll_rows] == labels[test_rows]
    plda_eer = eer(backend.score_trials(x, enroll_rows, test_rows), trial_labels)
    cosine_eer = eer(cosine.score_trials(x, enroll_rows, test_rows), trial_labels)
    assert plda_eer < 0.6 * cosine_eer


def test_multi_recording_enrolment_scores_by_the_book():
    rng = np.random.default_rng(3)
    x, labels, *_ = two_covariance_data(rng, speakers=60)
    backend = train_backend(x, labels, kind="plda")
    enrol = x[:4]
    scores = backend.score_sets([enrol, x[8:9]], x[5:7])
    # by the book: the model's LLR given the four transformed enrolment vectors
    transformed = backend.transform(np.r_[enrol, x[5:7]])
    for i in range(2):
        assert scores[i, 0] == pytest.approx(backend.plda.llr(transformed[:4], transformed[4 + i]))
    cosine = train_backend(x, labels, kind="mean")
    cos_scores = cosine.score_sets([enrol], x[5:6])
    mean_vector = cosine.transform(enrol).mean(axis=0)
    test_vector = cosine.transform(x[5:6])[0]
    assert cos_scores[0, 0] == pytest.approx(mean_vector @ test_vector / np.linalg.norm(mean_vector))


def test_lda_whiten_and_save_load(tmp_path):
    rng = np.random.default_rng(4)
    x, labels, *_ = two_covariance_data(rng, dim=10, speakers=50)
    lda = train_backend(x, labels, kind="lda", dim=5)
    assert lda.projection.shape == (10, 5)
    whiten = train_backend(x, labels, kind="whiten")
    white = x / np.linalg.norm(x, axis=1, keepdims=True) - whiten.mean
    covariance = np.cov(white @ whiten.projection, rowvar=False, bias=True)
    assert np.allclose(covariance, np.eye(10), atol=1e-6)
    for backend in (lda, whiten, train_backend(x, labels, kind="plda", dim=8)):
        loaded = Backend.load(backend.save(tmp_path / f"{backend.kind}.npz"))
        rows = np.arange(20)
        assert np.allclose(loaded.score_trials(x, rows, rows[::-1]), backend.score_trials(x, rows, rows[::-1]))
        assert loaded.fingerprint() == backend.fingerprint()


def test_domain_adaptation_matches_the_in_domain_total_variance():
    rng = np.random.default_rng(5)
    x, labels, *_ = two_covariance_data(rng, dim=5, speakers=200)
    model = PLDA.fit(x, labels)
    in_domain = rng.normal(size=(20000, 5)) * np.array([3.0, 1.0, 1.0, 1.0, 1.0]) + 2.0
    adapted = model.adapt(in_domain)
    assert np.allclose(adapted.mean, in_domain.mean(axis=0))
    total = adapted.between + adapted.within
    covariance = np.cov(in_domain, rowvar=False, bias=True)
    # the direction of largest in-domain variance now has that variance in the model
    direction = np.linalg.eigh(covariance)[1][:, -1]
    assert direction @ total @ direction >= 0.97 * (direction @ covariance @ direction)
    # and within / between grew in the documented proportion 0.3 / 0.7
    grown_w = direction @ (adapted.within - model.within) @ direction
    grown_b = direction @ (adapted.between - model.between) @ direction
    assert grown_w / (grown_w + grown_b) == pytest.approx(0.3, abs=1e-6)


def test_numerical_safety_and_clear_errors():
    rng = np.random.default_rng(6)
    # more dimensions than recordings: the within-class covariance is singular, scores stay finite
    x = rng.normal(size=(12, 30))
    labels = np.repeat(np.arange(4), 3)
    backend = train_backend(x, labels, kind="plda")
    assert np.all(np.isfinite(backend.score_trials(x, np.arange(12), np.arange(12)[::-1])))
    with pytest.raises(BackendError, match="at least two recordings"):
        train_backend(rng.normal(size=(5, 4)), np.arange(5), kind="plda")
    with pytest.raises(BackendError, match="more than 6 speakers"):
        train_backend(rng.normal(size=(30, 10)), np.repeat(np.arange(5), 6), kind="lda", dim=6)
    with pytest.raises(BackendError, match="at least 2 speakers"):
        train_backend(rng.normal(size=(5, 4)), np.zeros(5), kind="plda")
    with pytest.raises(BackendError, match="all-zero"):
        train_backend(np.zeros((4, 3)), [0, 0, 1, 1])
    with pytest.raises(BackendError, match="unknown back-end"):
        train_backend(x, labels, kind="magic")
    with pytest.raises(BackendError, match="192"):
        backend_192 = train_backend(rng.normal(size=(8, 192)), np.repeat(np.arange(4), 2), kind="mean")
        backend_192.score_trials(rng.normal(size=(2, 30)), [0], [1])


def test_foreign_backend_file_is_refused(tmp_path):
    path = tmp_path / "b.npz"
    np.savez(path, mean=np.zeros(3))
    with pytest.raises(BackendError, match="cannot read|not a redimnet"):
        Backend.load(path)
    path.write_bytes(b"junk")
    with pytest.raises(BackendError):
        Backend.load(path)


def test_fast_single_trial_scoring_equals_the_model_llr():
    rng = np.random.default_rng(7)
    x, labels, *_ = two_covariance_data(rng, dim=8, speakers=50)
    backend = train_backend(x, labels, kind="plda", dim=6)
    enroll_rows, test_rows = rng.integers(0, len(x), 40), rng.integers(0, len(x), 40)
    fast = backend.score_trials(x, enroll_rows, test_rows)
    transformed = backend.transform(x)
    slow = [backend.plda.llr(transformed[e], transformed[t]) for e, t in zip(enroll_rows, test_rows)]
    assert np.allclose(fast, slow, rtol=1e-9, atol=1e-9)
