"""Every block owns its inference form: the option matrix of ModelConfig, fast vs plain.

The matrix is a pairwise covering design over the options (every value of every
option meets every value of every other option in at least one case), built
from the option lists of :mod:`redimnet.models.redimnet.config`, so a new block type or pooling
joins it by itself.  Models are tiny (C=8, F=12, 0.3 s inputs, one thread).
A block without an inference form, or whose form computes something else than
its ``forward``, fails here.
"""

import itertools
import warnings

import pytest
import torch
from torch import nn

import redimnet
from redimnet.fast import InferenceFormError, build_inference_form, inference_form
from redimnet.fast.adapters import PlainBlock1d, PlainBlock2d
from redimnet.fast.optimize import OptimizationWarning, OptimizedReDimNet, OptimizeError, optimize_for_inference
from redimnet.layers.freq_se import FrequencySE
from redimnet.layers.options import BLOCK_1D_TYPES, BLOCK_2D_TYPES
from redimnet.models.redimnet.config import POOLING_FUNCS

TOLERANCE = 1e-5  # max|fast - plain| <= TOLERANCE * max|plain|

POOLINGS = [(name, False) for name in POOLING_FUNCS] + [("ASTP", True)]  # (pooling_func, global_context_att)
HEADS = {
    "embedding": {},
    "classes": {"num_classes": 5},
    "log_softmax": {"num_classes": 5, "head_activation": "nn.LogSoftmax(dim=-1)"},
}
# (stride, num_blocks, conv_exp, att) per stage; "att" takes the case's att_block_red, None none.
LAYOUTS = {
    "strides-1-2-3": [(1, 1, 1, "att"), (2, 1, 2, None), (3, 2, 1, "att")],
    "stride-3-expanded": [(3, 1, 2, "att"), (2, 0, 1, None)],
    "one-stage": [(2, 1, 1, "att")],
}
FACTORS = {
    "block_2d_type": list(BLOCK_2D_TYPES),
    "block_1d_type": list(BLOCK_1D_TYPES),
    "pooling": POOLINGS,
    "feat_type": ["pt", "tf"],
    "out_channels": [None, 32],
    "emb_bn": [False, True],
    "head": list(HEADS),
    "group_divisor": [None, 1, 4],
    "layout": list(LAYOUTS),
    "att_block_red": [4, 8],
    "return_all_outputs": [False, True],
}


def pairwise_cases(factors):
    """A deterministic greedy covering array of strength 2 over ``factors`` (name -> values)."""
    names = list(factors)
    uncovered = {
        ((a, i), (b, j))
        for a, b in itertools.combinations(names, 2)
        for i in range(len(factors[a]))
        for j in range(len(factors[b]))
    }
    cases = []
    while uncovered:
        (a, i), (b, j) = min(uncovered)
        case = {a: i, b: j}
        for name in names:
            if name in case:
                continue
            gains = [
                sum(((n, case[n]), (name, v)) in uncovered or ((name, v), (n, case[n])) in uncovered for n in case)
                for v in range(len(factors[name]))
            ]
            case[name] = gains.index(max(gains))
        uncovered -= {((x, case[x]), (y, case[y])) for x, y in itertools.combinations(names, 2)}
        cases.append({name: factors[name][case[name]] for name in names})
    return cases


CASES = pairwise_cases(FACTORS)


def case_id(case) -> str:
    pooling, context = case["pooling"]
    return "-".join(
        [
            case["block_2d_type"],
            case["block_1d_type"],
            pooling + ("+gc" if context else ""),
            case["feat_type"],
            f"out{case['out_channels']}",
            "bn" if case["emb_bn"] else "nobn",
            case["head"],
            f"gd{case['group_divisor']}",
            case["layout"],
            f"red{case['att_block_red']}",
            "all" if case["return_all_outputs"] else "last",
        ]
    )


def make_config(case) -> redimnet.ModelConfig:
    pooling, context = case["pooling"]
    stages = [
        (stride, blocks, exp, [(3, 3)], case["att_block_red"] if att else None)
        for stride, blocks, exp, att in LAYOUTS[case["layout"]]
    ]
    return redimnet.ModelConfig(
        F=12,
        C=8,
        embed_dim=16,
        stages_setup=stages,
        block_2d_type=case["block_2d_type"],
        block_1d_type=case["block_1d_type"],
        pooling_func=pooling,
        global_context_att=context,
        feat_type=case["feat_type"],
        out_channels=case["out_channels"],
        emb_bn=case["emb_bn"],
        group_divisor=case["group_divisor"],
        return_all_outputs=case["return_all_outputs"],
        **HEADS[case["head"]],
    )


def perturb(model: nn.Module, seed: int) -> nn.Module:
    """Non-trivial norms, biases and stage-mixer weights, so that a form ignoring one shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.ndim == 1 or name.endswith("logits"):
                parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.3)
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.3)
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
    return model.eval()


def relative_error(ours: torch.Tensor, expected: torch.Tensor) -> float:
    assert ours.shape == expected.shape
    return float((ours - expected).abs().max() / expected.abs().max())


def fast_vs_plain(config: redimnet.ModelConfig, seed: int = 0):
    """Relative errors of the optimised model against the plain one (each output, batches 2 and 1)."""
    torch.manual_seed(seed)
    plain = perturb(redimnet.ReDimNet(config), seed)
    fast = optimize_for_inference(plain, strict=True)
    assert isinstance(fast, OptimizedReDimNet)
    wave = torch.randn(2, 4800, generator=torch.Generator().manual_seed(seed)) * 0.1
    errors = []
    with torch.inference_mode():
        for batch in (wave, wave[:1]):  # batches of 2+ take the oneDNN-blocked path where it applies
            expected, ours = plain(batch), fast(batch)
            if config.return_all_outputs:
                (expected, expected_all), (ours, ours_all) = expected, ours
                assert len(ours_all) == len(expected_all)
                errors += [relative_error(a, b) for a, b in zip(ours_all, expected_all)]
            errors.append(relative_error(ours, expected))
    return errors


def test_the_matrix_covers_every_option_value_and_every_pair():
    for name, values in FACTORS.items():
        assert {repr(case[name]) for case in CASES} == {repr(v) for v in values}, name
    for a, b in itertools.combinations(FACTORS, 2):
        seen = {(repr(case[a]), repr(case[b])) for case in CASES}
        assert len(seen) == len(FACTORS[a]) * len(FACTORS[b]), (a, b)
    assert len(CASES) < 60  # pairwise, not the full product


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[case_id(case) for case in CASES])
def test_fast_form_matches_plain_model(case, one_thread):
    errors = fast_vs_plain(make_config(case))
    assert max(errors) <= TOLERANCE, errors


def test_an_out_of_date_form_fails_the_check(monkeypatch, one_thread):
    """If a plain block's forward changes and its form does not, the comparison sees it."""
    case = next(c for c in CASES if c["block_2d_type"] == "basic_resnet_fwse")
    config = make_config(case)
    assert max(fast_vs_plain(config)) <= TOLERANCE
    changed = FrequencySE.forward
    monkeypatch.setattr(FrequencySE, "forward", lambda self, x: changed(self, x) * 1.01)
    assert max(fast_vs_plain(config)) > 10 * TOLERANCE


class Doubling(nn.Module):
    """A block this project does not know: no inference form."""

    def forward(self, x):
        return 2 * x


def model_with_unknown_block():
    torch.manual_seed(0)
    model = redimnet.build("b0").eval()
    model.backbone.stages[1].blocks[0] = Doubling()
    return model


def test_a_block_without_a_form_stops_the_walk_with_its_name():
    with pytest.raises(
        InferenceFormError,
        match=r"backbone\.stages\.1\.blocks\.0 \(Doubling\).*no inference "
        r"form.*for_inference\(\)",
    ) as caught:
        build_inference_form(model_with_unknown_block())
    assert caught.value.block == "backbone.stages.1.blocks.0 (Doubling)"
    with pytest.raises(InferenceFormError, match=r"^Doubling: .*no inference form"):
        inference_form(Doubling())  # converted on its own: named by class


def test_strict_raises_and_the_default_warns_and_runs_the_plain_model():
    model = model_with_unknown_block()
    with pytest.raises(OptimizeError, match=r"backbone\.stages\.1\.blocks\.0 \(Doubling\)"):
        optimize_for_inference(model, strict=True)
    with pytest.warns(OptimizationWarning, match=r"backbone\.stages\.1\.blocks\.0 \(Doubling\).*plain"):
        fallback = optimize_for_inference(model)
    assert fallback is not model and not isinstance(fallback, OptimizedReDimNet) and not fallback.training
    wave = torch.randn(1, 8000)
    with torch.no_grad():
        assert torch.equal(fallback(wave), model(wave))


def test_embedder_warns_or_raises_when_the_model_cannot_be_optimised():
    model = model_with_unknown_block()
    with pytest.raises(OptimizeError, match="Doubling"):
        redimnet.Embedder(model, device="cpu", strict=True)
    with pytest.warns(OptimizationWarning, match="Doubling"):
        embedder = redimnet.Embedder(model, device="cpu")
    assert not embedder.optimized
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert redimnet.Embedder(redimnet.build("b0"), device="cpu").optimized  # no warning when it works


def test_a_failing_conversion_is_reported_with_the_block_and_the_reason():
    torch.manual_seed(0)
    model = redimnet.build("b0").eval()
    index = next(i for i, stage in enumerate(model.backbone.stages) if stage.squeeze is not None)
    model.backbone.stages[index].squeeze.norm.running_var = None  # no statistics: cannot be folded
    with pytest.raises(
        OptimizeError,
        match=rf"backbone\.stages\.{index}\.squeeze \(ChannelSqueeze\): building its "
        r"inference form failed: ValueError: .*running statistics",
    ):
        optimize_for_inference(model, strict=True)


def test_a_subclass_that_changes_forward_needs_its_own_form():
    class Shifted(FrequencySE):
        def forward(self, x):
            return super().forward(x) + 1

    with pytest.raises(InferenceFormError, match="Shifted overrides forward.*inherits for_inference.*FrequencySE"):
        inference_form(Shifted(4, 8))

    class Renamed(FrequencySE):  # same function: the inherited form is right
        pass

    torch.manual_seed(0)
    block = Renamed(4, 8).eval()
    form = inference_form(block)
    assert isinstance(form, nn.Module) and form is not block
    x = torch.randn(2, 3, 4, 5)  # [N, C, F, T]; the form works on the time-major [N, C, T, F]
    with torch.inference_mode():
        expected = block(x)
        got = form(x.transpose(2, 3).contiguous()).transpose(2, 3)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(expected, x)  # the gate changes the input: the comparison is not vacuous


class Gate2d(nn.Module):
    """A new 2D block registered with the plain-layout adapter (``[N, C, F, T]``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.scale = nn.Parameter(torch.randn(channels, 1, 1))

    def forward(self, x):
        return x * torch.sigmoid(self.scale * x.mean(dim=2, keepdim=True))

    def for_inference(self):
        return PlainBlock2d(self)


class Gate1d(nn.Module):
    """A new 1D block registered with the plain-layout adapter (``[N, C, T]``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.mix = nn.Conv1d(channels, channels, 3, padding=1)

    def forward(self, x):
        return x + torch.tanh(self.mix(x))

    def for_inference(self):
        return PlainBlock1d(self)


def test_a_new_block_needs_only_a_for_inference_method():
    torch.manual_seed(0)
    model = perturb(redimnet.build("b0"), 1)
    stage = next(stage for stage in model.backbone.stages if len(stage.blocks) and stage.time_context is not None)
    stage.blocks[0] = Gate2d(stage.pool.out_channels)
    stage.time_context.context = nn.Sequential(Gate1d(stage.time_context.reduce.out_channels))
    model.eval()
    fast = optimize_for_inference(model, strict=True)
    wave = torch.randn(2, 6000) * 0.1
    with torch.inference_mode():
        assert relative_error(fast(wave), model(wave)) <= TOLERANCE


@pytest.mark.parametrize("name", list(POOLING_FUNCS) + ["TMAP"])
def test_every_pooling_has_a_form(name):
    from redimnet.layers.pooling import make_pooling

    torch.manual_seed(0)
    pool = perturb(make_pooling(name, 16, extra=("TMAP",)), 2)
    x = torch.randn(2, 16, 23)
    with torch.no_grad():
        assert relative_error(inference_form(pool)(x.transpose(1, 2).contiguous()), pool(x)) <= TOLERANCE
