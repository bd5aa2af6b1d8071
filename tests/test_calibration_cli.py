"""``redimnet calibrate``, ``redimnet backend train|adapt`` and the --backend / --calibration options of eval,
verify and identify, on embeddings drawn from a known model."""

import json

import numpy as np
import pytest
import soundfile as sf

from redimnet import cli
from redimnet.embedding.io import save_embeddings
from redimnet.evaluation.calibration import Calibration

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

DIM = 24


def make_set(rng, speakers, per_speaker, prefix, nuisance):
    """Embeddings with speaker structure plus loud within-speaker noise in a few directions."""
    centres = rng.normal(size=(speakers, DIM))
    noise_scale = np.r_[np.full(4, 3.0), np.full(DIM - 4, 0.5)]
    x = (
        np.repeat(centres, per_speaker, axis=0)
        + rng.normal(size=(speakers * per_speaker, DIM)) * noise_scale
        + nuisance
    )
    ids = [f"{prefix}{s:03d}/utt{u}.wav" for s in range(speakers) for u in range(per_speaker)]
    return ids, x.astype(np.float32)


def write_trials(path, ids, rng, count=600):
    speakers = np.array([i.split("/")[0] for i in ids])
    lines = []
    for _ in range(count):
        a = rng.integers(len(ids))
        same = rng.random() < 0.5
        pool = np.flatnonzero((speakers == speakers[a]) if same else (speakers != speakers[a]))
        pool = pool[pool != a]
        b = rng.choice(pool)
        lines.append(f"{int(same)} {ids[a]} {ids[b]}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cal")
    rng = np.random.default_rng(0)
    nuisance = np.zeros(DIM)
    files = {}
    for name, speakers, prefix in (("train", 150, "tr"), ("dev", 40, "dv"), ("test", 40, "te")):
        ids, x = make_set(rng, speakers, 6, prefix, nuisance)
        files[name] = save_embeddings(root / f"{name}.npz", ids, x)
        if name != "train":
            files[f"{name}_trials"] = write_trials(root / f"{name}.txt", ids, rng)
    return root, files


def run_cli(*argv) -> int:
    return cli.main([str(a) for a in argv])


def eval_json(capsys, *argv):
    assert run_cli("eval", *argv, "--json") == 0
    return json.loads(capsys.readouterr().out)["results"][0]


def test_backend_train_and_eval(data, capsys):
    root, files = data
    assert (
        run_cli(
            "backend", "train", "--embeddings", files["train"], "--kind", "plda", "--dim", "16", "-o", root / "plda.npz"
        )
        == 0
    )
    assert "150 speakers" in capsys.readouterr().out
    cosine = eval_json(capsys, "--trials", files["test_trials"], "--embeddings", files["test"])
    plda = eval_json(
        capsys, "--trials", files["test_trials"], "--embeddings", files["test"], "--backend", root / "plda.npz"
    )
    assert plda["eer"] < 0.8 * cosine["eer"]
    assert "cllr" in plda and "cllr" not in cosine  # PLDA scores are LLRs by construction
    assert plda["min_cllr"] <= plda["cllr"]


def test_calibrate_then_eval_is_calibrated(data, capsys):
    root, files = data
    assert (
        run_cli("calibrate", "--trials", files["dev_trials"], "--embeddings", files["dev"], "-o", root / "cal.json")
        == 0
    )
    out = capsys.readouterr().out
    assert "llr =" in out and "Cllr" in out
    assert Calibration.load(root / "cal.json").recipe["scoring"] == "cosine"
    result = eval_json(
        capsys,
        "--trials",
        files["test_trials"],
        "--embeddings",
        files["test"],
        "--calibration",
        root / "cal.json",
        "--far",
        "0.05",
        "--frr",
        "0.1",
    )
    assert result["cllr"] < result["min_cllr"] + 0.1
    assert result["act_dcf"]["0.05"] < result["min_dcf"]["0.05"]["value"] + 0.15
    far = result["far_thresholds"][0]
    assert far["target"] == 0.05 and far["far"] <= 0.05
    assert result["frr_thresholds"][0]["frr"] <= 0.1
    # the table form prints the calibration columns and the operating points
    assert (
        run_cli(
            "eval",
            "--trials",
            files["test_trials"],
            "--embeddings",
            files["test"],
            "--calibration",
            root / "cal.json",
            "--far",
            "0.05",
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "actDCF(0.01)" in table and "Cllr" in table and "false-accept rate" in table


def test_calibration_refuses_another_recipe(data, capsys):
    root, files = data
    assert (
        run_cli("calibrate", "--trials", files["dev_trials"], "--embeddings", files["dev"], "-o", root / "cal_cos.json")
        == 0
    )
    assert (
        run_cli(
            "backend", "train", "--embeddings", files["train"], "--kind", "lda", "--dim", "10", "-o", root / "lda.npz"
        )
        == 0
    )
    capsys.readouterr()
    code = run_cli(
        "eval",
        "--trials",
        files["test_trials"],
        "--embeddings",
        files["test"],
        "--backend",
        root / "lda.npz",
        "--calibration",
        root / "cal_cos.json",
    )
    assert code == 2
    assert "fitted on other scores" in capsys.readouterr().err


def test_backend_adapt_and_bad_options(data, capsys, tmp_path):
    root, files = data
    assert run_cli("backend", "train", "--embeddings", files["train"], "-o", tmp_path / "p.npz") == 0
    assert (
        run_cli(
            "backend",
            "adapt",
            "--backend",
            tmp_path / "p.npz",
            "--embeddings",
            files["dev"],
            "-o",
            tmp_path / "adapted.npz",
        )
        == 0
    )
    assert (tmp_path / "adapted.npz").is_file()
    assert run_cli("backend", "train", "--embeddings", files["train"], "--kind", "mean", "-o", tmp_path / "m.npz") == 0
    capsys.readouterr()
    assert (
        run_cli(
            "backend", "adapt", "--backend", tmp_path / "m.npz", "--embeddings", files["dev"], "-o", tmp_path / "x.npz"
        )
        == 2
    )
    assert "only a PLDA back-end" in capsys.readouterr().err
    assert (
        run_cli(
            "eval",
            "--trials",
            files["test_trials"],
            "--embeddings",
            files["test"],
            "--backend",
            tmp_path / "p.npz",
            "--cohort",
            files["train"],
        )
        == 2
    )
    assert "own mean" in capsys.readouterr().err
    assert (
        run_cli(
            "calibrate",
            "--trials",
            files["dev_trials"],
            "--embeddings",
            files["dev"],
            "--prior",
            "1.5",
            "-o",
            tmp_path / "c.json",
        )
        == 2
    )
    assert "--prior" in capsys.readouterr().err


@pytest.mark.slow
def test_verify_and_identify_with_calibration(tmp_path, b0_model_and_checkpoint, capsys):
    _, checkpoint = b0_model_and_checkpoint
    rng = np.random.default_rng(1)
    paths = []
    for i in range(3):
        path = tmp_path / f"a{i}.wav"
        sf.write(path, rng.standard_normal(16000) * 0.1, 16000, subtype="PCM_16")
        paths.append(path)
    # a calibration of cosine scores, fitted on made-up development scores: llr = 10 * (score - 0.5)
    scores = np.r_[rng.normal(0.8, 0.1, 500), rng.normal(0.2, 0.1, 500)]
    labels = np.r_[np.ones(500), np.zeros(500)]
    from redimnet.evaluation.calibration import fit_calibration

    calibration = fit_calibration(
        scores,
        labels,
        recipe={
            "scoring": "cosine",
            "top_k": None,
            "subtract_mean": None,
            "cohort": None,
            "backend": None,
            "model": None,
        },
    )
    calibration.save(tmp_path / "cal.json")
    assert run_cli("verify", paths[0], paths[1], "--checkpoint", checkpoint, "--json") == 0
    score = json.loads(capsys.readouterr().out)["score"]
    assert (
        run_cli(
            "verify",
            paths[0],
            paths[1],
            "--checkpoint",
            checkpoint,
            "--calibration",
            tmp_path / "cal.json",
            "--prior",
            "0.01",
            "--json",
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    expected_llr = float(calibration.llr([score])[0])
    assert result["llr"] == pytest.approx(expected_llr, abs=1e-6)
    assert result["llr_threshold"] == pytest.approx(np.log(99))
    assert result["decision"] == ("accept" if expected_llr >= np.log(99) else "reject")
    assert result["posterior"] == pytest.approx(1 / (1 + np.exp(-(expected_llr + np.log(0.01 / 0.99)))))
    assert (
        run_cli(
            "verify",
            paths[0],
            paths[1],
            "--checkpoint",
            checkpoint,
            "--calibration",
            tmp_path / "cal.json",
            "--far",
            "0.01",
        )
        == 0
    )
    assert "false-accept rate 1 %" in capsys.readouterr().out
    assert run_cli("verify", paths[0], paths[1], "--checkpoint", checkpoint, "--far", "0.01") == 2
    assert "--far needs --calibration" in capsys.readouterr().err
    db = tmp_path / "s.db"
    assert run_cli("enroll", "alice", paths[0], "--checkpoint", checkpoint, "--db", db) == 0
    assert run_cli("enroll", "bob", paths[2], "--checkpoint", checkpoint, "--db", db) == 0
    capsys.readouterr()
    assert (
        run_cli(
            "identify",
            paths[1],
            "--checkpoint",
            checkpoint,
            "--db",
            db,
            "--calibration",
            tmp_path / "cal.json",
            "--json",
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert [r["speaker"] for r in rows] == sorted(
        [r["speaker"] for r in rows], key=lambda n: -dict((r["speaker"], r["score"]) for r in rows)[n]
    )
    for row in rows:
        assert row["llr"] == pytest.approx(float(calibration.llr([row["score"]])[0]), abs=1e-6)


def test_calibration_remembers_the_model(tmp_path, capsys):
    rng = np.random.default_rng(2)
    ids, x = make_set(rng, 30, 4, "sp", np.zeros(DIM))
    trials = write_trials(tmp_path / "t.txt", ids, rng, count=300)
    save_embeddings(tmp_path / "a.npz", ids, x, model="model-a")
    save_embeddings(tmp_path / "b.npz", ids, x, model="model-b")
    assert run_cli("calibrate", "--trials", trials, "--embeddings", tmp_path / "a.npz", "-o", tmp_path / "c.json") == 0
    assert Calibration.load(tmp_path / "c.json").recipe["model"] == "model-a"
    assert (
        run_cli("eval", "--trials", trials, "--embeddings", tmp_path / "a.npz", "--calibration", tmp_path / "c.json")
        == 0
    )
    capsys.readouterr()
    assert (
        run_cli("eval", "--trials", trials, "--embeddings", tmp_path / "b.npz", "--calibration", tmp_path / "c.json")
        == 2
    )
    assert "model: fitted on 'model-a', now 'model-b'" in capsys.readouterr().err


def test_backend_train_pools_several_files_of_one_model(tmp_path, capsys):
    rng = np.random.default_rng(3)
    ids, x = make_set(rng, 60, 5, "sp", np.zeros(DIM))
    half = len(ids) // 2  # speakers 0-29 in one file, 30-59 in the other
    save_embeddings(tmp_path / "all.npz", ids, x, model="model-a")
    save_embeddings(tmp_path / "one.npz", ids[:half], x[:half], model="model-a")
    save_embeddings(tmp_path / "two.npz", ids[half:], x[half:], model="model-a")
    assert run_cli("backend", "train", "--embeddings", tmp_path / "all.npz", "-o", tmp_path / "whole.npz") == 0
    assert (
        run_cli(
            "backend",
            "train",
            "--embeddings",
            tmp_path / "one.npz",
            tmp_path / "two.npz",
            "-o",
            tmp_path / "pooled.npz",
        )
        == 0
    )
    assert "60 speakers" in capsys.readouterr().out
    with np.load(tmp_path / "whole.npz") as whole, np.load(tmp_path / "pooled.npz") as pooled:
        assert set(whole.files) == set(pooled.files)
        for name in whole.files:
            assert np.array_equal(whole[name], pooled[name]), name
    # an id in two files, and files of two models, are refused with the files named
    assert (
        run_cli(
            "backend", "train", "--embeddings", tmp_path / "one.npz", tmp_path / "all.npz", "-o", tmp_path / "x.npz"
        )
        == 2
    )
    error = capsys.readouterr().err
    assert f"id '{ids[0]}' is in both" in error and "one.npz" in error and "all.npz" in error
    save_embeddings(tmp_path / "other.npz", ids[half:], x[half:], model="model-b")
    assert (
        run_cli(
            "backend", "train", "--embeddings", tmp_path / "one.npz", tmp_path / "other.npz", "-o", tmp_path / "x.npz"
        )
        == 2
    )
    assert "different models" in capsys.readouterr().err
    save_embeddings(tmp_path / "narrow.npz", ids[half:], x[half:, :8], model="model-a")
    assert (
        run_cli(
            "backend", "train", "--embeddings", tmp_path / "one.npz", tmp_path / "narrow.npz", "-o", tmp_path / "x.npz"
        )
        == 2
    )
    assert "8-dimensional" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()
