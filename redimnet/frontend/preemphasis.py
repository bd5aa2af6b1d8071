"""Waveform conditioning before the spectrogram: pre-emphasis and level normalisation."""

import torch
from torch import nn


class PreEmphasis(nn.Module):
    """``y[t] = x[t] - coef * x[t-1]``, with ``x[-1]`` taken as ``x[1]`` (reflection)."""

    def __init__(self, coef: float = 0.97):
        super().__init__()
        self.kernel: torch.Tensor
        self.register_buffer("kernel", torch.tensor([[[-coef, 1.0]]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, T]`` -> ``[N, T]`` (``T`` >= 2)."""
        if x.shape[-1] < 2:  # the reflection needs a second sample
            raise ValueError(f"pre-emphasis needs at least 2 samples, got {x.shape[-1]}")
        # Elementwise, not a 2-tap conv1d: the same numbers, 10x faster on CPU (the conv1d took
        # longer than the whole STFT of a small segmentation network's chunks).
        previous = torch.cat([x[:, 1:2], x[:, :-1]], dim=1)
        return self.kernel[0, 0, 1] * x + self.kernel[0, 0, 0] * previous


def normalize_level(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Zero mean, unit (biased) standard deviation per waveform."""
    return (x - x.mean(dim=-1, keepdim=True)) / (x.std(dim=-1, keepdim=True, unbiased=False) + eps)
