"""Frequency-wise squeeze-and-excitation: one gate per frequency bin."""

import torch
from torch import nn


class FrequencySE(nn.Module):
    """Scales every frequency bin of ``[N, C, F, T]`` by a gate computed from
    the bin's mean over channels and time."""

    def __init__(self, num_freq: int, hidden: int):
        super().__init__()
        self.squeeze = nn.Linear(num_freq, hidden)
        self.excite = nn.Linear(hidden, num_freq)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = x.mean(dim=(1, 3))
        gate = torch.sigmoid(self.excite(torch.relu(self.squeeze(gate))))
        return x * gate[:, None, :, None]

    def for_inference(self) -> nn.Module:
        """Inference form on the time-major 2D layout, scaling in place."""
        from ..optimize.fused_2d import FastFrequencySE

        return FastFrequencySE(self)
