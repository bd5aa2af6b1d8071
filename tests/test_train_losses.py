"""Margin losses and the learning-rate / margin schedules."""

import math

import pytest
import torch
import torch.nn.functional as F

from redimnet.training.config import LossSection
from redimnet.training.losses import AAMSoftmax, AMSoftmax, Softmax, SphereFace2, make_loss
from redimnet.training.schedulers import MarginSchedule, WarmupExponentialLR


@pytest.fixture
def batch():
    torch.manual_seed(0)
    return torch.randn(16, 8), torch.randint(0, 5, (16,))


def test_aam_with_zero_margin_is_scaled_cosine_softmax(batch):
    x, y = batch
    loss = AAMSoftmax(8, 5, scale=30.0, margin=0.0)
    value, cos = loss(x, y)
    expected = F.cross_entropy(30.0 * F.normalize(x) @ F.normalize(loss.weight).T, y)
    assert torch.allclose(value, expected, atol=1e-5)
    assert torch.allclose(cos, F.normalize(x) @ F.normalize(loss.weight).T, atol=1e-6)


def test_aam_target_logit_is_cos_of_angle_plus_margin(batch):
    x, y = batch
    loss = AAMSoftmax(8, 5, scale=1.0, margin=0.3)
    cos = F.normalize(x) @ F.normalize(loss.weight).T
    theta = torch.acos(cos.gather(1, y[:, None]).clamp(-1, 1))
    logits = cos.clone()
    # only examples with theta + m < pi follow the plain formula
    plain = torch.where(theta + 0.3 < math.pi, torch.cos(theta + 0.3), logits.gather(1, y[:, None]))
    logits.scatter_(1, y[:, None], plain)
    ok = theta[:, 0] + 0.3 < math.pi
    assert ok.all()
    assert torch.allclose(loss(x, y)[0], F.cross_entropy(logits, y), atol=1e-5)


@pytest.mark.parametrize("cls", [AAMSoftmax, AMSoftmax, SphereFace2])
def test_a_larger_margin_costs_more(cls, batch):
    x, y = batch
    torch.manual_seed(1)
    loss = cls(8, 5, scale=16.0, margin=0.0)
    low = loss(x, y)[0]
    loss.margin = 0.3
    assert loss(x, y)[0] > low


def test_subcentres_take_the_closest_centre(batch):
    x, y = batch
    loss = AAMSoftmax(8, 5, subcenters=3, margin=0.0)
    full = F.normalize(x) @ F.normalize(loss.weight).T
    assert torch.allclose(loss(x, y)[1], full.view(16, 5, 3).amax(2), atol=1e-6)


def test_inter_topk_penalises_the_hardest_wrong_classes(batch):
    x, y = batch
    plain = AAMSoftmax(8, 5, margin=0.2)
    hard = AAMSoftmax(8, 5, margin=0.2, inter_topk=2, inter_topk_margin=0.1)
    hard.load_state_dict(plain.state_dict())
    assert hard(x, y)[0] > plain(x, y)[0]


@pytest.mark.parametrize("kind", ["aam", "am", "sphereface2", "softmax"])
def test_every_loss_learns_a_separable_problem(kind):
    torch.manual_seed(0)
    centres = F.normalize(torch.randn(4, 6), dim=1) * 3
    y = torch.arange(4).repeat(16)
    x = centres[y] + 0.3 * torch.randn(64, 6)
    loss = make_loss(LossSection(type=kind, initial_margin=0.1), embed_dim=6, num_classes=4)
    optimizer = torch.optim.SGD(loss.parameters(), lr=0.5 if kind != "softmax" else 0.1)
    first = loss(x, y)[0].item()
    for _ in range(60):
        value, scores = loss(x, y)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    assert value.item() < first
    assert (scores.argmax(1) == y).float().mean() > 0.95


def test_softmax_has_no_margin():
    assert Softmax(4, 3).margin == 0.0


def test_learning_rate_warms_up_then_decays_exponentially():
    schedule = WarmupExponentialLR(lr=0.1, final_lr=1e-4, warmup_epochs=2, total_epochs=12)
    assert schedule(0) == 0.0 and schedule(1) == pytest.approx(0.05) and schedule(2) == pytest.approx(0.1)
    assert schedule(12) == pytest.approx(1e-4)
    assert schedule(7) == pytest.approx(math.sqrt(0.1 * 1e-4))  # geometric midpoint
    values = [schedule(e / 4) for e in range(8, 49)]
    assert all(a > b for a, b in zip(values, values[1:]))
    assert WarmupExponentialLR(0.1, 1e-3, 2, 10, warm_from_zero=False)(0) == pytest.approx(1e-3)


@pytest.mark.parametrize("kind", ["exp", "linear"])
def test_margin_schedule(kind):
    schedule = MarginSchedule(0.0, 0.2, start_epoch=20, fix_epoch=40, kind=kind)
    assert schedule(0) == 0.0 and schedule(20) == 0.0 and schedule(40) == 0.2 and schedule(100) == 0.2
    values = [schedule(e) for e in range(20, 41)]
    assert all(a < b for a, b in zip(values, values[1:]))
    if kind == "linear":
        assert schedule(30) == pytest.approx(0.1)
    else:
        assert schedule(30) > 0.1  # rises fast first
    assert MarginSchedule(0.5, 0.5, 0, 0)(0) == 0.5
