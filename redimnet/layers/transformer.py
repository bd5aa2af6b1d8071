"""Post-norm transformer encoder layer working on channels-first ``[N, C, T]``."""

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..fast.modules import Linear


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
        return FastTransformer(self)


def pad_heads(weight: torch.Tensor, bias: Optional[torch.Tensor], heads: int, width: int):
    """Rows of a projection onto ``heads`` heads, each head's rows zero-padded to ``width``."""
    rows = weight.shape[0] // heads
    padded = weight.new_zeros((heads, width) + tuple(weight.shape[1:]))
    padded[:, :rows] = weight.reshape((heads, rows) + tuple(weight.shape[1:]))
    if bias is None:
        return padded.reshape((heads * width,) + tuple(weight.shape[1:])), None
    padded_bias = bias.new_zeros(heads, width)
    padded_bias[:, :rows] = bias.reshape(heads, rows)
    return padded.reshape((heads * width,) + tuple(weight.shape[1:])), padded_bias.reshape(-1)


class FastTransformer(nn.Module):
    """:class:`~redimnet.layers.TransformerLayer` on ``[N, T, C]`` with one fused q/k/v projection.

    Heads narrower than 16 (b0: 5 and 15, b5: 12) are zero-padded to 16, where
    CPU attention kernels run faster (``docs/performance.md``).  The padding lives in the weights, so it costs
    no copies: q/k/v projections get zero rows (the extra q.k terms and value
    columns are exact zeros), the output projection zero columns, and the
    attention keeps the scale of the true width.
    """

    PADDED_WIDTH = 16

    def __init__(self, layer: TransformerLayer):
        super().__init__()
        att = layer.attention
        self.heads = att.heads
        dim = att.query.weight.shape[0]
        self.head_width = dim // self.heads
        self.scale = self.head_width**-0.5
        self.width = max(self.head_width, self.PADDED_WIDTH)
        projections = [
            pad_heads(proj.weight.detach(), proj.bias.detach(), self.heads, self.width)
            for proj in (att.query, att.key, att.value)
        ]
        self.qkv = Linear(torch.cat([w for w, _ in projections]), torch.cat([b for _, b in projections]))
        output = pad_heads(att.output.weight.detach().t(), None, self.heads, self.width)[0].t()
        self.output = Linear(output, att.output.bias)
        self.norm1, self.norm2 = layer.norm1, layer.norm2
        self.expand = Linear(layer.feed_forward.expand.weight, layer.feed_forward.expand.bias)
        self.project = Linear(layer.feed_forward.project.weight, layer.feed_forward.project.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        qkv = self.qkv(x).view(n, t, 3, self.heads, self.width).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], scale=self.scale)
        x = self.norm1(x + self.output(y.transpose(1, 2).reshape(n, t, self.heads * self.width)))
        return self.norm2(self.project(self.expand(x, "gelu_tanh"), residual=x))
