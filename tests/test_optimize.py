"""The optimised inference path (redimnet.fast.optimize) gives the plain path's outputs."""

import os
import platform
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import OFFICIAL, require_fixtures
from torch import nn

import redimnet
from redimnet.fast.folding import fold_bn_after, fold_bn_before_linear, merge_parallel_convs, merge_small_groups
from redimnet.fast.optimize import OptimizedReDimNet, OptimizeError, optimize_for_inference

FIXTURE_NAMES = require_fixtures()
TOLERANCE = 1e-4  # max|ours - expected| <= TOLERANCE * max|expected|


def relative_error(ours: torch.Tensor, expected) -> float:
    expected = torch.as_tensor(expected)
    assert tuple(ours.shape) == tuple(expected.shape)
    return float((ours.detach() - expected).abs().max() / expected.abs().max())


def randomize_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial batch-norm statistics, so folding them is really exercised."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.3)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.randn(n, generator=generator) * 0.5 + 1)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.2)
    return model


@pytest.fixture(scope="module", params=FIXTURE_NAMES)
def fixture(request):
    name = request.param
    model = redimnet.load_checkpoint(OFFICIAL / f"{name}.pt")
    return name, model, optimize_for_inference(model), dict(np.load(OFFICIAL / f"{name}.npz"))


@pytest.mark.slow
@pytest.mark.parametrize("which", ["batch", "single"])
def test_matches_fixture_and_plain_path(fixture, which):
    name, plain, fast, expected = fixture
    wave = torch.from_numpy(expected[f"wave_{which}"])
    with torch.no_grad():
        ours = fast(wave)
        reference = plain(wave)
    assert isinstance(fast, OptimizedReDimNet)
    assert relative_error(ours, expected[f"embedding_{which}"]) <= TOLERANCE, name
    assert relative_error(ours, reference) <= TOLERANCE, name


@pytest.mark.slow
def test_features_in_path_matches(fixture):
    name, plain, fast, expected = fixture
    features = torch.from_numpy(expected["features_single"])
    with torch.no_grad():
        assert relative_error(fast.forward_features(features), expected["embedding_single"]) <= TOLERANCE, name
        assert relative_error(fast.features(torch.from_numpy(expected["wave_single"])), features) <= TOLERANCE


def test_input_model_untouched():
    model = randomize_norms(redimnet.build("b0")).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    structure = repr(model)
    fast = optimize_for_inference(model)
    assert fast is not model
    assert model.training, "the input model's mode must not change"
    assert repr(model) == structure
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not fast.training
    # The copy shares no storage with the input: changing one leaves the other alone.
    with torch.no_grad():
        wave = torch.randn(1, 8000)
        first = fast(wave)
        for p in model.parameters():
            p.add_(1.0)
        assert torch.equal(fast(wave), first)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["b0", "b2", "b5"])
def test_presets_with_random_norms(preset):
    torch.manual_seed(1)
    model = randomize_norms(redimnet.build(preset), seed=2).eval()
    fast = optimize_for_inference(model)
    wave = torch.randn(3, 4321) * 0.1  # odd length, batch of 3
    with torch.no_grad():
        assert relative_error(fast(wave), model(wave)) <= TOLERANCE


def test_projection_and_all_outputs():
    config = redimnet.get_preset("b0").config.replace(out_channels=64, return_all_outputs=True, emb_bn=True)
    torch.manual_seed(3)
    model = randomize_norms(redimnet.ReDimNet(config), seed=4).eval()
    fast = optimize_for_inference(model)
    wave = torch.randn(2, 9000) * 0.1
    with torch.no_grad():
        reference, reference_outputs = model(wave)
        ours, outputs = fast(wave)
    assert relative_error(ours, reference) <= TOLERANCE
    assert len(outputs) == len(reference_outputs)
    for a, b in zip(outputs, reference_outputs):
        assert relative_error(a, b) <= TOLERANCE


def test_optimizing_twice_and_bad_input():
    fast = optimize_for_inference(redimnet.build("b0").eval())
    again = optimize_for_inference(fast)
    wave = torch.randn(1, 8000)
    with torch.no_grad():
        assert torch.equal(again(wave), fast(wave))
    with pytest.raises(OptimizeError, match="expects a redimnet.ReDimNet"):
        optimize_for_inference(nn.Linear(2, 2))


def test_merge_parallel_grouped_convs():
    torch.manual_seed(0)
    convs = [nn.Conv1d(8, 8, k, padding="same", groups=4) for k in (3, 7, 5)]
    weight, bias, perm = merge_parallel_convs(convs)
    x = torch.randn(2, 8, 50)
    merged = nn.functional.conv1d(x, weight, bias, padding=3, groups=4)
    expected = torch.cat([conv(x) for conv in convs], dim=1)[:, perm]
    assert torch.allclose(merged, expected, atol=1e-5)
    # depthwise 2D kernels of different shapes, without biases (ConvNeXt blocks' parallel convs)
    convs2d = [nn.Conv2d(6, 6, k, padding="same", groups=6, bias=False) for k in ((3, 3), (1, 5), (5, 1))]
    weight, bias, perm = merge_parallel_convs(convs2d)
    assert weight.shape == (18, 1, 5, 5) and not bias.any()
    image = torch.randn(2, 6, 9, 11)
    merged = nn.functional.conv2d(image, weight, bias, padding=2, groups=6)
    expected = torch.cat([conv(image) for conv in convs2d], dim=1)[:, perm]
    assert torch.allclose(merged, expected, atol=1e-5)
    with pytest.raises(ValueError, match="odd kernels"):
        merge_parallel_convs([nn.Conv1d(4, 4, 3, padding=1, groups=4), nn.Conv1d(4, 4, 2, groups=4)])


@pytest.mark.parametrize(
    "channels,groups,out_channels,expected_groups",
    [
        (64, 16, 64, 8),  # b2's ConvNeXt convs: 4 inputs and outputs per group -> 8
        (12, 6, 18, 3),  # 2 inputs, 3 outputs per group: 6 groups only pair up once (4 inputs each)
        (16, 8, 32, 2),  # 2 -> 8 inputs per group
    ],
)
def test_merging_small_groups_keeps_outputs(channels, groups, out_channels, expected_groups):
    torch.manual_seed(0)
    conv = nn.Conv2d(channels, out_channels, 3, padding=1, groups=groups)
    weight, merged_groups = merge_small_groups(conv.weight.detach(), groups)
    assert merged_groups == expected_groups
    assert weight.shape == (out_channels, channels // merged_groups, 3, 3)
    x = torch.randn(2, channels, 9, 13)
    with torch.no_grad():
        merged = nn.functional.conv2d(x, weight, conv.bias, padding=1, groups=merged_groups)
        assert relative_error(merged, conv(x)) < 1e-6


@pytest.mark.parametrize("channels,groups,out_channels", [(16, 16, 16), (16, 16, 32), (32, 16, 16), (64, 8, 64)])
def test_groups_not_worth_merging_are_unchanged(channels, groups, out_channels):
    """Depthwise convs, one output per group, and groups already reading 8 channels."""
    weight = torch.randn(out_channels, channels // groups, 3, 3)
    merged, merged_groups = merge_small_groups(weight, groups)
    assert merged_groups == groups and merged is weight


def test_batch_norm_folding():
    torch.manual_seed(0)
    conv, linear = nn.Conv2d(4, 6, 3, padding=1), nn.Linear(6, 5)
    bn_after, bn_before = randomize_norms(nn.BatchNorm2d(6)).eval(), randomize_norms(nn.BatchNorm1d(6), 1).eval()
    x, v = torch.randn(2, 4, 7, 9), torch.randn(3, 6)
    w, b = fold_bn_after(conv.weight.detach(), conv.bias.detach(), bn_after)
    with torch.no_grad():
        assert torch.allclose(nn.functional.conv2d(x, w, b, padding=1), bn_after(conv(x)), atol=1e-5)
        w, b = fold_bn_before_linear(linear.weight.detach(), linear.bias.detach(), bn_before)
        assert torch.allclose(nn.functional.linear(v, w, b), linear(bn_before(v)), atol=1e-5)


@pytest.mark.slow
def test_compile_option_returns_working_module():
    pytest.importorskip("torch._dynamo")
    model = redimnet.build("b0").eval()
    compiled = optimize_for_inference(model, compile=True)
    assert isinstance(getattr(compiled, "_orig_mod", None), OptimizedReDimNet)


def test_autograd_mode_gives_the_same_outputs():
    """The optimised blocks work in place only when no graph is recorded; both paths agree,
    and gradients flow to the features when they are recorded."""
    torch.manual_seed(5)
    model = randomize_norms(redimnet.build("b2"), seed=6).eval()
    fast = optimize_for_inference(model)
    with torch.no_grad():
        features = fast.features(torch.randn(2, 6000) * 0.1)
        in_place = fast.forward_features(features)
    features.requires_grad_()
    with torch.enable_grad():
        recorded = fast.forward_features(features)
        recorded.sum().backward()
    assert features.grad is not None and torch.isfinite(features.grad).all()
    assert relative_error(recorded.detach(), in_place) <= 1e-6


@pytest.mark.parametrize("in_channels,out_channels", [(40, 20), (60, 20), (80, 40)])
def test_summed_depthwise_conv_equals_grouped_conv(in_channels, out_channels):
    """One-output-per-group convs (b0's stage-end squeezes) run as depthwise + interleaved sums."""
    from redimnet.fast.modules import SummedDepthwiseConv, SwappedConv2d

    torch.manual_seed(0)
    conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, groups=out_channels)
    swapped = SwappedConv2d.from_conv(conv)
    summed = SummedDepthwiseConv(swapped)
    x = torch.randn(2, in_channels, 11, 7).contiguous(memory_format=torch.channels_last)  # [N, C, T, F]
    with torch.no_grad():
        expected = conv(x.transpose(2, 3)).transpose(2, 3)  # the plain [N, C, F, T] conv
        rows = summed(x)
    assert rows.shape == (2, 11, 7, out_channels)
    assert relative_error(rows.permute(0, 3, 1, 2), expected) < 1e-5


def test_b0_squeezes_use_summed_depthwise_convs():
    fast = optimize_for_inference(redimnet.build("b0").eval())
    squeezes = [stage.squeeze for stage in fast.backbone.stages if stage.squeeze is not None]
    assert squeezes and all(squeeze.summed for squeeze in squeezes)


@pytest.mark.parametrize("shape", [(7, 10), (5000, 10), (2, 2500, 10), (3, 4, 400, 10), (0, 10)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_dense_products_equal_linear(shape, with_bias, monkeypatch):
    """The oneDNN 1x1-convolution route for ``x @ W.T + b`` (4096 rows or more) and the
    ``linear`` route below it give ``linear``'s values and shape."""
    from redimnet.fast.epilogue import dense

    torch.manual_seed(0)
    x, weight = torch.randn(shape), torch.randn(12, 10)
    bias = torch.randn(12) if with_bias else None
    expected = nn.functional.linear(x, weight, bias)
    onednn_calls = []
    convolution = torch.mkldnn_convolution
    monkeypatch.setattr(torch, "mkldnn_convolution", lambda *args: onednn_calls.append(1) or convolution(*args))
    with torch.no_grad():
        out = dense(x, weight, bias)
    if torch.backends.mkldnn.is_available():
        assert len(onednn_calls) == (1 if x.numel() // 10 >= 4096 else 0)
    strided_x = torch.randn(shape[:-1] + (20,))[..., ::2]  # non-contiguous rows
    with torch.no_grad():
        strided = dense(strided_x, weight, bias)
    assert out.shape == expected.shape and strided.shape == expected.shape
    assert torch.allclose(out, expected, atol=1e-5)
    assert torch.allclose(strided, nn.functional.linear(strided_x, weight, bias), atol=1e-5)


def test_dense_products_keep_gradients_and_autocast():
    from redimnet.fast.epilogue import dense

    torch.manual_seed(0)
    x, weight, bias = torch.randn(9, 6, requires_grad=True), torch.randn(4, 6), torch.randn(4)
    dense(x, weight, bias).sum().backward()
    assert torch.allclose(x.grad, weight.sum(0).expand(9, 6), atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert dense(x, weight, bias).dtype == torch.bfloat16  # falls back to linear under autocast


FAULT_PROBE = """
import resource, sys, torch
from redimnet.fast.optimize import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
MIB = 1024 * 1024 // 4
def one_pass():  # a forward pass in miniature: activations of 10-17 MiB alive together, then freed
    alive = [torch.empty(size * MIB).fill_(1.0) for size in range(10, 18)]
    del alive
one_pass()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    one_pass()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.slow
@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc malloc only")
def test_keeping_freed_memory_stops_page_faults_between_passes():
    """With glibc's defaults the first pass's buffers go back to the kernel (mmap, then trimming),
    so at least the next pass faults its ~108 MiB in again (about 27 000 faults); with
    keep_freed_memory() later passes reuse the memory of the first (at most one buffer was
    measured to be faulted in again, depending on the heap layout)."""
    results = {}
    for mode in ("keep", "default"):
        done = subprocess.run([sys.executable, "-c", FAULT_PROBE, mode], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        applied, faults = done.stdout.split()
        results[mode] = (applied == "True", int(faults))
    assert results["keep"][0] and not results["default"][0]
    assert results["default"][1] > 10000
    assert results["keep"][1] < results["default"][1] / 4


ARENA_PROBE = """
import sys, threading, numpy as np
from pathlib import Path
from redimnet.fast.allocator import keep_freed_memory, limit_arenas
keep_freed_memory()
limited = limit_arenas(1) if sys.argv[1] == "limit" else False
def rss():
    line = [l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmRSS")][0]
    return int(line.split()[1]) * 1024
turns, done, end = [threading.Event() for _ in range(8)], [threading.Event() for _ in range(8)], threading.Event()
def request(i):  # a worker thread of a server: alive throughout, 20 MiB of working memory in its turn
    turns[i].wait(); data = np.ones(20 * 2**20 // 8); del data; done[i].set(); end.wait()
threads = [threading.Thread(target=request, args=(i,)) for i in range(8)]
for thread in threads: thread.start()
before = rss()
for i in range(8):
    turns[i].set(); done[i].wait()
print(limited, rss() - before)
end.set()
"""


@pytest.mark.slow
@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc malloc only")
def test_few_arenas_let_worker_threads_share_what_they_freed():
    """Eight live threads take turns with 20 MiB each: with an arena per thread each keeps its 20 MiB (160 MiB
    in all, measured); limited to one arena, the second thread on reuses the first one's (20 MiB)."""
    results = {}
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    for mode in ("limit", "default"):
        done = subprocess.run(
            [sys.executable, "-c", ARENA_PROBE, mode], capture_output=True, text=True, timeout=300, env=env
        )
        assert done.returncode == 0, done.stderr
        limited, grown = done.stdout.split()
        results[mode] = (limited == "True", int(grown) / 2**20)
    assert results["limit"][0] and not results["default"][0]
    assert results["default"][1] > 100
    assert results["limit"][1] < 50


def test_keep_freed_memory_rejects_a_tiny_trim_threshold():
    from redimnet.fast.optimize import keep_freed_memory

    with pytest.raises(ValueError, match="trim_threshold_mb"):
        keep_freed_memory(trim_threshold_mb=1)


@pytest.mark.parametrize("dim,heads,padded", [(20, 4, 16), (60, 4, 16), (48, 4, 16), (96, 4, 24)])
def test_transformer_heads_padded_to_16_keep_outputs(dim, heads, padded):
    """Heads narrower than 16 run zero-padded to 16 (weights padded, true scale kept)."""
    from redimnet.layers.transformer import FastTransformer, TransformerLayer

    torch.manual_seed(0)
    layer = TransformerLayer(dim, dim * 2, heads).eval()
    fast = FastTransformer(layer)
    assert fast.width == padded and fast.qkv.weight.shape == (3 * heads * padded, dim)
    x = torch.randn(2, 37, dim)  # [N, T, C]
    with torch.no_grad():
        expected = layer(x.transpose(1, 2)).transpose(1, 2)
        assert relative_error(fast(x), expected) < 1e-5


@pytest.mark.slow
@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="needs PyTorch built with oneDNN")
@pytest.mark.parametrize("block_2d_type", ["basic_resnet_fwse", "basic_resnet"])
def test_grouped_resnet_stages_run_blocked_for_batches(block_2d_type, monkeypatch):
    """Grouped ResNet stages (b5, b6) run their blocks on oneDNN's blocked layout for batches
    of two or more, and give the plain model's outputs either way."""
    from redimnet.layers.resnet_block import FastResNet2d

    config = redimnet.get_preset("b5").config.replace(C=16, block_2d_type=block_2d_type, group_divisor=8)
    torch.manual_seed(7)
    model = randomize_norms(redimnet.ReDimNet(config), seed=8).eval()
    fast = optimize_for_inference(model)
    assert all(stage.blocked for stage in fast.backbone.stages)
    calls = []
    forward_blocked = FastResNet2d.forward_blocked
    monkeypatch.setattr(FastResNet2d, "forward_blocked", lambda self, x: calls.append(1) or forward_blocked(self, x))
    for batch in (1, 3):
        calls.clear()
        wave = torch.randn(batch, 7000) * 0.1
        with torch.inference_mode():
            assert relative_error(fast(wave), model(wave)) <= TOLERANCE
        expected_calls = sum(len(stage.blocks) for stage in fast.backbone.stages) if batch > 1 else 0
        assert len(calls) == expected_calls
    with torch.enable_grad():  # autograd: the channels_last path
        calls.clear()
        fast.forward_features(model.features(torch.randn(2, 7000) * 0.1))
        assert not calls


@pytest.mark.parametrize("rows", [37, 5000])
def test_linear_with_residual_accumulates_in_place_without_autograd(rows):
    from redimnet.fast.epilogue import linear

    torch.manual_seed(0)
    x, weight, bias = torch.randn(1, rows, 8), torch.randn(6, 8), torch.randn(6)
    residual = torch.randn(1, rows, 6)
    expected = nn.functional.linear(x, weight, bias) + residual
    with torch.enable_grad():
        kept = residual.clone()
        assert torch.allclose(linear(x, weight, bias, residual=kept), expected, atol=1e-5)
        assert torch.equal(kept, residual)  # with autograd the residual is left alone
    with torch.no_grad():
        out = linear(x, weight, bias, residual=residual.clone())
        assert torch.allclose(out, expected, atol=1e-5)
        assert torch.allclose(
            linear(x, weight, bias, act="relu", residual=residual.clone()),
            torch.relu(nn.functional.linear(x, weight, bias)) + residual,
            atol=1e-5,
        )
