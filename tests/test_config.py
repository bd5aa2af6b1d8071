"""Every option of the original constructor is accepted, validated and honoured."""

import itertools

import pytest
import torch

import redimnet
from redimnet import ModelConfig

SMALL = dict(
    F=24,
    C=4,
    hop_length=160,
    embed_dim=32,
    group_divisor=2,
    stages_setup=[(1, 1, 1, [(3, 3)], 4), (2, 1, 2, [(3, 3)], 4), (3, 1, 1, [(3, 3)], 2)],
)


def small(**changes) -> ModelConfig:
    return ModelConfig.from_dict({**SMALL, **changes})


def run(config: ModelConfig, train: bool = False, samples: int = 8000):
    model = redimnet.ReDimNet(config).train(train)
    return model(torch.randn(2, samples) * 0.1)


@pytest.mark.parametrize(
    "block_2d, block_1d",
    list(
        itertools.product(
            ["convnext_like", "convnext_like_relu", "basic_resnet", "basic_resnet_fwse"],
            ["fc", "conv", "att", "conv+att"],
        )
    ),
)
def test_every_block_combination_runs(block_2d, block_1d):
    out = run(small(block_2d_type=block_2d, block_1d_type=block_1d))
    assert out.shape == (2, 32) and torch.isfinite(out).all()


@pytest.mark.parametrize("pooling", ["TAP", "TSDP", "TSTP", "ASTP", "MHASTP", "MQMHASTP"])
@pytest.mark.parametrize("context", [False, True])
def test_every_pooling_runs(pooling, context):
    model = redimnet.ReDimNet(small(pooling_func=pooling, global_context_att=context)).eval()
    out = model(torch.randn(2, 8000))
    assert out.shape == (2, 32)
    expected_dim = {"TAP": 1, "TSDP": 1, "TSTP": 2, "ASTP": 2, "MHASTP": 2, "MQMHASTP": 4}[pooling] * 96
    assert model.pool.out_dim == expected_dim


def test_group_divisor_none_uses_dense_convolutions():
    model = redimnet.ReDimNet(small(group_divisor=None, block_2d_type="basic_resnet"))
    block = model.backbone.stages[0].blocks[0]
    assert block.conv1.spatial.groups == 1 and block.conv1.pointwise is None
    grouped = redimnet.ReDimNet(small(group_divisor=2, block_2d_type="basic_resnet")).backbone.stages[0].blocks[0]
    assert grouped.conv1.spatial.groups == 2 and grouped.conv1.pointwise is not None


def test_out_channels_adds_projection():
    model = redimnet.ReDimNet(small(out_channels=40)).eval()
    features = model.features(torch.randn(1, 8000))
    assert model.backbone(features.unsqueeze(1)).shape[1] == 40


def test_classification_head_and_activation():
    probs = redimnet.ReDimNet(small(num_classes=5, head_activation="nn.Softmax(dim=-1)")).eval()(torch.randn(3, 8000))
    assert probs.shape == (3, 5)
    assert torch.allclose(probs.sum(dim=-1), torch.ones(3), atol=1e-5)
    gated = redimnet.ReDimNet(small(num_classes=4, head_activation="sigmoid")).eval()(torch.randn(2, 8000))
    assert ((gated > 0) & (gated < 1)).all()


def test_emb_bn_and_dropouts_are_applied():
    model = redimnet.ReDimNet(small(emb_bn=True, feat_agg_dropout=0.5, num_classes=3, class_dropout=0.5))
    assert model.embedding_norm is not None
    model.train()
    torch.manual_seed(0)
    wave = torch.randn(4, 8000)
    first, second = model(wave), model(wave)
    assert not torch.allclose(first, second), "dropout must make training passes differ"
    model.eval()
    assert torch.equal(model(wave), model(wave))


def test_tf_front_end_and_aliases():
    for feat_type in ("tf", "tf_mel"):
        assert type(redimnet.ReDimNet(small(feat_type=feat_type)).frontend).__name__ == "TFMelFrontEnd"
    assert type(redimnet.ReDimNet(small(feat_type="pt_mel")).frontend).__name__ == "MelSpectrogramFrontEnd"


def test_spec_params_reach_the_front_end():
    model = redimnet.ReDimNet(
        small(
            spec_params={
                "n_fft": 400,
                "win_length": 320,
                "f_min": 0,
                "f_max": 8000,
                "do_preemph": False,
                "norm_signal": True,
                "spec_norm": "bn",
            }
        )
    )
    assert model.frontend.n_fft == 400 and model.frontend.preemphasis is None
    assert isinstance(model.frontend.spec_norm, torch.nn.BatchNorm1d)
    run(model.config)


def test_round_trip_through_dict():
    config = small(num_classes=7, emb_bn=True, pooling_func="MQMHASTP")
    again = ModelConfig.from_dict(config.to_dict())
    assert again == config
    assert config.to_dict()["stages_setup"][1] == (2, 1, 2, [(3, 3)], 4)


@pytest.mark.parametrize(
    "changes, named",
    [
        (dict(colour="red"), "colour"),
        (dict(block_2d_type="mobilenet"), "block_2d_type"),
        (dict(block_1d_type="lstm"), "block_1d_type"),
        (dict(pooling_func="XVEC"), "pooling_func"),
        (dict(feat_type="mfcc"), "feat_type"),
        (dict(F=0), "F"),
        (dict(C=2.5), "C"),
        (dict(embed_dim=-1), "embed_dim"),
        (dict(group_divisor=0), "group_divisor"),
        (dict(group_divisor=64), "group_divisor"),
        (dict(out_channels=0), "out_channels"),
        (dict(num_classes=0), "num_classes"),
        (dict(class_dropout=1.5), "class_dropout"),
        (dict(feat_agg_dropout=-0.1), "feat_agg_dropout"),
        (dict(num_classes=3, head_activation="os.system('x')"), "head_activation"),
        (dict(head_activation="sigmoid"), "head_activation"),
        (dict(hop_length=0), "hop_length"),
        (dict(global_context_att="yes"), "global_context_att"),
        (dict(emb_bn=1), "emb_bn"),
        (dict(return_all_outputs=None), "return_all_outputs"),
        (dict(tf_optimized_arch=True), "tf_optimized_arch"),
        (dict(stages_setup=[]), "stages_setup"),
        (dict(stages_setup=[(4, 1, 1, [(3, 3)], 4)]), "stride"),
        (dict(stages_setup=[(1, 1, 1, [(3, 3)])]), "stages_setup[0]"),
        (dict(stages_setup=[(1, -1, 1, [(3, 3)], 4)]), "num_blocks"),
        (dict(stages_setup=[(1, 1, 0, [(3, 3)], 4)]), "conv_exp"),
        (dict(stages_setup=[(1, 1, 1, [(3, 3)], 0)]), "att_block_red"),
        (dict(stages_setup=[(1, 1, 1, "3x3", 4)]), "kernel_sizes"),
        (dict(F=28), "stride"),
        (dict(stages_setup=[(1, 1, 1, [(3, 3)], 5)]), "att_block_red"),
        (dict(spec_params={"window": "hann"}), "window"),
        (dict(spec_params={"n_mels": 80}), "n_mels"),
        (dict(spec_params={"spec_norm": "l2"}), "spec_norm"),
        (dict(spec_params={"freq_mask_width": (5, 2)}), "freq_mask_width"),
        (dict(spec_params={"win_length": 1024}), "win_length"),
        (dict(feat_type="tf", spec_params={"spec_norm": "mn"}), "spec_norm"),
        (dict(spec_params="fast"), "spec_params"),
        (dict(pooling_func="MQMHASTP", out_channels=20), "MQMHASTP"),
    ],
)
def test_bad_options_raise_value_error_naming_them(changes, named):
    with pytest.raises(ValueError) as error:
        small(**changes)
    assert named in str(error.value)


def test_model_accepts_keyword_options():
    model = redimnet.ReDimNet(**SMALL)
    assert model.config == small()
    with pytest.raises(ValueError, match="frequency"):
        redimnet.ReDimNet(**SMALL, frequency=3)


def test_defaults_match_the_original_constructor():
    config = ModelConfig()
    assert (config.F, config.C, config.group_divisor, config.hop_length) == (72, 16, 4, 160)
    assert config.block_1d_type == "att" and config.pooling_func == "ASTP" and config.out_channels is None
    assert [s.as_original()[:3] + (s.att_block_red,) for s in config.stages_setup] == [
        (1, 2, 1, 12),
        (2, 2, 1, 12),
        (1, 3, 1, 12),
        (2, 4, 1, 8),
        (1, 4, 1, 8),
        (2, 4, 1, 4),
    ]
    assert run(config, samples=16000).shape == (2, 192)


def test_short_input_gives_an_embedding_in_training_mode():
    out = run(small(), train=True, samples=4000)
    assert out.shape == (2, 32)
    out.sum().backward()
