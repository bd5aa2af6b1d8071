"""``redimnet embed`` and ``redimnet verify``: outputs, ids, resuming, bad files, exit status, workers, torchrun."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from redimnet import cli
from redimnet.audio.read import read_audio
from redimnet.embedding.io import load_embeddings

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_and_checkpoint(b0_model_and_checkpoint):
    return b0_model_and_checkpoint


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Good files in several formats, rates and channel counts, plus broken ones."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    good = {}
    specs = [
        ("spk1/a.wav", 16000, 1, "WAV", "PCM_16"),
        ("spk1/b.wav", 22050, 2, "WAV", "PCM_24"),
        ("spk2/c.wav", 8000, 1, "WAV", "FLOAT"),
        ("spk2/d.flac", 44100, 2, "FLAC", "PCM_16"),
        ("spk2/e.ogg", 48000, 1, "OGG", "VORBIS"),
        ("spk3/f.wav", 16000, 3, "WAV", "PCM_16"),
        ("spk3/g.wav", 16000, 1, "WAV", "PCM_16"),
    ]
    for name, rate, channels, container, subtype in specs:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        seconds = 0.5 if name != "spk3/g.wav" else 0.5  # a and g share a length: batched together
        data = rng.standard_normal((int(seconds * rate), channels)) * 0.1
        sf.write(path, data, rate, format=container, subtype=subtype)
        good[name] = path
    bad = {}
    (root / "bad").mkdir()
    (root / "bad" / "text.wav").write_text("definitely not audio\n" * 10)
    bad["bad/text.wav"] = "not a readable audio file"
    (root / "bad" / "empty.flac").write_bytes(b"")
    bad["bad/empty.flac"] = "empty"
    (root / "bad" / "trunc.wav").write_bytes(good["spk1/a.wav"].read_bytes()[:20])
    bad["bad/trunc.wav"] = "not a readable audio file"
    sf.write(root / "bad" / "short.wav", rng.standard_normal(100) * 0.1, 8000, subtype="PCM_16")
    bad["bad/short.wav"] = "too short"
    sf.write(root / "bad" / "nan.wav", np.array([0.1, np.nan] * 2000, np.float32), 16000, subtype="FLOAT")
    bad["bad/nan.wav"] = "NaN or infinite"
    loud = rng.standard_normal(8000).astype(np.float32) * 0.1
    loud[100] = 3e38  # finite, but no audio: the input policy every reader applies
    sf.write(root / "bad" / "loud.wav", loud, 16000, subtype="FLOAT")
    bad["bad/loud.wav"] = r"1 sample\(s\) are larger than 2.15e\+09 in magnitude"
    sf.write(root / "bad" / "fast.flac", np.full((6553, 8), 0.25, np.float32), 655350, subtype="PCM_16")
    bad["bad/fast.flac"] = "a sample rate of 655350 Hz is not plausible"  # refused from the header
    return root, good, bad


def run_cli(*argv) -> int:
    return cli.main([str(a) for a in argv])


def expected_embedding(model, path):
    with torch.no_grad():
        return model(torch.from_numpy(read_audio(path))[None]).numpy()[0]


@pytest.mark.slow
def test_embed_folder_with_bad_files(tmp_path, corpus, model_and_checkpoint, capsys):
    root, good, bad = corpus
    model, checkpoint = model_and_checkpoint
    out = tmp_path / "emb.npz"
    status = run_cli("embed", root, "--checkpoint", checkpoint, "-o", out, "--decode-workers", "0", "--no-progress")
    assert status == 1
    ids, matrix = load_embeddings(out)
    assert sorted(ids) == sorted(good)
    for uid, row in zip(ids, matrix):
        expected = expected_embedding(model, good[uid])
        assert np.max(np.abs(row - expected)) <= 1e-3 * np.max(np.abs(expected))
    failed = (tmp_path / "emb.failed.tsv").read_text().splitlines()
    assert failed[0] == "path\treason"
    rows = dict(line.split("\t") for line in failed[1:])
    assert sorted(Path(p).relative_to(root).as_posix() for p in rows) == sorted(bad)
    for path, reason in rows.items():
        import re

        assert re.search(bad[Path(path).relative_to(root).as_posix()], reason), (path, reason)
    err = capsys.readouterr().err
    assert f"{len(bad)} input(s) failed" in err and "Traceback" not in err


@pytest.mark.slow
def test_rerun_skips_done_and_clears_failures(tmp_path, corpus, model_and_checkpoint, capsys):
    root, good, bad = corpus
    _, checkpoint = model_and_checkpoint
    work = tmp_path / "audio"
    work.mkdir()
    for name in ["spk1/a.wav", "spk2/c.wav"]:
        (work / Path(name).name).write_bytes(good[name].read_bytes())
    out = tmp_path / "emb.npz"
    (tmp_path / "emb.failed.tsv").write_text("stale\n")
    assert run_cli("embed", work, "--checkpoint", checkpoint, "-o", out, "--decode-workers", "0", "--no-progress") == 0
    assert not (tmp_path / "emb.failed.tsv").exists()
    before = dict(zip(*load_embeddings(out)))
    (work / "g.wav").write_bytes(good["spk3/g.wav"].read_bytes())
    capsys.readouterr()
    assert run_cli("embed", work, "--checkpoint", checkpoint, "-o", out, "--decode-workers", "0", "--no-progress") == 0
    err = capsys.readouterr().err
    assert "embedded 1 file(s)" in err and "2 already in" in err
    after = dict(zip(*load_embeddings(out)))
    assert sorted(after) == ["a.wav", "c.wav", "g.wav"]
    for uid in before:
        np.testing.assert_array_equal(after[uid], before[uid])
    assert not any(p.name.endswith(".tmp.npz") for p in tmp_path.iterdir())


@pytest.mark.slow
def test_npy_folder_and_kaldi_outputs_and_lists(tmp_path, corpus, model_and_checkpoint):
    root, good, _ = corpus
    _, checkpoint = model_and_checkpoint
    scp = tmp_path / "wav.scp"
    scp.write_text(f"utt-a {good['spk1/a.wav']}\nutt-d {good['spk2/d.flac']}\n")
    folder = tmp_path / "vectors"
    assert (
        run_cli(
            "embed",
            "--list",
            scp,
            good["spk2/e.ogg"],
            "--checkpoint",
            checkpoint,
            "-o",
            folder,
            "--workers",
            "0",
            "--no-progress",
        )
        == 0
    )
    assert sorted(p.name for p in folder.iterdir()) == ["e.ogg.npy", "utt-a.npy", "utt-d.npy"]
    reference = tmp_path / "ref.npz"
    assert (
        run_cli(
            "embed",
            "--list",
            scp,
            "--checkpoint",
            checkpoint,
            "-o",
            reference,
            "--decode-workers",
            "0",
            "--no-progress",
        )
        == 0
    )
    ref = dict(zip(*load_embeddings(reference)))
    np.testing.assert_allclose(np.load(folder / "utt-d.npy"), ref["utt-d"], rtol=0, atol=1e-6)
    kaldiio = pytest.importorskip("kaldiio")
    ark = tmp_path / "emb.ark"
    assert (
        run_cli("embed", "--list", scp, "--checkpoint", checkpoint, "-o", ark, "--decode-workers", "0", "--no-progress")
        == 0
    )
    loaded = kaldiio.load_scp(str(tmp_path / "emb.scp"))
    assert sorted(loaded) == ["utt-a", "utt-d"]
    np.testing.assert_allclose(loaded["utt-a"], ref["utt-a"], atol=1e-6)


@pytest.mark.slow
def test_decoding_workers_give_the_same_result(tmp_path, corpus, model_and_checkpoint):
    root, good, _ = corpus
    _, checkpoint = model_and_checkpoint
    paths = [good[n] for n in ["spk1/a.wav", "spk1/b.wav", "spk2/d.flac", "spk3/g.wav"]]
    single, parallel = tmp_path / "w0.npz", tmp_path / "w2.npz"
    assert (
        run_cli("embed", *paths, "--checkpoint", checkpoint, "-o", single, "--decode-workers", "0", "--no-progress")
        == 0
    )
    assert (
        run_cli(
            "embed",
            *paths,
            "--checkpoint",
            checkpoint,
            "-o",
            parallel,
            "--workers",  # the option's earlier name still works
            "2",
            "--no-progress",
            "--batch-size",
            "2",
        )
        == 0
    )
    a, b = dict(zip(*load_embeddings(single))), dict(zip(*load_embeddings(parallel)))
    assert sorted(a) == sorted(b) == ["a.wav", "b.wav", "d.flac", "g.wav"]
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=1e-4 * np.abs(a[key]).max())


@pytest.mark.parametrize(
    "argv,message",
    [
        (["embed", "-o", "{tmp}/x.npz", "--checkpoint", "{ckpt}"], "nothing to embed"),
        (["embed", "{wav}", "-o", "{tmp}/x.txt", "--checkpoint", "{ckpt}"], "unknown output type"),
        (["embed", "{wav}", "-o", "{tmp}/x.npz", "--checkpoint", "{tmp}/missing.pt"], "checkpoint not found"),
        (["embed", "{wav}", "{wav}", "-o", "{tmp}/x.npz", "--checkpoint", "{ckpt}"], "duplicate utterance id"),
        (
            ["embed", "{wav}", "-o", "{tmp}/x.npz", "--checkpoint", "{ckpt}", "--decode-workers", "-1"],
            "--decode-workers",
        ),
        (["verify", "{wav}", "{tmp}/missing.wav", "--checkpoint", "{ckpt}"], "missing.wav: no such file"),
    ],
)
def test_usage_errors_exit_2(tmp_path, corpus, model_and_checkpoint, capsys, argv, message):
    _, good, _ = corpus
    values = {"tmp": tmp_path, "ckpt": model_and_checkpoint[1], "wav": good["spk1/a.wav"]}
    assert run_cli(*[a.format(**values) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_existing_non_embeddings_output_is_not_overwritten(tmp_path, corpus, model_and_checkpoint, capsys):
    _, good, _ = corpus
    out = tmp_path / "precious.npz"
    out.write_bytes(b"my data")
    assert run_cli("embed", good["spk1/a.wav"], "--checkpoint", model_and_checkpoint[1], "-o", out) == 2
    assert out.read_bytes() == b"my data" and "not an embeddings file" in capsys.readouterr().err


def test_empty_folder_is_a_per_input_failure(tmp_path, corpus, model_and_checkpoint, capsys):
    _, good, _ = corpus
    (tmp_path / "void").mkdir()
    out = tmp_path / "e.npz"
    assert (
        run_cli(
            "embed",
            tmp_path / "void",
            good["spk1/a.wav"],
            "--checkpoint",
            model_and_checkpoint[1],
            "-o",
            out,
            "--decode-workers",
            "0",
            "--no-progress",
        )
        == 1
    )
    assert list(load_embeddings(out)[0]) == ["a.wav"]
    assert "no audio files" in (tmp_path / "e.failed.tsv").read_text()


@pytest.mark.slow
def test_verify(corpus, model_and_checkpoint, capsys):
    _, good, _ = corpus
    model, checkpoint = model_and_checkpoint
    a, b = good["spk1/a.wav"], good["spk2/d.flac"]
    ea, eb = expected_embedding(model, a), expected_embedding(model, b)
    score = float(ea @ eb / np.linalg.norm(ea) / np.linalg.norm(eb))
    assert run_cli("verify", a, b, "--checkpoint", checkpoint, "--threshold", score - 0.01) == 0
    out = capsys.readouterr().out
    assert f"score {score:.4f}" in out and "accept" in out
    assert run_cli("verify", a, b, "--checkpoint", checkpoint, "--threshold", min(score + 0.01, 1.0)) == 0
    assert "reject" in capsys.readouterr().out
    assert run_cli("verify", a, a, "--checkpoint", checkpoint, "--json") == 0
    import json

    result = json.loads(capsys.readouterr().out)
    assert result["score"] == pytest.approx(1.0, abs=1e-5) and result["decision"] is None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_ranks_on_gloo(tmp_path, corpus, model_and_checkpoint):
    root, good, bad = corpus
    _, checkpoint = model_and_checkpoint
    single, sharded = tmp_path / "single.npz", tmp_path / "sharded.npz"
    assert (
        run_cli("embed", root, "--checkpoint", checkpoint, "-o", single, "--decode-workers", "0", "--no-progress") == 1
    )
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        "-m",
        "redimnet",
        "embed",
        str(root),
        "--checkpoint",
        str(checkpoint),
        "-o",
        str(sharded),
        "--decode-workers",
        "0",
        "--no-progress",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert result.returncode != 0, result.stderr  # some files are bad: status 1 from every rank
    a, b = dict(zip(*load_embeddings(single))), dict(zip(*load_embeddings(sharded)))
    assert sorted(a) == sorted(b) == sorted(good)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=1e-4 * np.abs(a[key]).max())
    failed = (tmp_path / "sharded.failed.tsv").read_text().splitlines()[1:]
    assert len(failed) == len(bad)
    assert "embedded 7 file(s)" in result.stderr


@pytest.mark.slow
def test_npz_records_the_model_and_refuses_mixing(tmp_path, corpus, model_and_checkpoint, capsys):
    from redimnet.embedding.io import embeddings_model
    from redimnet.models.fingerprint import model_fingerprint

    _, good, _ = corpus
    model, checkpoint = model_and_checkpoint
    out = tmp_path / "e.npz"
    assert run_cli("embed", good["spk1/a.wav"], "--checkpoint", checkpoint, "-o", out, "--decode-workers", "0") == 0
    assert embeddings_model(out) == model_fingerprint(model)
    torch.manual_seed(1)
    other = redimnet_build_b0_checkpoint(tmp_path / "other.pt")
    capsys.readouterr()
    assert run_cli("embed", good["spk2/c.wav"], "--checkpoint", other, "-o", out, "--decode-workers", "0") == 2
    assert "another model" in capsys.readouterr().err
    ids, _ = load_embeddings(out)
    assert ids.tolist() == ["a.wav"]


def redimnet_build_b0_checkpoint(path):
    import redimnet

    return redimnet.save_checkpoint(redimnet.build("b0").eval(), path)
