"""End to end on synthetic voices, through the user-facing commands:

``python -m redimnet.synth`` -> ``redimnet prepare`` -> ``redimnet train`` -> ``redimnet average``
-> ``redimnet embed`` + ``redimnet eval`` on held-out speakers, before and after training.

Takes a few minutes on 2 CPU cores; it is part of the normal test run on purpose.
"""

import json

import pytest
import torch
import yaml

import redimnet
from redimnet import synth
from redimnet.cli import main as cli_main

SMALL_MODEL = {
    "F": 32,
    "C": 4,
    "block_2d_type": "convnext_like",
    "group_divisor": 4,
    "block_1d_type": "conv",
    "embed_dim": 64,
    "hop_length": 240,
    "stages_setup": [[1, 1, 1, [[3, 3]], 4], [2, 1, 1, [[3, 3]], 4], [2, 1, 1, [[3, 3]], 4]],
}
# A reduced ReDimNet2: time-pooled stages (time strides 1, 1, 2), the release models' "tf" front end.
SMALL_MODEL_2 = {
    "F": 32,
    "C": 4,
    "block_2d_type": "convnext_like",
    "group_divisor": 4,
    "block_1d_type": "conv",
    "embed_dim": 64,
    "out_channels": None,
    "stages_setup": [[[1, 1], 1, 1, [[3, 3]], 4], [[2, 1], 1, 1, [[3, 3]], 4], [[2, 2], 1, 1, [[3, 3]], 4]],
}
TRAIN_SPEAKERS, TEST_SPEAKERS, UTTERANCES = 32, 16, 8


def _held_out_eer(capsys, corpus, checkpoint, name) -> float:
    embeddings = corpus.parent / f"{name}.npz"
    assert (
        cli_main(
            [
                "embed",
                str(corpus / "test"),
                "-o",
                str(embeddings),
                "--checkpoint",
                str(checkpoint),
                "--workers",
                "0",
                "--no-progress",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        cli_main(["eval", "--trials", str(corpus / "test_trials.txt"), "--embeddings", str(embeddings), "--json"]) == 0
    )
    (result,) = json.loads(capsys.readouterr().out)["results"]
    assert result["missing_trials"] == 0 and result["targets"] == TEST_SPEAKERS * UTTERANCES * (UTTERANCES - 1) // 2
    return result["eer"]


@pytest.mark.parametrize(
    "preset, overrides", [("b0", SMALL_MODEL), ("redimnet2-b0", SMALL_MODEL_2)], ids=["redimnet", "redimnet2"]
)
def test_training_on_synthetic_speakers_separates_held_out_speakers(tmp_path, capsys, preset, overrides):
    corpus = tmp_path / "corpus"
    assert (
        synth.main(
            [
                str(corpus),
                "--speakers",
                str(TRAIN_SPEAKERS + TEST_SPEAKERS),
                "--utterances",
                str(UTTERANCES),
                "--seconds",
                "3.0",
                "--held-out",
                str(TEST_SPEAKERS),
            ]
        )
        == 0
    )
    assert cli_main(["prepare", str(corpus / "train"), "-o", str(tmp_path / "lists")]) == 0
    config = tmp_path / "synthetic.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": {"preset": preset, "overrides": overrides},
                "data": {
                    "wav_scp": str(tmp_path / "lists" / "wav.scp"),
                    "utt2spk": str(tmp_path / "lists" / "utt2spk"),
                    "crop_seconds": 1.0,
                    "batch_size": 32,
                    "num_workers": 1,
                    "speed_perturb": [],
                },
                "augment": {"prob": 0.0},
                "loss": {
                    "type": "aam",
                    "scale": 32,
                    "margin": 0.2,
                    "margin_increase_start_epoch": 2,
                    "margin_fix_epoch": 6,
                },
                "optimizer": {"lr": 0.2, "final_lr": 0.005, "warmup_epochs": 1},
                "train": {
                    "output_dir": str(tmp_path / "exp"),
                    "epochs": 12,
                    "checkpoint_every": 20,
                    "log_every": 8,
                    "keep_checkpoints": 3,
                    "progress": False,
                },
            }
        )
    )

    # the untrained model is the training run's starting point: same seed (train.seed, default 42), same config
    untrained = tmp_path / "untrained.pt"
    torch.manual_seed(42)
    redimnet.save_checkpoint(redimnet.build(preset, **overrides), untrained)
    before = _held_out_eer(capsys, corpus, untrained, "before")

    assert cli_main(["train", "--config", str(config)]) == 0
    averaged = tmp_path / "exp" / "avg3.pt"
    assert cli_main(["average", str(tmp_path / "exp"), "--last", "3", "-o", str(averaged)]) == 0
    after = _held_out_eer(capsys, corpus, averaged, "after")

    with capsys.disabled():
        print(
            f"\n{preset}: held-out EER on {TEST_SPEAKERS} unseen synthetic speakers: untrained {100 * before:.1f} %, "
            f"trained {100 * after:.1f} %"
        )
    log = (tmp_path / "exp" / "train_log.csv").read_text().splitlines()
    first, last = (dict(zip(log[0].split(","), row.split(","))) for row in (log[1], log[-1]))
    assert float(last["loss"]) < float(first["loss"]) and float(last["accuracy"]) > 0.5
    assert after < 0.15 and after < 0.6 * before
