"""VBx clustering with a PLDA back-end, the speaker-count result, and making a back-end from labelled windows."""

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import redimnet
from redimnet import cli
from redimnet.diarization import vbx as vbx_module
from redimnet.diarization.clustering import Clusters, SpectralClustering, speaker_bounds
from redimnet.diarization.methods import make_clustering
from redimnet.diarization.segments import Segment, label_spans
from redimnet.diarization.vbx import (
    VBxClustering,
    backend_beside,
    forward_backward,
    merge_by_likelihood,
    same_speaker_llr,
)
from redimnet.embedding.io import embeddings_model
from redimnet.errors import InvalidArgumentError
from redimnet.evaluation.backend import train_backend
from redimnet.models.fingerprint import model_fingerprint

SHIPPED = Path(__file__).parent / "data" / "diarization" / "redimnet_synthetic.pt"


def test_forward_backward_matches_every_path_summed():
    rng = np.random.default_rng(0)
    steps, speakers, loop = 5, 3, 0.7
    log_emissions = rng.normal(size=(steps, speakers)) * 2
    prior = np.array([0.5, 0.3, 0.2])
    transition = loop * np.eye(speakers) + (1 - loop) * prior[None, :]
    total, marginals, entries = 0.0, np.zeros((steps, speakers)), np.zeros(speakers)
    for path in itertools.product(range(speakers), repeat=steps):
        p = prior[path[0]] * np.exp(log_emissions[0, path[0]])
        for t in range(1, steps):
            p *= transition[path[t - 1], path[t]] * np.exp(log_emissions[t, path[t]])
        total += p
        for t, s in enumerate(path):
            marginals[t, s] += p
    marginals /= total
    # expected jumps into each speaker (a stay counts as a jump to itself with probability (1-loop)*prior/...)
    for path in itertools.product(range(speakers), repeat=steps):
        p = prior[path[0]] * np.exp(log_emissions[0, path[0]])
        for t in range(1, steps):
            p *= transition[path[t - 1], path[t]] * np.exp(log_emissions[t, path[t]])
        entries[path[0]] += p / total
        for t in range(1, steps):
            a, b = path[t - 1], path[t]
            entries[b] += p / total * (1 - loop) * prior[b] / transition[a, b]
    found, found_entries, log_likelihood = forward_backward(log_emissions, prior, loop)
    assert np.allclose(found, marginals)
    assert np.allclose(found_entries, entries)
    assert log_likelihood == pytest.approx(np.log(total))


def _population(rng, speakers=60, per_speaker=12, dim=24, spread=0.6):
    """Embeddings of many training speakers: a speaker direction plus window noise."""
    centres = rng.standard_normal((speakers, dim))
    labels = np.repeat(np.arange(speakers), per_speaker)
    return centres[labels] + spread * rng.standard_normal((len(labels), dim)), labels


def _recording(rng, speakers, turns=40, windows_per_turn=5, dim=24, spread=0.6):
    """A recording's windows: ``speakers`` new voices taking turns; one region per turn."""
    centres = rng.standard_normal((speakers, dim))
    order = [t % speakers for t in range(turns)] if speakers > 1 else [0] * turns
    who = np.repeat(order, windows_per_turn)
    regions = np.repeat(np.arange(turns), windows_per_turn)
    return centres[who] + spread * rng.standard_normal((len(who), dim)), who, regions


@pytest.fixture(scope="module")
def backend():
    x, labels = _population(np.random.default_rng(1))
    return train_backend(x, labels, kind="plda")


@pytest.mark.parametrize("speakers", [1, 2, 3, 5])
def test_vbx_counts_new_speakers_with_the_models_backend(backend, speakers):
    x, truth, regions = _recording(np.random.default_rng(speakers), speakers)
    found = VBxClustering(backend).fit(x, regions=regions)
    assert found.count == speakers
    assert len(np.unique(found.labels)) == speakers
    pairs = {(int(t), int(f)) for t, f in zip(truth, found.labels)}
    assert len(pairs) == speakers  # every speaker is one cluster, every cluster one speaker
    assert set(found.evidence) == {"count_at_half_speaker_cost", "count_at_double_speaker_cost"}


def test_vbx_honours_given_and_bounded_counts(backend):
    x, truth, regions = _recording(np.random.default_rng(7), 4)
    method = VBxClustering(backend)
    assert method.fit(x, num_speakers=2, regions=regions).count == 2
    assert method.fit(x, num_speakers=6, regions=regions).count == 6
    assert method.fit(x, max_speakers=3, regions=regions).count == 3
    assert method.fit(x, min_speakers=5, max_speakers=7, regions=regions).count == 5
    given = method.fit(x, num_speakers=4, regions=regions)
    assert not given.uncertain and len({(int(t), int(f)) for t, f in zip(truth, given.labels)}) == 4


def test_vbx_keeps_recurring_voices_together_on_a_long_recording_with_bounded_linkage(backend, monkeypatch):
    """Hours of a few recurring voices, every turn with its own channel: the count is decided as on short
    recordings (not one cluster per channel) and no linkage or merge sees more than max_direct items."""
    rng = np.random.default_rng(11)
    speakers, turns, per_turn, dim = 6, 1000, 5, 24
    centres = rng.standard_normal((speakers, dim))
    who = np.repeat(rng.integers(speakers, size=turns), per_turn)
    channels = np.repeat(0.9 * rng.standard_normal((turns, dim)), per_turn, axis=0)
    x = centres[who] + channels + 0.6 * rng.standard_normal((len(who), dim))
    regions = np.repeat(np.arange(turns), per_turn)
    linked, merged = [], []
    original_linkage, original_merge = vbx_module._average_linkage_labels, vbx_module.merge_by_likelihood
    monkeypatch.setattr(
        vbx_module, "_average_linkage_labels", lambda p, c: linked.append(len(p)) or original_linkage(p, c)
    )
    monkeypatch.setattr(
        vbx_module,
        "merge_by_likelihood",
        lambda z, phi, labels, *a: merged.append(labels.max() + 1) or original_merge(z, phi, labels, *a),
    )
    method = VBxClustering(backend, max_direct=400)
    found = method.fit(x, regions=regions)
    assert found.count == speakers
    given = method.fit(x, num_speakers=speakers, regions=regions)
    purity = sum(np.bincount(who[given.labels == c]).max() for c in range(speakers)) / len(who)
    assert purity > 0.97
    assert max(linked) <= 400 and len(linked) >= 2 * 13  # 13 chunks, twice
    assert max(merged) <= 400 + method.initial_clusters
    assert method.speaker_cost(400) == method.fb and method.speaker_cost(5000) == 5 * method.fb


def test_vbx_refuses_a_backend_of_another_model_or_kind(backend):
    with pytest.raises(InvalidArgumentError, match="24-dimensional embeddings, but the model gives 8"):
        VBxClustering(backend).fit(np.ones((10, 8)) + np.arange(10)[:, None] * 0.1)
    cosine = train_backend(*_population(np.random.default_rng(2)), kind="mean")
    with pytest.raises(InvalidArgumentError, match="needs a PLDA back-end"):
        VBxClustering(cosine)
    with pytest.raises(InvalidArgumentError, match="needs a PLDA back-end of the model"):
        make_clustering("vbx")


def test_merge_by_likelihood_joins_the_most_alike_first(backend):
    rng = np.random.default_rng(3)
    z = np.concatenate([rng.normal(0, 1, (20, 4)) + [5, 0, 0, 0], rng.normal(0, 1, (20, 4)) + [-5, 0, 0, 0]])
    phi = np.full(4, 10.0)
    labels = np.repeat([0, 1, 2, 3], 10)  # 0 and 1 are one speaker, 2 and 3 the other
    merged = merge_by_likelihood(z, phi, labels, 2)
    assert merged[0] == merged[10] and merged[20] == merged[30] and merged[0] != merged[20]
    assert np.array_equal(merge_by_likelihood(z, phi, labels, 5), labels)  # fewer clusters than asked: as they are
    same, different = (
        same_speaker_llr(z, phi, labels == 0, labels == 1),
        same_speaker_llr(z, phi, labels == 0, labels == 2),
    )
    assert same > 0 > different
    assert same_speaker_llr(z, phi, labels == 0, labels == 1, weight=0.3) < same  # less evidence, less sure


def test_spectral_reports_how_close_the_second_count_was():
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.normal(0, 0.2, (60, 8)) + np.eye(8)[i] * 3 for i in range(3)])
    found = SpectralClustering().fit(x)
    assert isinstance(found, Clusters) and found.count == 3
    assert 0 <= found.evidence["second_eigengap_ratio"] < SpectralClustering.uncertain_ratio and not found.uncertain


def test_speaker_bounds_are_checked_in_one_place():
    assert speaker_bounds(50) == (1, 20)
    assert speaker_bounds(5, max_speakers=9) == (1, 5)
    assert speaker_bounds(50, num_speakers=3) == (3, 3)
    with pytest.raises(InvalidArgumentError, match="only 4 window"):
        speaker_bounds(4, num_speakers=5)
    with pytest.raises(InvalidArgumentError, match="min speakers <= max speakers"):
        speaker_bounds(40, min_speakers=4, max_speakers=2)


def test_label_spans_keeps_windows_of_one_speaker_alone():
    reference = [Segment(0.0, 3.0, "A"), Segment(2.9, 6.0, "B"), Segment(4.0, 4.5, "A")]
    starts = np.array([0.0, 1.5, 2.2, 3.0, 3.8])
    labels = label_spans(reference, starts, starts + 1.5)
    # 0-1.5 A; 1.5-3.0 A; 2.2-3.7 mixes A and B; 3.0-4.5 B with A overlapping; 3.8-5.3 B with 0.5 s of A
    assert labels == ["A", "A", None, None, None]
    assert label_spans(reference, np.array([4.6]), np.array([6.0])) == ["B"]


def test_backend_is_looked_for_next_to_the_weights():
    assert backend_beside("models/b0-mine.pt") == Path("models/b0-mine.diarization.npz")


@pytest.mark.slow
def test_a_backend_made_from_labelled_recordings_is_picked_up_by_diarize(tmp_path, capsys, one_thread):
    """--save-windows labels windows with the reference, backend train fits the PLDA, and a
    <weights>.diarization.npz next to the checkpoint makes --clustering auto run VBx."""
    from redimnet.testing.synth import generate_conversation

    train = tmp_path / "train"
    for seed in range(3):
        generate_conversation(train / f"conv{seed}.wav", speakers=3, seconds=40, seed=200 + seed)
    weights = tmp_path / "model.pt"
    shutil.copy(SHIPPED, weights)
    windows = tmp_path / "windows.npz"
    run = ["diarize", train, "-o", tmp_path / "out1", "--checkpoint", weights, "--vad", "energy", "--device", "cpu"]
    assert cli.main([str(a) for a in [*run, "--reference", train, "--save-windows", windows]]) == 0
    assert "labelled window embeddings" in capsys.readouterr().err
    ids = np.load(windows)["ids"]
    assert all(":SPEAKER_0" in i for i in ids) and len({i.split("/")[0] for i in ids}) == 9  # 3 recordings x 3
    assert embeddings_model(windows) == model_fingerprint(redimnet.load_checkpoint(weights))  # whose vectors
    assert cli.main(["backend", "train", "--embeddings", str(windows), "-o", str(backend_beside(weights))]) == 0
    test = tmp_path / "test"
    generate_conversation(test / "talk.wav", speakers=2, seconds=40, seed=300)
    out = tmp_path / "out2"
    assert cli.main([str(a) for a in ["diarize", test, "-o", out, "--checkpoint", weights, "--vad", "energy"]]) == 0
    summary = json.loads((out / "talk.json").read_text())
    assert summary["speaker_count"]["method"] == "vbx" and summary["speaker_count"]["given"] is False
    assert summary["speaker_count"]["clusters"] >= len(summary["speakers"]) >= 1
    assert isinstance(summary["speaker_count"]["uncertain"], bool)
    # --save-windows without a reference, or over an input, is a usage error
    assert cli.main([str(a) for a in [*run, "--save-windows", windows]]) == 2
    assert cli.main([str(a) for a in [*run, "--reference", train, "--save-windows", train / "conv0.wav"]]) != 0
