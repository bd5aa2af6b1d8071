"""ReDimNet2 release files load through ``redimnet.load_checkpoint`` and reproduce the
official implementation's outputs, fixture by fixture (``../shared/fixtures/redimnet2``)."""

import numpy as np
import pytest
import torch
from conftest import FIXTURES, require_fixtures

import redimnet
from redimnet.fast.optimize import optimize_for_inference

REDIMNET2 = FIXTURES / "redimnet2"
FIXTURE_NAMES = require_fixtures("redimnet2")

TOLERANCE = 1e-4  # max|ours - expected| <= TOLERANCE * max|expected|
# The "tf" and "tf_spec" front ends' low-power bins depend on float32 summation order.
TF_FEATURE_TOLERANCE = 5e-4

# Keyword arguments of the official ReDimNet2Wrap constructor (commit ffe8f27).
OFFICIAL_OPTIONS = {
    "F",
    "C",
    "causal",
    "spec_in_channels",
    "out_channels",
    "block_1d_type",
    "block_2d_type",
    "compress_tconvs",
    "return_2d_output",
    "use_freq_pos_enc",
    "fm_weigthing_type",
    "stages_setup",
    "group_divisor",
    "dual_agg",
    "agg_gnorm",
    "embed_dim",
    "num_classes",
    "feat_agg_dropout",
    "head_activation",
    "hop_length",
    "pooling_func",
    "pad_right_samples",
    "before_pool_offset",
    "feat_type",
    "global_context_att",
    "emb_bn",
    "spec_params",
    "return_all_outputs",
}


def relative_error(ours: torch.Tensor, expected: np.ndarray) -> float:
    assert tuple(ours.shape) == expected.shape, f"shape {tuple(ours.shape)} != expected {expected.shape}"
    return float(np.abs(ours.detach().numpy() - expected).max() / np.abs(expected).max())


@pytest.fixture(scope="module", params=FIXTURE_NAMES)
def fixture(request, one_thread):
    name = request.param
    model = redimnet.load_checkpoint(REDIMNET2 / f"{name}.pt")
    return name, model, dict(np.load(REDIMNET2 / f"{name}.npz"))


def test_recognised_as_redimnet2(fixture):
    name, model, _ = fixture
    assert isinstance(model, redimnet.ReDimNet2), name
    assert not model.training, "load_checkpoint must return the model in eval mode"


@pytest.mark.parametrize("which", ["batch", "single"])
def test_outputs_match_official(fixture, which):
    name, model, expected = fixture
    wave = torch.from_numpy(expected[f"wave_{which}"])
    expected_features = expected[f"features_{which}"]
    with torch.no_grad():
        features = model.features(wave)
        # The official front ends give [N, 1, F, frames] in two cases; ours always [N, F, frames].
        if expected_features.ndim == 4:
            expected_features = expected_features[:, 0]
        backbone = model.backbone(
            torch.from_numpy(expected_features).unsqueeze(1), return_all_outputs=model.config.return_all_outputs
        )
        output = model(wave)
    if model.config.return_all_outputs:
        backbone, _ = backbone
        embedding, outputs_1d = output
        maps = torch.stack(outputs_1d)
    else:
        embedding, maps = output, None
    feature_tolerance = TOLERANCE if model.config.frontend == "pt" else TF_FEATURE_TOLERANCE
    errors = {
        "features": (relative_error(features, expected_features), feature_tolerance),
        "backbone": (relative_error(backbone, expected[f"backbone_{which}"]), TOLERANCE),
        "embedding": (relative_error(embedding, expected[f"embedding_{which}"]), TOLERANCE),
    }
    if f"outputs1d_{which}" in expected:
        assert maps is not None, f"{name}: the fixture has 1-D maps but the model returned none"
        errors["outputs1d"] = (relative_error(maps, expected[f"outputs1d_{which}"]), TOLERANCE)
    bad = {k: v for k, (v, limit) in errors.items() if v > limit}
    assert not bad, f"{name}/{which}: relative errors above tolerance: {bad}"


@pytest.mark.slow
@pytest.mark.parametrize("which", ["batch", "single"])
def test_optimized_path_matches_official(fixture, which):
    """The optimised inference form (time-major, folded batch norms, fused blocks) on every fixture."""
    name, model, expected = fixture
    fast = optimize_for_inference(model, strict=True)
    assert getattr(fast, "is_inference_form", False)
    with torch.no_grad():
        output = fast(torch.from_numpy(expected[f"wave_{which}"]))
    if model.config.return_all_outputs:
        output, maps = output
        assert relative_error(torch.stack(maps), expected[f"outputs1d_{which}"]) <= TOLERANCE, name
    assert relative_error(output, expected[f"embedding_{which}"]) <= TOLERANCE, name


def test_batch_items_are_independent(fixture):
    name, model, expected = fixture
    wave = torch.from_numpy(expected["wave_batch"])
    with torch.no_grad():
        together = model(wave)
        alone = [model(wave[i : i + 1]) for i in range(len(wave))]
    if model.config.return_all_outputs:
        together, alone = together[0], [a[0] for a in alone]
    assert relative_error(torch.cat(alone), together.numpy()) <= TOLERANCE


@pytest.mark.slow
def test_save_writes_the_official_file_layout(fixture, tmp_path):
    """A saved model has exactly the official file's keys, shapes and tensors, and a
    model_config the official constructor accepts, so the official class loads it strictly."""
    name, model, _ = fixture
    original = torch.load(REDIMNET2 / f"{name}.pt", weights_only=True)
    path = redimnet.save_checkpoint(model, tmp_path / f"{name}.pt")
    written = torch.load(path, weights_only=True)
    assert set(written) == {"model_config", "state_dict"}
    assert set(written["state_dict"]) == set(original["state_dict"])
    for key, tensor in original["state_dict"].items():
        assert written["state_dict"][key].shape == tensor.shape, key
        assert torch.equal(written["state_dict"][key], tensor), key
    assert set(written["model_config"]) <= OFFICIAL_OPTIONS
    assert written["model_config"]["causal"] == "none"  # the official default (False) cannot run
    assert redimnet.ReDimNet2Config.from_dict(written["model_config"]) == redimnet.ReDimNet2Config.from_dict(
        original["model_config"]
    )
    again = redimnet.load_checkpoint(path)
    assert isinstance(again, redimnet.ReDimNet2)
