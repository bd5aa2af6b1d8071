"""Classification losses on speaker embeddings; each owns its class weight matrix.

Every loss is an ``nn.Module`` called as ``loss(embeddings, labels)`` and
returning ``(loss, scores)``, where ``scores`` ``[N, classes]`` are used for
accuracy.  Margin losses have a ``margin`` attribute that the trainer's margin
schedule sets before every step.
"""

from __future__ import annotations

import math
from typing import Union

import torch
import torch.nn.functional as F
from torch import nn


class _CosineClassifier(nn.Module):
    """Cosine similarity between the embedding and every class (max over sub-centres)."""

    def __init__(self, embed_dim: int, num_classes: int, scale: float, margin: float, subcenters: int = 1):
        super().__init__()
        self.num_classes, self.subcenters = num_classes, subcenters
        self.scale = float(scale)
        self.margin = float(margin)
        self.weight = nn.Parameter(torch.empty(num_classes * subcenters, embed_dim))
        nn.init.xavier_uniform_(self.weight)

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        cos = F.linear(F.normalize(embeddings.float()), F.normalize(self.weight.float()))
        if self.subcenters > 1:
            cos = cos.view(-1, self.num_classes, self.subcenters).amax(dim=2)
        return cos.clamp(-1.0, 1.0)

    def extra_repr(self) -> str:
        return f"classes={self.num_classes}, subcenters={self.subcenters}, scale={self.scale}, margin={self.margin}"


class AAMSoftmax(_CosineClassifier):
    """Additive angular margin (ArcFace): the target logit is ``s * cos(theta + m)``.

    ``inter_topk`` > 0 also makes the ``inter_topk`` closest wrong classes harder
    (``cos(theta - inter_topk_margin)``), as in the inter-top-k penalty.
    """

    def __init__(
        self,
        embed_dim: int,
        num_classes: int,
        scale: float = 32.0,
        margin: float = 0.2,
        subcenters: int = 1,
        easy_margin: bool = False,
        inter_topk: int = 0,
        inter_topk_margin: float = 0.06,
    ):
        super().__init__(embed_dim, num_classes, scale, margin, subcenters)
        self.easy_margin = easy_margin
        self.inter_topk, self.inter_topk_margin = inter_topk, inter_topk_margin

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor):
        cos = self.cosine(embeddings)
        m = self.margin
        sin = torch.sqrt((1.0 - cos * cos).clamp(min=1e-7))
        target_mask = F.one_hot(labels, self.num_classes).bool()
        with_margin = cos * math.cos(m) - sin * math.sin(m)
        if self.easy_margin:
            with_margin = torch.where(cos > 0, with_margin, cos)
        else:  # keep the target logit monotonic in theta beyond pi - m
            with_margin = torch.where(cos > math.cos(math.pi - m), with_margin, cos - math.sin(math.pi - m) * m)
        logits = torch.where(target_mask, with_margin, cos)
        if self.inter_topk > 0 and m > 0:
            k = min(self.inter_topk, self.num_classes - 1)
            wrong = cos.masked_fill(target_mask, -2.0)
            top = wrong.topk(k, dim=1).indices
            hard = torch.zeros_like(target_mask).scatter_(1, top, True)
            mp = self.inter_topk_margin
            harder = cos * math.cos(mp) + sin * math.sin(mp)
            logits = torch.where(hard, harder, logits)
        return F.cross_entropy(self.scale * logits, labels), cos.detach()


class AMSoftmax(_CosineClassifier):
    """Additive margin (CosFace): the target logit is ``s * (cos(theta) - m)``."""

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor):
        cos = self.cosine(embeddings)
        logits = cos - self.margin * F.one_hot(labels, self.num_classes)
        return F.cross_entropy(self.scale * logits, labels), cos.detach()


class SphereFace2(_CosineClassifier):
    """SphereFace2: one binary (one-vs-all) classifier per class with a shared learnt bias.

    Loss per example: ``lam * softplus(-(s (cos_y - m) + b)) + (1 - lam) * sum_j!=y softplus(s (cos_j + m) + b)``.
    """

    def __init__(
        self,
        embed_dim: int,
        num_classes: int,
        scale: float = 32.0,
        margin: float = 0.2,
        subcenters: int = 1,
        lam: float = 0.7,
    ):
        super().__init__(embed_dim, num_classes, scale, margin, subcenters)
        self.lam = lam
        # start near the balance point: the negatives' total weight ~ the positive's
        self.bias = nn.Parameter(torch.tensor(-self.scale * 0.5 - math.log(max(num_classes - 1, 1))))

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor):
        cos = self.cosine(embeddings)
        target = F.one_hot(labels, self.num_classes).bool()
        positive = F.softplus(-(self.scale * (cos - self.margin) + self.bias))
        negative = F.softplus(self.scale * (cos + self.margin) + self.bias)
        loss = torch.where(target, self.lam * positive, (1.0 - self.lam) * negative).sum(dim=1).mean()
        return loss, cos.detach()


class Softmax(nn.Module):
    """Plain softmax cross-entropy over a linear layer (no normalisation, no margin)."""

    def __init__(self, embed_dim: int, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.margin = 0.0
        self.linear = nn.Linear(embed_dim, num_classes)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor):
        logits = self.linear(embeddings.float())
        return F.cross_entropy(logits, labels), logits.detach()


# Any loss :func:`make_loss` builds; each has the ``margin`` the margin schedule sets.
Loss = Union[AAMSoftmax, AMSoftmax, SphereFace2, Softmax]


def make_loss(section, embed_dim: int, num_classes: int) -> Loss:
    """The loss module a config's ``loss`` section describes (margin starts at ``initial_margin``)."""
    m = section.initial_margin
    if section.type == "aam":
        return AAMSoftmax(
            embed_dim,
            num_classes,
            section.scale,
            m,
            section.subcenters,
            section.easy_margin,
            section.inter_topk,
            section.inter_topk_margin,
        )
    if section.type == "am":
        return AMSoftmax(embed_dim, num_classes, section.scale, m, section.subcenters)
    if section.type == "sphereface2":
        return SphereFace2(embed_dim, num_classes, section.scale, m, section.subcenters, section.sphereface2_lambda)
    if section.type == "softmax":
        return Softmax(embed_dim, num_classes)
    raise ValueError(f"unknown loss type {section.type!r}")
