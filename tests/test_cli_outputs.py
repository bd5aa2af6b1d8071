"""No verb writes over one of its inputs, or over an existing file of another kind (redimnet.cli.outputs).

Each case runs the real command line and checks the exit status, the message and that the file
is byte for byte what it was.
"""

import os

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import TINY_MODEL

import redimnet
from redimnet import cli
from redimnet.cli.outputs import CALIBRATION, EMBEDDINGS, RTTM, SCORES, Inputs, check_output
from redimnet.embedding.io import OutputError, save_embeddings


def run(*argv) -> int:
    return cli.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Embeddings of 6 speakers x 4 utterances, a trial list, a tone recording and a tiny checkpoint."""
    root = tmp_path_factory.mktemp("outputs")
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 8))
    ids = [f"s{s}/u{u}.wav" for s in range(6) for u in range(4)]
    matrix = np.repeat(centres, 4, axis=0) + 0.5 * rng.normal(size=(24, 8))
    embeddings = save_embeddings(root / "e.npz", ids, matrix)
    trials = root / "trials.txt"
    trials.write_text("".join(f"{int(a[:2] == b[:2])} {a} {b}\n" for a in ids[::3] for b in ids[1::3]))
    audio = root / "x.wav"
    sf.write(audio, 0.1 * np.sin(np.arange(16000) * 0.2), 16000)
    torch.manual_seed(0)
    model = redimnet.ReDimNet(redimnet.ModelConfig.from_dict(TINY_MODEL)).eval()
    checkpoint = redimnet.save_checkpoint(model, root / "tiny.pt")
    return {"root": root, "embeddings": embeddings, "trials": trials, "audio": audio, "checkpoint": checkpoint}


def unchanged(path, run_it):
    before = path.read_bytes()
    status = run_it()
    assert path.read_bytes() == before, f"{path} was overwritten"
    return status


@pytest.mark.parametrize("victim", ["embeddings", "trials"])
def test_calibrate_refuses_to_overwrite_its_inputs(data, capsys, victim):
    target = data[victim]
    status = unchanged(
        target, lambda: run("calibrate", "--trials", data["trials"], "--embeddings", data["embeddings"], "-o", target)
    )
    assert status == 2
    assert f"-o {target} is one of the inputs" in capsys.readouterr().err


def test_calibrate_refuses_a_file_of_another_kind_and_replaces_its_own(data, tmp_path, capsys):
    audio = tmp_path / "x.wav"
    audio.write_bytes(data["audio"].read_bytes())
    base = ["calibrate", "--trials", data["trials"], "--embeddings", data["embeddings"], "-o"]
    assert unchanged(audio, lambda: run(*base, audio)) == 2
    assert "exists and is not a calibration file" in capsys.readouterr().err
    output = tmp_path / "cal.json"
    assert run(*base, output) == 0 and run(*base, output) == 0  # a rerun replaces its own output
    assert CALIBRATION.recognise(output)


def test_backend_train_and_adapt_refuse_to_overwrite_their_inputs(data, tmp_path, capsys):
    embeddings = data["embeddings"]
    assert unchanged(embeddings, lambda: run("backend", "train", "--embeddings", embeddings, "-o", embeddings)) == 2
    assert "is one of the inputs" in capsys.readouterr().err
    backend = tmp_path / "b.npz"
    assert run("backend", "train", "--embeddings", embeddings, "--kind", "lda", "-o", backend) == 0
    adapt = ["backend", "adapt", "--backend", backend, "--embeddings", embeddings, "-o"]
    assert unchanged(backend, lambda: run(*adapt, backend)) == 2
    assert "is one of the inputs" in capsys.readouterr().err
    # an embeddings file is not a back-end: not replaced either, even when it is not an input
    other = save_embeddings(tmp_path / "other.npz", ["a"], np.ones((1, 8)))
    assert unchanged(other, lambda: run(*adapt, other)) == 2
    assert "exists and is not a back-end file" in capsys.readouterr().err


def test_cohort_refuses_to_overwrite_its_input(data, capsys):
    embeddings = data["embeddings"]
    assert unchanged(embeddings, lambda: run("cohort", "--embeddings", embeddings, "-o", embeddings)) == 2
    assert "is one of the inputs" in capsys.readouterr().err


def test_average_and_export_refuse_to_overwrite_the_checkpoint(data, capsys):
    checkpoint = data["checkpoint"]
    assert unchanged(checkpoint, lambda: run("average", checkpoint, checkpoint, "-o", checkpoint)) == 2
    assert "is one of the inputs" in capsys.readouterr().err
    export = ["export", "--format", "torchscript", "--checkpoint", checkpoint, "-o", checkpoint]
    assert unchanged(checkpoint, lambda: run(*export)) == 2
    assert "is one of the inputs" in capsys.readouterr().err


def test_export_refuses_a_file_of_another_kind(data, tmp_path, capsys):
    notes = tmp_path / "notes.ts"
    notes.write_text("my notes\n")
    export = ["export", "--format", "torchscript", "--checkpoint", data["checkpoint"], "-o", notes]
    assert unchanged(notes, lambda: run(*export)) == 2
    assert "exists and is not a TorchScript model" in capsys.readouterr().err


def test_embed_refuses_to_write_over_its_list(data, tmp_path, capsys):
    scp = tmp_path / "wav.scp"
    scp.write_text(f"x {data['audio']}\n")
    embed = ["embed", "--list", scp, "-o", scp, "--checkpoint", data["checkpoint"], "--workers", "0"]
    assert unchanged(scp, lambda: run(*embed)) == 2
    assert "is one of the inputs" in capsys.readouterr().err


def test_vad_refuses_to_replace_a_file_of_another_kind_in_its_output_folder(data, tmp_path, capsys):
    folder = tmp_path / "out"
    folder.mkdir()
    victim = folder / "x.rttm"
    victim.write_bytes(data["audio"].read_bytes())  # audio that happens to carry the name
    assert unchanged(victim, lambda: run("vad", data["audio"], "-o", folder, "--vad", "energy")) == 1
    assert "exists and is not a RTTM file" in capsys.readouterr().err


def test_diarize_does_not_overwrite_its_reference(data, tmp_path, capsys):
    audio = tmp_path / "x.wav"
    audio.write_bytes(data["audio"].read_bytes())
    reference = tmp_path / "x.rttm"
    reference.write_text("SPEAKER x 1 0.000 1.000 <NA> <NA> A <NA> <NA>\n")
    diarize = ["diarize", audio, "--reference", reference, "-o", tmp_path, "--checkpoint", data["checkpoint"]]
    assert unchanged(reference, lambda: run(*diarize, "--vad", "energy")) == 1
    assert "is one of the inputs" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()  # nothing of that recording is written


def test_eval_does_not_write_scores_over_its_trial_list(data, tmp_path, capsys):
    trials = tmp_path / "t.scores"  # its score file would be OUTPUT_DIR/t.scores
    trials.write_bytes(data["trials"].read_bytes())
    command = ["eval", "--trials", trials, "--embeddings", data["embeddings"], "--output-dir", tmp_path]
    assert unchanged(trials, lambda: run(*command)) == 2
    assert "is one of the inputs" in capsys.readouterr().err
    other = tmp_path / "elsewhere"
    assert run("eval", "--trials", data["trials"], "--embeddings", data["embeddings"], "--output-dir", other) == 0
    assert SCORES.recognise(other / "trials.scores")


def test_prepare_does_not_replace_a_foreign_list_file(data, tmp_path, capsys):
    corpus = tmp_path / "corpus" / "spk" / "video"
    corpus.mkdir(parents=True)
    (corpus / "u.wav").write_bytes(data["audio"].read_bytes())
    out = tmp_path / "lists"
    out.mkdir()
    (out / "wav.scp").write_bytes(b"\0binary\0")
    assert unchanged(out / "wav.scp", lambda: run("prepare", tmp_path / "corpus", "-o", out)) == 2
    assert "exists and is not a text list" in capsys.readouterr().err


def test_check_output_sees_inputs_through_links(tmp_path):
    original = tmp_path / "e.npz"
    save_embeddings(original, ["a"], np.ones((1, 4)))
    linked = tmp_path / "hard.npz"
    os.link(original, linked)
    symbolic = tmp_path / "soft.npz"
    symbolic.symlink_to(original)
    inputs = Inputs(original)
    for alias in (linked, symbolic):
        with pytest.raises(OutputError, match="is one of the inputs"):
            check_output(alias, EMBEDDINGS, inputs)
    assert check_output(linked, EMBEDDINGS, Inputs()) == linked  # not an input: an embeddings file may be replaced
    with pytest.raises(OutputError, match="exists and is not a RTTM file"):
        check_output(original, RTTM)
    with pytest.raises(OutputError, match="is a folder"):
        check_output(tmp_path, RTTM)
    assert check_output(tmp_path / "new.rttm", RTTM, inputs) == tmp_path / "new.rttm"


def test_diarize_makes_no_output_folder_when_every_input_fails(data, tmp_path, capsys):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....WAVEfmt nonsense")
    out = tmp_path / "out"
    status = run("diarize", broken, tmp_path / "absent.wav", "-o", out, "--checkpoint", data["checkpoint"])
    assert status == 1 and "2 input(s) failed" in capsys.readouterr().err
    assert not out.exists()
