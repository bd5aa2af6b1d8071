"""Building blocks checked against direct computations."""

import numpy as np
import torch
import torch.nn.functional as F

from redimnet.layers import (
    ASTP,
    MHASTP,
    TSTP,
    ChannelLayerNorm,
    ConvNeXtBlock,
    StageMixer,
    TransformerLayer,
    to_1d,
    to_2d,
)


def test_reshape_round_trip_and_row_order():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)  # N, C, F, T
    flat = to_1d(x)
    assert flat.shape == (2, 12, 5)
    # Row f * C + c holds channel c of frequency bin f.
    assert torch.equal(flat[:, 2 * 3 + 1], x[:, 1, 2])
    assert torch.equal(to_2d(flat, 3), x)


def test_channel_layer_norm_matches_layer_norm_over_channels():
    norm = ChannelLayerNorm(6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-1, 1)
    x = torch.randn(2, 6, 4, 7)
    expected = F.layer_norm(x.permute(0, 2, 3, 1), (6,), norm.weight, norm.bias, eps=1e-6).permute(0, 3, 1, 2)
    assert torch.allclose(norm(x), expected, atol=1e-5)
    # the same normalisation over another axis, where the channels were moved (the stem's rows)
    moved = norm(x.transpose(1, 2), axis=2).transpose(1, 2)
    assert torch.allclose(moved, expected, atol=1e-5)


def test_stem_rows_are_the_normalised_stem_in_the_1d_view():
    from redimnet.layers.stem import Stem

    torch.manual_seed(2)
    stem = Stem(6)
    with torch.no_grad():
        stem.norm.weight.uniform_(0.5, 1.5)
        stem.norm.bias.uniform_(-1, 1)
    x = torch.randn(2, 1, 8, 11)
    expected = F.layer_norm(stem.conv(x).permute(0, 2, 3, 1), (6,), stem.norm.weight, stem.norm.bias, eps=1e-6)
    # row f * C + c of frame t: channel c of bin f
    expected = expected.permute(0, 1, 3, 2).reshape(2, 8 * 6, 11)
    assert torch.allclose(stem.rows(x), expected, atol=1e-5)


def test_stage_mixer_is_a_per_row_softmax_mixture():
    mixer = StageMixer(3, rows=4)
    with torch.no_grad():
        mixer.logits.copy_(torch.randn_like(mixer.logits))
    inputs = [torch.randn(2, 4, 5) for _ in range(3)]
    weights = torch.softmax(mixer.logits[0, :, :, 0], dim=0)  # [inputs, rows]
    expected = sum(weights[i][None, :, None] * inputs[i] for i in range(3))
    assert torch.allclose(mixer(inputs), expected, atol=1e-6)
    single = StageMixer(1, rows=4)
    assert single.logits.shape == (1, 1, 1, 1) and not single.logits.requires_grad
    assert torch.equal(single(inputs[:1]), inputs[0])


def test_statistics_pooling_against_numpy():
    x = torch.randn(3, 5, 40)
    stats = TSTP(5)(x).numpy()
    array = x.numpy()
    np.testing.assert_allclose(stats[:, :5], array.mean(-1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats[:, 5:], np.sqrt(array.var(-1, ddof=1) + 1e-7), rtol=1e-5)


def test_attentive_pooling_with_uniform_attention_is_plain_statistics():
    pool = ASTP(5, bottleneck=8)
    with torch.no_grad():
        pool.score.weight.zero_()
        pool.score.bias.zero_()  # equal logits: uniform weights over time
    x = torch.randn(2, 5, 30)
    stats = pool(x)
    assert torch.allclose(stats[:, :5], x.mean(-1), atol=1e-5)
    assert torch.allclose(stats[:, 5:], x.std(-1, unbiased=False), atol=1e-4)


def test_multi_head_pooling_splits_channels():
    pool = MHASTP(8, heads=2)
    x = torch.randn(2, 8, 20)
    out = pool(x)
    assert out.shape == (2, 16)
    first_head = pool.scorers[0]
    weights = torch.softmax(first_head(x[:, :4]), dim=-1)
    assert torch.allclose(out[:, :4], (weights * x[:, :4]).sum(-1), atol=1e-5)


def test_convnext_block_is_residual():
    block = ConvNeXtBlock(4, dim=1, kernel_sizes=(3, 5))
    with torch.no_grad():
        block.pointwise.weight.zero_()
        block.pointwise.bias.zero_()
    block.eval()
    x = torch.randn(2, 4, 9)
    assert torch.equal(block(x), x)
    assert block.norm.num_features == 8


def test_transformer_layer_against_manual_attention():
    torch.manual_seed(0)
    layer = TransformerLayer(8, 16, heads=2).eval()
    x = torch.randn(1, 8, 6)  # [N, C, T]
    h = x.transpose(1, 2)[0]  # [T, C]
    att = layer.attention
    q, k, v = att.query(h), att.key(h), att.value(h)
    heads = []
    for i in range(2):
        sl = slice(4 * i, 4 * i + 4)
        w = torch.softmax(q[:, sl] @ k[:, sl].T / 2.0, dim=-1)
        heads.append(w @ v[:, sl])
    y = layer.norm1(h + att.output(torch.cat(heads, dim=1)))
    ff = layer.feed_forward
    inner = ff.expand(y)
    gelu_tanh = 0.5 * inner * (1 + torch.tanh((2 / np.pi) ** 0.5 * (inner + 0.044715 * inner**3)))
    expected = layer.norm2(y + ff.project(gelu_tanh))
    assert torch.allclose(layer(x)[0].T, expected, atol=1e-5)
