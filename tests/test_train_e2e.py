"""End to end on synthetic voices, through the user-facing commands:

``python -m redimnet.testing.synth`` -> ``redimnet prepare`` -> ``redimnet train`` -> ``redimnet average``
-> ``redimnet embed`` + ``redimnet eval`` on held-out speakers, before and after training, with the
shipped recipes for a small model on synthetic speakers (``synthetic_small``, ``redimnet2_synthetic_small``).

Takes a few minutes on 2 CPU cores; it is part of the normal test run on purpose.
"""

import json

import pytest
import torch

import redimnet
from redimnet.cli import main as cli_main
from redimnet.models.families import build_model
from redimnet.recipes import recipe_path
from redimnet.testing import synth
from redimnet.training.config import load_config

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
                "--decode-workers",
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


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["synthetic_small", "redimnet2_synthetic_small"], ids=["redimnet", "redimnet2"])
def test_training_on_synthetic_speakers_separates_held_out_speakers(tmp_path, capsys, recipe):
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
    where = [
        f"data.wav_scp={tmp_path / 'lists' / 'wav.scp'}",
        f"data.utt2spk={tmp_path / 'lists' / 'utt2spk'}",
        f"train.output_dir={tmp_path / 'exp'}",
        "train.progress=false",
    ]
    config = load_config(recipe_path(recipe), where)

    # the untrained model is the training run's starting point: same seed (train.seed), same config
    untrained = tmp_path / "untrained.pt"
    torch.manual_seed(config.train.seed)
    redimnet.save_checkpoint(build_model(config.model_config()), untrained)
    before = _held_out_eer(capsys, corpus, untrained, "before")

    assert cli_main(["train", "--config", recipe, *(part for value in where for part in ("--set", value))]) == 0
    averaged = tmp_path / "exp" / "avg3.pt"
    assert cli_main(["average", str(tmp_path / "exp"), "--last", "3", "-o", str(averaged)]) == 0
    after = _held_out_eer(capsys, corpus, averaged, "after")

    with capsys.disabled():
        print(
            f"\n{recipe}: held-out EER on {TEST_SPEAKERS} unseen synthetic speakers: untrained {100 * before:.1f} %, "
            f"trained {100 * after:.1f} %"
        )
    log = (tmp_path / "exp" / "train_log.csv").read_text().splitlines()
    first, last = (dict(zip(log[0].split(","), row.split(","))) for row in (log[1], log[-1]))
    assert float(last["loss"]) < float(first["loss"]) and float(last["accuracy"]) > 0.5
    assert after < 0.15 and after < 0.6 * before
