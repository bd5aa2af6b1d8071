"""Waveform conditioning before the spectrogram: pre-emphasis and level normalisation."""

import torch
import torch.nn.functional as F
from torch import nn


class PreEmphasis(nn.Module):
    """``y[t] = x[t] - coef * x[t-1]``, with ``x[-1]`` taken as ``x[1]`` (reflection)."""

    def __init__(self, coef: float = 0.97):
        super().__init__()
        self.kernel: torch.Tensor
        self.register_buffer("kernel", torch.tensor([[[-coef, 1.0]]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, T]`` -> ``[N, T]``."""
        x = F.pad(x.unsqueeze(1), (1, 0), mode="reflect")
        return F.conv1d(x, self.kernel).squeeze(1)


def normalize_level(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Zero mean, unit (biased) standard deviation per waveform."""
    return (x - x.mean(dim=-1, keepdim=True)) / (x.std(dim=-1, keepdim=True, unbiased=False) + eps)
