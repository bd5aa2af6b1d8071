"""Post-norm transformer encoder layer working on channels-first ``[N, C, T]``."""

import torch
import torch.nn.functional as F
from torch import nn


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention over time, ``[N, T, C]`` in and out."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.output = nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        return x.view(n, t, self.heads, c // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        y = F.scaled_dot_product_attention(q, k, v)
        return self.output(y.transpose(1, 2).reshape(n, t, c))


class FeedForward(nn.Module):
    """Linear -> GELU (tanh approximation) -> linear."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.expand = nn.Linear(dim, hidden)
        self.project = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(F.gelu(self.expand(x), approximate="tanh"))


class TransformerLayer(nn.Module):
    """``y = norm1(x + attn(x)); out = norm2(y + ff(y))``, on ``[N, C, T]``."""

    def __init__(self, dim: int, hidden: int, heads: int, eps: float = 1e-6):
        super().__init__()
        self.attention = SelfAttention(dim, heads)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.feed_forward = FeedForward(dim, hidden)
        self.norm2 = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2)
        x = self.norm1(x + self.attention(x))
        x = self.norm2(x + self.feed_forward(x))
        return x.transpose(1, 2)

    def for_inference(self) -> nn.Module:
        """Inference form on ``[N, T, C]``: fused q/k/v, heads padded to 16."""
        from ..optimize.fused_1d import FastTransformer

        return FastTransformer(self)
