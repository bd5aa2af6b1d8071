"""Distributed data-parallel training with 2 CPU processes (gloo), launched as users would."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TINY_MODEL

import redimnet
from redimnet.cli import main as cli_main
from redimnet.testing.synth import generate_corpus
from redimnet.training.checkpointing import load_training_state


@pytest.mark.slow
def test_two_gloo_processes_train_one_model(tmp_path):
    generate_corpus(tmp_path / "audio", speakers=range(4), utterances=3, seconds=0.6)
    assert (
        cli_main(
            ["prepare", str(tmp_path / "audio"), "-o", str(tmp_path / "lists"), "--shards", "--utts-per-shard", "3"]
        )
        == 0
    )
    out = tmp_path / "exp"
    config = tmp_path / "ddp.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": {"preset": "b0", "overrides": TINY_MODEL},
                "data": {
                    "shards": str(tmp_path / "lists" / "shards"),
                    "crop_seconds": 0.5,
                    "batch_size": 2,
                    "num_workers": 0,
                    "speed_perturb": [],
                    "shuffle_buffer": 4,
                },
                "optimizer": {"lr": 0.05, "final_lr": 0.001, "warmup_epochs": 0},
                "train": {
                    "output_dir": str(out),
                    "epochs": 2,
                    "checkpoint_every": 2,
                    "log_every": 1,
                    "progress": False,
                },
            }
        )
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(redimnet.__file__).parents[1])}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "redimnet",
        "train",
        "--config",
        str(config),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 process(es)" in done.stderr
    # 12 utterances / (2 per process x 2 processes) = 3 steps per epoch
    with open(out / "train_log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert all(float(r["loss"]) > 0 for r in rows)
    final = redimnet.load_checkpoint(out / "final.pt")
    assert final(torch.randn(1, 8000)).shape == (1, 16)
    state = load_training_state(sorted((out / "checkpoints").glob("state_step*.pt"))[-1])
    assert state["step"] == 6 and len(state["rng"]) == 2  # random states of both processes
    # resuming with the same two processes continues from the saved step (nothing left to do)
    done = subprocess.run(
        command + ["--resume", "--set", "train.epochs=3"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming" in done.stderr
    with open(out / "train_log.csv") as handle:
        assert [int(r["step"]) for r in csv.DictReader(handle)] == list(range(1, 10))
