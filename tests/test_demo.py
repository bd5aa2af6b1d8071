"""`redimnet demo`: the shipped example speech, scored pair by pair (with a stand-in model here)."""

import json

import numpy as np
import pytest
import soundfile as sf

import redimnet
from redimnet.cli import main
from redimnet.examples import UTTERANCES, example_files

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def test_example_files_are_short_16k_speech():
    files = example_files()
    assert sorted(files) == ["speaker_a_1", "speaker_a_2", "speaker_b_1"]
    assert len({speaker for speaker, _ in UTTERANCES.values()}) == 2
    total = 0
    for path in files.values():
        wave, rate = sf.read(path, dtype="float32")
        info = sf.info(path)
        assert info.format == "FLAC" and rate == 16000 and wave.ndim == 1
        assert 2.0 <= len(wave) / rate <= 8.0
        assert 0.2 < np.abs(wave).max() <= 1.0 and np.sqrt(np.mean(wave**2)) > 0.02  # speech, not silence
        total += path.stat().st_size
    assert total < 400_000


@pytest.mark.slow
def test_demo_scores_every_pair_with_a_stand_in(b0_model_and_checkpoint, capsys):
    model, checkpoint = b0_model_and_checkpoint
    assert main(["demo", "--checkpoint", str(checkpoint), "--json", "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == str(checkpoint)
    pairs = [(r["a"], r["b"], r["same_speaker"]) for r in report["pairs"]]
    assert pairs == [
        ("speaker_a_1", "speaker_a_2", True),
        ("speaker_a_1", "speaker_b_1", False),
        ("speaker_a_2", "speaker_b_1", False),
    ]
    files = example_files()
    embeddings = redimnet.Embedder(model, device="cpu", optimize=False).embed_files(list(files.values()))
    by_name = dict(zip(files, embeddings))
    for row in report["pairs"]:
        a, b = by_name[row["a"]], by_name[row["b"]]
        assert row["score"] == pytest.approx(float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)), abs=1e-4)
    scores = {(r["a"], r["b"]): r["score"] for r in report["pairs"]}
    highest = scores[("speaker_a_1", "speaker_a_2")] > max(
        scores[("speaker_a_1", "speaker_b_1")], scores[("speaker_a_2", "speaker_b_1")]
    )
    assert report["same_speaker_pairs_score_highest"] == highest


@pytest.mark.slow
def test_demo_text_output(b0_model_and_checkpoint, capsys):
    assert main(["demo", "--checkpoint", str(b0_model_and_checkpoint[1]), "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"model: {b0_model_and_checkpoint[1]}"
    assert lines[3].endswith("speaker_a_1 - speaker_a_2  (same speaker)")
    assert lines[4].endswith("speaker_a_1 - speaker_b_1  (different speakers)")
    assert lines[6].startswith("same-speaker pairs score above every different-speaker pair: ")


def test_demo_defaults_to_the_published_b2(monkeypatch, capsys):
    asked = []

    def stand_in(weights, **options):
        asked.append(weights.name)
        return redimnet.build("b0").eval()

    monkeypatch.setattr("redimnet.hub.pretrained.load_weights", stand_in)
    assert main(["demo", "--device", "cpu"]) == 0
    assert asked == ["b2.vox2-ft_lm"] == [redimnet.DEFAULT_WEIGHTS]
    assert capsys.readouterr().out.startswith("model: b2.vox2-ft_lm (published weights)\n")


def test_copy_examples(tmp_path, capsys):
    target = tmp_path / "voxdemo"
    assert main(["demo", "--copy-examples", str(target)]) == 0
    names = sorted(p.name for p in target.iterdir())
    assert names == ["speaker_a_1.flac", "speaker_a_2.flac", "speaker_b_1.flac"]
    assert (target / "speaker_b_1.flac").read_bytes() == example_files()["speaker_b_1"].read_bytes()
    assert capsys.readouterr().out.startswith(f"copied 3 example recording(s) to {target}: ")
    (target / "speaker_a_1.flac").write_bytes(b"mine")
    assert main(["demo", "--copy-examples", str(target)]) == 0  # never overwrites
    assert (target / "speaker_a_1.flac").read_bytes() == b"mine"
    assert "left alone (already there): speaker_a_1.flac, speaker_a_2.flac, speaker_b_1.flac" in capsys.readouterr().out
    (tmp_path / "file").write_text("x")
    assert main(["demo", "--copy-examples", str(tmp_path / "file")]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
