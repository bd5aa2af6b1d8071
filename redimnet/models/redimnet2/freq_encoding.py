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

    def for_inference(self) -> nn.Module:
        """Inference form on the time-major 2D view ``[N, C, T, F]``."""
        return FastFrequencyEncoding(self)


class FastFrequencyEncoding(nn.Module):
    """:class:`FrequencyEncoding` on ``[N, C, T, F]`` (channels_last memory kept)."""

    def __init__(self, encoding: FrequencyEncoding):
        super().__init__()
        self.table: torch.Tensor
        self.register_buffer("table", encoding.embedding.weight.detach().t()[None, :, None, :].clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.table).contiguous(memory_format=torch.channels_last)
