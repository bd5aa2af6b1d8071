"""Outputs of official checkpoints match the original implementation's, fixture by fixture."""

import numpy as np
import pytest
import torch
from conftest import OFFICIAL, require_fixtures

import redimnet

FIXTURE_NAMES = require_fixtures()
TOLERANCE = 1e-4  # max|ours - expected| <= TOLERANCE * max|expected|


def relative_error(ours: torch.Tensor, expected: np.ndarray) -> float:
    assert tuple(ours.shape) == expected.shape, f"shape {tuple(ours.shape)} != expected {expected.shape}"
    return float(np.abs(ours.detach().numpy() - expected).max() / np.abs(expected).max())


@pytest.fixture(scope="module", params=FIXTURE_NAMES)
def fixture(request):
    name = request.param
    model = redimnet.load_checkpoint(OFFICIAL / f"{name}.pt")
    return name, model, dict(np.load(OFFICIAL / f"{name}.npz"))


@pytest.mark.parametrize("which", ["batch", "single"])
def test_outputs_match_original(fixture, which):
    name, model, expected = fixture
    assert not model.training, "load_checkpoint must return the model in eval mode"
    wave = torch.from_numpy(expected[f"wave_{which}"])
    with torch.no_grad():
        features = model.features(wave)
        backbone = model.backbone(features.unsqueeze(1))
        embedding = model(wave)
    errors = {
        "features": relative_error(features, expected[f"features_{which}"]),
        "backbone": relative_error(backbone, expected[f"backbone_{which}"]),
        "embedding": relative_error(embedding, expected[f"embedding_{which}"]),
    }
    bad = {k: v for k, v in errors.items() if v > TOLERANCE}
    assert not bad, f"{name}/{which}: relative errors above {TOLERANCE}: {bad}"


def test_batch_items_are_independent(fixture):
    """Each waveform of a batch gives the same embedding alone as in the batch."""
    name, model, expected = fixture
    wave = torch.from_numpy(expected["wave_batch"])
    with torch.no_grad():
        together = model(wave)
        alone = torch.cat([model(wave[i : i + 1]) for i in range(len(wave))])
    assert relative_error(alone, together.numpy()) <= TOLERANCE


def test_save_writes_the_original_file_layout(fixture, tmp_path):
    """Saving a loaded official checkpoint reproduces its keys, tensors and config exactly,
    so the original code loads our files as it loads its own."""
    name, model, _ = fixture
    original = torch.load(OFFICIAL / f"{name}.pt", weights_only=True)
    path = redimnet.save_checkpoint(model, tmp_path / f"{name}.pt")
    written = torch.load(path, weights_only=True)
    assert set(written["state_dict"]) == set(original["state_dict"])
    for key, tensor in original["state_dict"].items():
        assert torch.equal(written["state_dict"][key], tensor), key
    ours = redimnet.ModelConfig.from_dict(written["model_config"])
    theirs = redimnet.ModelConfig.from_dict(original["model_config"])
    assert ours == theirs
    for key in original["model_config"]:
        assert key in written["model_config"], key


def test_all_outputs_option_returns_every_stage(fixture):
    name, model, expected = fixture
    config = model.config.replace(return_all_outputs=True)
    wide = redimnet.ReDimNet(config).eval()
    wide.load_state_dict(model.state_dict())
    wave = torch.from_numpy(expected["wave_single"])
    with torch.no_grad():
        embedding, outputs = wide(wave)
    assert relative_error(embedding, expected["embedding_single"]) <= TOLERANCE
    assert len(outputs) == len(config.stages_setup) + 2  # stem, every stage, final mixture
    frames = expected["features_single"].shape[-1]
    for output in outputs:
        assert tuple(output.shape) == (1, config.width, frames)
    if config.out_channels is None:
        assert relative_error(outputs[-1], expected["backbone_single"]) <= TOLERANCE
