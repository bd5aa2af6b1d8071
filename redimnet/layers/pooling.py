"""Temporal pooling: ``[N, C, T]`` frame features -> ``[N, out_dim]`` utterance statistics.

Names follow the ones used in speaker-recognition toolkits and in ReDimNet
checkpoints: TAP, TSDP, TSTP, ASTP, MHASTP, MQMHASTP.
"""

from typing import Callable, Dict, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from ..fast.adapters import PlainPooling
from ..fast.modules import Linear, detached_copy, matrix_of
from .options import MHASTP_HEADS, MQMHASTP_HEADS

_VAR_FLOOR = 1e-7


def _std(x: torch.Tensor, keepdim: bool = False, dim: int = -1) -> torch.Tensor:
    """Standard deviation over time (axis ``dim``), unbiased variance with a small floor."""
    return torch.sqrt(torch.var(x, dim=dim, keepdim=keepdim) + _VAR_FLOOR)


def _weighted_stats(x: torch.Tensor, logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Mean and std of ``x`` over time (axis ``dim``) under softmax(logits) weights, concatenated
    (``[N, 2C]``; the inference form passes time-major ``[N, T, C]`` with ``dim=1``)."""
    weights = torch.softmax(logits, dim=dim)
    mean = torch.sum(weights * x, dim=dim)
    var = torch.sum(weights * x * x, dim=dim) - mean * mean
    return torch.cat([mean, torch.sqrt(var.clamp(min=_VAR_FLOOR))], dim=1)


class TAP(nn.Module):
    """Temporal average pooling."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.out_dim = in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=-1)

    def for_inference(self) -> nn.Module:
        """Inference form: this layer fed the ``[N, C, T]`` view of time-major frames."""
        return PlainPooling(self)


class TMAP(nn.Module):
    """Temporal max plus average pooling: ``max_t x + mean_t x``."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.out_dim = in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=-1) + x.mean(dim=-1)

    def for_inference(self) -> nn.Module:
        """Inference form: this layer fed the ``[N, C, T]`` view of time-major frames."""
        return PlainPooling(self)


class TSDP(nn.Module):
    """Temporal standard-deviation pooling."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.out_dim = in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _std(x)

    def for_inference(self) -> nn.Module:
        """Inference form: this layer fed the ``[N, C, T]`` view of time-major frames."""
        return PlainPooling(self)


class TSTP(nn.Module):
    """Temporal statistics pooling: mean and standard deviation."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.out_dim = 2 * in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=-1), _std(x)], dim=1)

    def for_inference(self) -> nn.Module:
        """Inference form: this layer fed the ``[N, C, T]`` view of time-major frames."""
        return PlainPooling(self)


class ASTP(nn.Module):
    """Attentive statistics pooling (as in ECAPA-TDNN).

    With ``global_context`` the attention also sees the utterance mean and std
    of every channel.
    """

    def __init__(self, in_dim: int, bottleneck: int = 128, global_context: bool = False):
        super().__init__()
        self.global_context = global_context
        self.hidden = nn.Conv1d(in_dim * (3 if global_context else 1), bottleneck, 1)
        self.score = nn.Conv1d(bottleneck, in_dim, 1)
        self.out_dim = 2 * in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = x
        if self.global_context and torch.onnx.is_in_onnx_export():
            return _weighted_stats(x, self.score(torch.tanh(self._hidden_split(x))))
        if self.global_context:
            frames = x.shape[-1]
            mean = x.mean(dim=-1, keepdim=True).expand(-1, -1, frames)
            std = _std(x, keepdim=True).expand(-1, -1, frames)
            context = torch.cat([x, mean, std], dim=1)
        return _weighted_stats(x, self.score(torch.tanh(self.hidden(context))))

    def _hidden_split(self, x: torch.Tensor) -> torch.Tensor:
        """``hidden([x, mean, std])`` with the statistics' part computed once per utterance (the same
        numbers up to rounding).  The ONNX export writes this form: no frame-wide ``Concat`` (whose
        layout change alone took 2-4 % of ReDimNet2-b2's int8 time in OpenVINO) and a third of the
        per-frame product."""
        channels = self.score.out_channels  # a number, not the input's shape: the slices below are constants
        weight = self.hidden.weight
        stats = torch.cat([x.mean(dim=-1, keepdim=True), _std(x, keepdim=True)], dim=1)
        return F.conv1d(x, weight[:, :channels]) + F.conv1d(stats, weight[:, channels:], self.hidden.bias)

    def for_inference(self) -> nn.Module:
        """Inference form on ``[N, T, C]`` (global-context product once per utterance)."""
        return FastASTP(self)


class _AttentionScorer(nn.Module):
    """Two 1x1 convolutions with a tanh between: frame scores for one head."""

    def __init__(self, in_dim: int, bottleneck: int, out_dim: int):
        super().__init__()
        self.hidden = nn.Conv1d(in_dim, bottleneck, 1)
        self.score = nn.Conv1d(bottleneck, out_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.score(torch.tanh(self.hidden(x)))


class MHASTP(nn.Module):
    """Multi-head attentive statistics pooling.

    Channels are split into ``heads`` equal chunks; each chunk gets its own
    attention (one score per frame, or one per channel and frame with
    ``per_channel=True``) and contributes its weighted mean and std.
    """

    def __init__(self, in_dim: int, heads: int = MHASTP_HEADS, bottleneck: int = 64, per_channel: bool = False):
        super().__init__()
        if in_dim % heads:
            raise ValueError(f"MHASTP: {in_dim} channels cannot be split into {heads} heads")
        self.heads = heads
        chunk = in_dim // heads
        self.scorers = nn.ModuleList(
            _AttentionScorer(chunk, bottleneck, chunk if per_channel else 1) for _ in range(heads)
        )
        self.out_dim = 2 * in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chunks = torch.chunk(x, self.heads, dim=1)
        return torch.cat([_weighted_stats(c, scorer(c)) for c, scorer in zip(chunks, self.scorers)], dim=1)

    def for_inference(self) -> nn.Module:
        """Inference form: this layer fed the ``[N, C, T]`` view of time-major frames."""
        return PlainPooling(self)


class MQMHASTP(nn.Module):
    """Multi-query multi-head attentive statistics pooling: several MHASTP
    poolings (queries) with per-channel attention, concatenated."""

    def __init__(self, in_dim: int, queries: int = 2, heads: int = MQMHASTP_HEADS, bottleneck: int = 64):
        super().__init__()
        self.queries = nn.ModuleList(
            MHASTP(in_dim, heads=heads, bottleneck=bottleneck, per_channel=True) for _ in range(queries)
        )
        self.out_dim = 2 * in_dim * queries

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([query(x) for query in self.queries], dim=-1)

    def for_inference(self) -> nn.Module:
        """Inference form: this layer fed the ``[N, C, T]`` view of time-major frames."""
        return PlainPooling(self)


# Poolings only some model families use (TMAP: ReDimNet2).
_EXTRA_POOLINGS = {"TMAP": TMAP}


# Any layer :func:`make_pooling` builds (each has ``out_dim``).
Pooling = Union[TAP, TMAP, TSDP, TSTP, ASTP, MHASTP, MQMHASTP]


def make_pooling(name: str, in_dim: int, global_context: bool = False, extra=()) -> Pooling:
    """The pooling layer called ``name`` (``pooling_func`` of a configuration).

    ``extra`` names further poolings a model family allows (ReDimNet2: ``("TMAP",)``).
    """
    if name == "ASTP":
        return ASTP(in_dim, global_context=global_context)
    layers: Dict[str, Callable[[int], Pooling]] = {
        "TAP": TAP,
        "TSDP": TSDP,
        "TSTP": TSTP,
        "MHASTP": MHASTP,
        "MQMHASTP": MQMHASTP,
    }
    layers.update({key: _EXTRA_POOLINGS[key] for key in extra})
    if name not in layers:
        raise ValueError(f"pooling_func={name!r} is not supported; choose one of ASTP, {', '.join(layers)}")
    return layers[name](in_dim)


class FastASTP(nn.Module):
    """:class:`~redimnet.layers.ASTP` on ``[N, T, C]``.

    With global context, the attention's first 1x1 conv sees ``[x, mean, std]``;
    the mean and std columns are the same at every frame, so their part of the
    product is computed once per utterance instead of once per frame.
    """

    def __init__(self, pool: ASTP):
        super().__init__()
        self.global_context = pool.global_context
        weight = matrix_of(pool.hidden)
        dim = pool.score.out_channels
        self.hidden_x: torch.Tensor
        self.register_buffer("hidden_x", weight[:, :dim].contiguous())
        self.hidden_stats: Optional[torch.Tensor]
        self.register_buffer("hidden_stats", weight[:, dim:].contiguous() if self.global_context else None)
        self.hidden_bias: Optional[torch.Tensor]
        self.register_buffer("hidden_bias", detached_copy(pool.hidden.bias))
        self.score = Linear.from_conv(pool.score)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.global_context:
            mean = x.mean(dim=1)
            std = _std(x, dim=1)
            # hidden_stats is set whenever global_context is
            stats = F.linear(torch.cat([mean, std], dim=1), self.hidden_stats, self.hidden_bias)  # type: ignore[arg-type]
            hidden = F.linear(x, self.hidden_x) + stats.unsqueeze(1)
        else:
            hidden = F.linear(x, self.hidden_x, self.hidden_bias)
        return _weighted_stats(x, self.score(torch.tanh(hidden)), dim=1)
