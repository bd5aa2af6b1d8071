"""SpecAugment-style masking of log-mel features during training."""

from typing import Tuple

import torch
from torch import nn


class SpecAugment(nn.Module):
    """Zeroes one random band of frames and one random band of frequency bins per example.

    Band widths are drawn uniformly from ``[low, high)`` of ``time_mask_width``
    and ``freq_mask_width``; band starts are drawn from ``[freq_start_bin, D - widest)``.
    The masking is repeated ``repeats`` times.  Only active in training mode.
    """

    def __init__(
        self,
        freq_mask_width: Tuple[int, int] = (0, 8),
        time_mask_width: Tuple[int, int] = (0, 10),
        freq_start_bin: int = 0,
        repeats: int = 1,
    ):
        super().__init__()
        self.freq_mask_width = tuple(freq_mask_width)
        self.time_mask_width = tuple(time_mask_width)
        self.freq_start_bin = freq_start_bin
        self.repeats = repeats

    def _mask(self, x: torch.Tensor, axis: int, width_range: Tuple[int, ...]) -> torch.Tensor:
        n, size = x.shape[0], x.shape[axis]
        width = torch.randint(width_range[0], width_range[1], (n, 1), device=x.device)
        high = max(1, size - int(width.max()))
        start = torch.randint(self.freq_start_bin, max(high, self.freq_start_bin + 1), (n, 1), device=x.device)
        position = torch.arange(size, device=x.device).view(1, -1)
        band = (position >= start) & (position < start + width)  # [N, size]
        band = band.unsqueeze(2) if axis == 1 else band.unsqueeze(1)
        return x.masked_fill(band, 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[N, freq, time]``."""
        if not self.training:
            return x
        for _ in range(self.repeats):
            x = self._mask(x, 2, self.time_mask_width)
            x = self._mask(x, 1, self.freq_mask_width)
        return x

    def extra_repr(self) -> str:
        return f"freq_mask_width={self.freq_mask_width}, time_mask_width={self.time_mask_width}"
