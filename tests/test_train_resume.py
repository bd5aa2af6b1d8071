"""Checkpoints: bit-exact resume, atomic writes, averaging."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY_MODEL

import redimnet
from redimnet.cli import main as cli_main
from redimnet.testing.synth import generate_corpus, write_noise_folder
from redimnet.training import TrainingError, load_config, train
from redimnet.training.checkpointing import atomic_save, training_states


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    generate_corpus(root / "audio", speakers=range(4), utterances=3, seconds=0.6)
    write_noise_folder(root / "musan", files=1, seconds=0.5)
    assert cli_main(["prepare", str(root / "audio"), "-o", str(root / "lists")]) == 0
    return root


def _config(corpus: Path, out: Path, **train_options) -> Path:
    options = {
        "model": {"preset": "b0", "overrides": TINY_MODEL},
        "data": {
            "csv": str(corpus / "lists" / "list.csv"),
            "crop_seconds": 0.5,
            "batch_size": 3,
            "num_workers": 1,
            "speed_perturb": [0.9, 1.1],
        },
        "augment": {"prob": 0.5, "noise": str(corpus / "musan"), "spec_augment": True},
        "loss": {"margin_increase_start_epoch": 0, "margin_fix_epoch": 1},
        "optimizer": {"lr": 0.05, "final_lr": 0.001, "warmup_epochs": 0.5},
        "train": {
            "output_dir": str(out),
            "epochs": 2,
            "steps_per_epoch": 4,
            "checkpoint_every": 2,
            "log_every": 1,
            "progress": False,
            "keep_checkpoints": 3,
            **train_options,
        },
    }
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(options))
    return path


def _weights(path: Path) -> dict:
    return redimnet.load_checkpoint(path).state_dict()


@pytest.mark.slow
def test_resume_continues_bit_exactly(corpus, tmp_path):
    straight = train(load_config(_config(corpus, tmp_path / "straight")), log=lambda _: None)
    assert straight.steps == 8
    # stop in the middle of the first epoch, then resume from the command line
    stopped = train(load_config(_config(corpus, tmp_path / "split", max_steps=3)), log=lambda _: None)
    assert stopped.steps == 3
    assert training_states(tmp_path / "split" / "checkpoints")[-1].name == "state_step00000003.pt"
    assert cli_main(["train", "--config", str(_config(corpus, tmp_path / "split")), "--resume"]) == 0
    a, b = _weights(straight.final_model), _weights(tmp_path / "split" / "final.pt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # and the logs agree row for row
    log_a = (tmp_path / "straight" / "train_log.csv").read_text().splitlines()
    log_b = (tmp_path / "split" / "train_log.csv").read_text().splitlines()
    columns = log_a[0].split(",")
    drop = [columns.index("examples_per_s")]

    def strip(lines):
        return [[v for i, v in enumerate(line.split(",")) if i not in drop] for line in lines]

    assert strip(log_a) == strip(log_b) and len(log_a) == 9
    # a second training into the same folder without --resume is refused
    with pytest.raises(TrainingError, match="--resume"):
        train(load_config(_config(corpus, tmp_path / "split")), log=lambda _: None)


@pytest.mark.slow
def test_average_verb_means_the_weights(corpus, tmp_path):
    result = train(load_config(_config(corpus, tmp_path / "run", epochs=1)), log=lambda _: None)
    snapshots = sorted((tmp_path / "run" / "checkpoints").glob("model_step*.pt"))
    assert [p.name for p in snapshots] == ["model_step00000002.pt", "model_step00000004.pt"]
    out = tmp_path / "avg.pt"
    assert cli_main(["average", str(tmp_path / "run"), "-o", str(out), "--last", "2"]) == 0
    first, second, averaged = (_weights(p) for p in (*snapshots, out))
    for key, value in averaged.items():
        if value.is_floating_point():
            assert torch.allclose(value, (first[key] + second[key]) / 2, atol=1e-6), key
    assert cli_main(["average", str(tmp_path / "nothing.pt"), "-o", str(out)]) == 2
    assert result.final_model.exists()


def test_atomic_save_never_leaves_a_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "state.pt"
    atomic_save({"x": torch.ones(3)}, target)
    real_save = torch.save

    def dying_save(obj, stream):
        stream.write(b"partial")
        raise KeyboardInterrupt  # the process is interrupted in the middle of writing

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"x": torch.zeros(3)}, target)
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.equal(torch.load(target)["x"], torch.ones(3))
    assert os.listdir(tmp_path) == ["state.pt"]


@pytest.mark.slow
def test_too_much_unreadable_audio_stops_training(corpus, tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    rows = (corpus / "lists" / "list.csv").read_text().splitlines()
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF but not really")
    rows += [f"bad{i},{broken},id10000" for i in range(6)]
    (lists / "list.csv").write_text("\n".join(rows) + "\n")
    config_path = _config(corpus, tmp_path / "bad")
    options = yaml.safe_load(config_path.read_text())
    options["data"].update(csv=str(lists / "list.csv"), max_bad_fraction=0.05)
    config_path.write_text(yaml.safe_dump(options))
    with pytest.raises(TrainingError, match="audio reads failed.*max_bad_fraction"):
        train(load_config(config_path), log=lambda _: None)
    options["data"]["max_bad_fraction"] = 0.9
    options["train"]["output_dir"] = str(tmp_path / "tolerant")
    config_path.write_text(yaml.safe_dump(options))
    result = train(load_config(config_path), log=lambda _: None)
    assert result.bad_audio > 0 and result.steps == 8


@pytest.mark.slow
def test_large_margin_fine_tuning_starts_from_a_training_state(corpus, tmp_path):
    pre = train(load_config(_config(corpus, tmp_path / "pre", epochs=1)), log=lambda _: None)
    state = training_states(tmp_path / "pre" / "checkpoints")[-1]
    path = _config(corpus, tmp_path / "lm", epochs=1, max_steps=2)
    options = yaml.safe_load(path.read_text())
    options["model"]["init_from"] = str(state)
    options["loss"] = {"initial_margin": 0.5, "margin": 0.5, "margin_increase_start_epoch": 0, "margin_fix_epoch": 0}
    options["data"]["crop_seconds"] = 0.8
    path.write_text(yaml.safe_dump(options))
    messages = []
    lm = train(load_config(path), log=messages.append)
    assert any("initialised model and loss weights" in m for m in messages)
    assert lm.steps == 2 and all(row["margin"] == 0.5 for row in lm.log_rows)
    # a training state of a different number of classes does not fit
    options["data"]["speed_perturb"] = []
    options["train"]["output_dir"] = str(tmp_path / "lm2")
    path.write_text(yaml.safe_dump(options))
    with pytest.raises(TrainingError, match="loss weights"):
        train(load_config(path), log=lambda _: None)
    assert pre.final_model.exists()


@pytest.mark.slow
def test_killing_the_process_leaves_loadable_checkpoints_and_resume_finishes(corpus, tmp_path):
    import subprocess
    import sys
    import time

    from redimnet.training.checkpointing import load_training_state

    path = _config(corpus, tmp_path / "killed", epochs=3, checkpoint_every=1, keep_checkpoints=50)
    options = yaml.safe_load(path.read_text())
    options["data"]["num_workers"] = 0
    path.write_text(yaml.safe_dump(options))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(redimnet.__file__).parents[1])}
    process = subprocess.Popen(
        [sys.executable, "-m", "redimnet", "train", "--config", str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoints = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 240
    while len(training_states(checkpoints)) < 3 and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.kill()  # SIGKILL, possibly in the middle of writing a checkpoint
    process.wait()
    states = training_states(checkpoints)
    assert states and all(load_training_state(p)["step"] >= 1 for p in states)
    assert all(redimnet.load_checkpoint(p) is not None for p in checkpoints.glob("model_step*.pt"))
    assert cli_main(["train", "--config", str(path), "--resume"]) == 0
    assert load_training_state(training_states(checkpoints)[-1])["step"] == 12


def test_bf16_autocast_on_cpu_and_fp16_needs_a_gpu(corpus, tmp_path):
    result = train(load_config(_config(corpus, tmp_path / "bf16", precision="bf16", max_steps=2)), log=lambda _: None)
    assert result.steps == 2 and np.isfinite(result.last_loss)
    if not torch.cuda.is_available():
        with pytest.raises(TrainingError, match="fp16 needs a GPU"):
            train(load_config(_config(corpus, tmp_path / "fp16", precision="fp16")), log=lambda _: None)


# --------------------------------------------------------------------------- non-finite losses and weights


def _poison_loss(monkeypatch, bad_calls):
    """Make the loss NaN on the given (1-based) forward calls of the training classifier."""
    from redimnet.training.tasks import SpeakerClassifier

    real, calls = SpeakerClassifier.forward, []

    def poisoned(self, wave, labels, autocast):
        calls.append(1)
        value, scores = real(self, wave, labels, autocast)
        return (value * float("nan") if len(calls) in bad_calls else value), scores

    monkeypatch.setattr(SpeakerClassifier, "forward", poisoned)


def _all_finite(path) -> bool:
    content = torch.load(path, map_location="cpu", weights_only=True)
    tensors = content["state_dict"].values() if "state_dict" in content else content["model"].values()
    return all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point())


def test_a_loss_that_stays_non_finite_stops_training_without_a_bad_snapshot(corpus, tmp_path, monkeypatch):
    from redimnet.training.trainer import MAX_SKIPPED_STEPS

    _poison_loss(monkeypatch, bad_calls=range(1, 100))
    out = tmp_path / "diverged"
    with pytest.raises(TrainingError, match=rf"stopped at step {MAX_SKIPPED_STEPS + 1}: .*not finite.*loss nan"):
        train(load_config(_config(corpus, out, checkpoint_every=1)), log=lambda _: None)
    assert not (out / "final.pt").exists()
    written = list((out / "checkpoints").glob("*.pt"))
    assert written and all(_all_finite(p) for p in written)


@pytest.mark.slow
def test_a_single_non_finite_step_is_skipped(corpus, tmp_path, monkeypatch):
    _poison_loss(monkeypatch, bad_calls={2})
    messages = []
    result = train(load_config(_config(corpus, tmp_path / "glitch")), log=messages.append)
    assert result.steps == 8 and np.isfinite(result.last_loss)
    assert any("step 2 skipped: non-finite loss nan" in m for m in messages)
    assert _all_finite(result.final_model)
    # the log row of the skipped step has no loss to show; the others are unaffected
    assert [row["step"] for row in result.log_rows if not np.isfinite(row["loss"])] == [2]


def test_non_finite_weights_are_never_saved(corpus, tmp_path, monkeypatch):
    real_step = torch.optim.SGD.step

    def exploding_step(self, *args, **kwargs):
        real_step(self, *args, **kwargs)
        with torch.no_grad():
            self.param_groups[0]["params"][0].fill_(float("inf"))

    monkeypatch.setattr(torch.optim.SGD, "step", exploding_step)
    out = tmp_path / "exploded"
    with pytest.raises(TrainingError, match="stopped at step 1: the model weight .* is not finite"):
        train(load_config(_config(corpus, out, checkpoint_every=1)), log=lambda _: None)
    assert not list((out / "checkpoints").glob("*.pt")) and not (out / "final.pt").exists()


def test_save_checkpoint_refuses_non_finite_weights(tmp_path):
    model = redimnet.ReDimNet(redimnet.ModelConfig(**TINY_MODEL))
    with torch.no_grad():
        next(model.parameters())[0] = float("nan")
    with pytest.raises(redimnet.CheckpointError, match="infinite or NaN"):
        redimnet.save_checkpoint(model, tmp_path / "bad.pt")
    assert not (tmp_path / "bad.pt").exists()


def test_a_shard_truncated_at_a_block_boundary_stops_training_naming_it(corpus, tmp_path, capsys):
    from redimnet.training.data import scan_voxceleb_folder, write_shards

    index = write_shards(scan_voxceleb_folder(corpus / "audio"), tmp_path / "shards", per_shard=6)
    shard = tmp_path / "shards" / "shard-000001.tar"
    shard.write_bytes(shard.read_bytes()[: 512 * 30])  # whole blocks: only streaming can notice
    path = _config(corpus, tmp_path / "truncated")
    options = yaml.safe_load(path.read_text())
    options["data"] = {**options["data"], "csv": None, "shards": str(index), "shuffle_buffer": 4}
    path.write_text(yaml.safe_dump(options))
    assert cli_main(["train", "--config", str(path)]) == 2  # the error comes from a DataLoader worker
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("redimnet: error: shard ") and str(shard) in last and "truncated" in last
    assert "Traceback" not in err and "Caught" not in err
