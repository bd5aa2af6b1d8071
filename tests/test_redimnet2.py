"""ReDimNet2 without the reference fixtures: option validation, family detection, strict loading."""

import pytest
import torch

import redimnet
from redimnet.models.families import detect_family

TINY = dict(
    F=16,
    C=4,
    feat_type="pt",
    hop_length=160,
    pooling_func="ASTP",
    embed_dim=32,
    stages_setup=[((1, 1), 1, 1, [(3, 3)], 4), ((2, 2), 1, 2, [(3, 3)], None)],
)


def tiny(**changes) -> redimnet.ReDimNet2:
    torch.manual_seed(0)
    return redimnet.ReDimNet2({**TINY, **changes}).eval()


@pytest.mark.parametrize(
    "option, value, words",
    [
        ("causal", False, "causal='none'"),
        ("causal", "full", "causal='none'"),
        ("fm_weigthing_type", "N", "'NC'"),
        ("feat_type", "pt_stft", "pt_stft"),
        ("pooling_func", "TSTP_var", "TSTP_var"),
        ("spec_in_channels", 2, "spec_in_channels=1"),
        ("block_2d_type", "resnet", "block_2d_type"),
        ("stages_setup", [((3, 1), 1, 1, [(3, 3)], None)], "freq_stride 3 does not divide the 16"),
        ("stages_setup", [(2, 1, 1, [(3, 3)], None)], "pair (freq_stride, time_stride)"),
        ("stages_setup", [((1, 1), 1, 0, [(3, 3)], None)], "conv_exp"),
        ("stages_setup", [((1, 1), 1, 1, [(3, 3)], 3)], "attention heads"),
        ("spec_params", {"spec_norm": None}, "spec_norm"),
        ("spec_params", {"hop_length": 100}, "hop_length"),
        ("pad_right_samples", -1, "pad_right_samples"),
    ],
)
def test_rejects_options_the_official_code_cannot_run(option, value, words):
    with pytest.raises(ValueError) as error:
        redimnet.ReDimNet2Config(**{**TINY, option: value})
    assert words in str(error.value)


def test_tf_spec_needs_its_bin_count():
    with pytest.raises(ValueError, match="F must be 128"):
        redimnet.ReDimNet2Config(**{**TINY, "feat_type": "tf_spec"})
    model = redimnet.ReDimNet2({**TINY, "F": 128, "feat_type": "tf_spec"}).eval()
    with torch.no_grad():
        assert model.features(torch.randn(1, 16000)).shape == (1, 128, 99)  # (16000 + 2 * 80 - 400) // 160 + 1


def test_unknown_option_is_named():
    with pytest.raises(ValueError, match="unknown ReDimNet2 option.*tf_optimized_arch"):
        redimnet.ReDimNet2Config.from_dict({**TINY, "tf_optimized_arch": False})


def test_config_round_trips_through_its_dict():
    config = redimnet.ReDimNet2Config(**TINY)
    assert redimnet.ReDimNet2Config.from_dict(config.to_dict()) == config
    assert config.to_dict()["stages_setup"][1][0] == (2, 2)


def test_frames_are_cut_to_the_time_stride():
    model = tiny(return_2d_output=True, out_channels=6)
    with torch.no_grad():
        features = model.features(torch.randn(2, 16160))  # 102 frames, time stride 2
        out = model.backbone(features.unsqueeze(1))
        embedding = model(torch.randn(2, 16160))
    assert features.shape == (2, 16, 102)
    assert out.shape == (2, 6, 8, 102)
    assert embedding.shape == (2, 32)


def test_family_is_read_from_the_config():
    assert detect_family(redimnet.ReDimNet2Config(**TINY).to_dict()) == "redimnet2"
    assert detect_family(redimnet.get_preset("b0").config.to_dict()) == "redimnet"
    assert detect_family({"stages_setup": [((1, 1), 1, 1, [(3, 3)], None)]}) == "redimnet2"


def test_save_and_load_both_families(tmp_path):
    v2 = tiny()
    path = redimnet.save_checkpoint(v2, tmp_path / "v2.pt")
    loaded = redimnet.load_checkpoint(path)
    assert isinstance(loaded, redimnet.ReDimNet2)
    wave = torch.randn(1, 12000)
    with torch.no_grad():
        assert torch.equal(loaded(wave), v2(wave))
    v1 = redimnet.build("b0")
    assert type(redimnet.load_checkpoint(redimnet.save_checkpoint(v1, tmp_path / "v1.pt"))) is redimnet.ReDimNet


def test_family_argument_forces_the_family(tmp_path):
    path = redimnet.save_checkpoint(tiny(), tmp_path / "v2.pt")
    assert isinstance(redimnet.load_checkpoint(path, family="redimnet2"), redimnet.ReDimNet2)
    with pytest.raises(redimnet.CheckpointError, match="invalid model_config for ReDimNet:.*causal"):
        redimnet.load_checkpoint(path, family="redimnet")
    with pytest.raises(ValueError, match="not a model family"):
        redimnet.load_checkpoint(path, family="redimnet3")


def _rewrite(path, change):
    content = torch.load(path, weights_only=True)
    change(content["state_dict"])
    torch.save(content, path)


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda sd: sd.pop("backbone.stage1.2.weight"), "missing keys: backbone.stage1.2.weight"),
        (lambda sd: sd.update({"backbone.stage9.0.w": torch.zeros(1)}), "unexpected keys: backbone.stage9.0.w"),
        (
            lambda sd: sd.update({"backbone.fin_wght1d.w": torch.zeros(1, 2, 64, 1)}),
            "backbone.fin_wght1d.w has shape (1, 2, 64, 1), expected (1, 3, 64, 1)",
        ),
    ],
)
def test_loading_is_strict(tmp_path, change, words):
    path = redimnet.save_checkpoint(tiny(), tmp_path / "v2.pt")
    _rewrite(path, change)
    with pytest.raises(redimnet.CheckpointError) as error:
        redimnet.load_checkpoint(path)
    assert words in str(error.value)


def test_front_end_buffers_are_in_the_file(tmp_path):
    path = redimnet.save_checkpoint(tiny(feat_type="tf"), tmp_path / "v2.pt")
    keys = set(torch.load(path, weights_only=True)["state_dict"])
    assert {
        "spec.torchfbank.1.flipped_filter",
        "spec.torchfbank.2.real_kernel_pt",
        "spec.torchfbank.2.image_kernel_pt",
        "spec.torchfbank.2.melbanks_pt",
    } <= keys


def test_embedder_runs_redimnet2_models():
    """The Embedder takes a ReDimNet2 as it is, return_all_outputs included (embedding kept)."""
    import numpy as np

    wave = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1
    for model in (tiny(), tiny(return_all_outputs=True, pad_right_samples=100)):
        embedder = redimnet.Embedder(model, device="cpu")
        out = embedder.embed(wave, 16000)
        with torch.no_grad():
            direct = model(torch.from_numpy(wave)[None])
        direct = direct[0] if isinstance(direct, tuple) else direct
        assert out.shape == (32,)
        assert np.abs(out - direct[0].numpy()).max() <= 1e-4 * np.abs(direct.numpy()).max()


@pytest.mark.parametrize(
    "changes",
    [
        dict(dual_agg=True),  # the 2D path's map must not be changed by the 1D block's in-place residual
        dict(dual_agg=True, agg_gnorm=True, return_2d_output=True, out_channels=6),
        dict(block_2d_type="convnext_like", use_freq_pos_enc=True, pooling_func="TMAP", compress_tconvs=False),
        dict(block_1d_type="fc", group_divisor=None, before_pool_offset=3, emb_bn=True),
    ],
)
def test_optimized_form_matches_plain(changes):
    from redimnet.fast.optimize import optimize_for_inference

    model = tiny(**changes)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    fast = optimize_for_inference(model, strict=True)
    wave = torch.randn(2, 12345)
    with torch.no_grad():
        plain, optimized = model(wave), fast(wave)
    assert (optimized - plain).abs().max() <= 1e-4 * plain.abs().max()
