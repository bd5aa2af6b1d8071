"""Learned frequency position encoding (``use_freq_pos_enc``)."""

import torch
from torch import nn


class FrequencyEncoding(nn.Module):
    """Adds a learned vector of ``channels`` values to every frequency bin of ``[N, C, F, T]``."""

    def __init__(self, channels: int, num_freq: int):
        super().__init__()
        self.embedding = nn.Embedding(num_freq, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.embedding.weight.t()[None, :, :, None]
