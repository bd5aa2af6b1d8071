"""Frequency-wise squeeze-and-excitation: one gate per frequency bin."""

import torch
from torch import nn

from ..fast.layout import channels_last_rows


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
        return FastFrequencySE(self)


class FastFrequencySE(nn.Module):
    """:class:`~redimnet.layers.FrequencySE` on ``[N, C, T, F]``; scales ``x`` in place when no
    autograd graph is recorded (callers pass a fresh tensor)."""

    def __init__(self, se: FrequencySE):
        super().__init__()
        self.squeeze = se.squeeze
        self.excite = se.excite

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_contiguous():  # NCHW-ordered (the oneDNN-blocked path)
            gate = x.mean(dim=(1, 2))
        else:  # channels_last: summing over time first reads [N, T, F, C] memory in order
            # (about twice as fast as ``x.mean(dim=(1, 2))``)
            gate = channels_last_rows(x).sum(dim=1).mean(dim=-1) / x.shape[2]
        gate = torch.sigmoid(self.excite(torch.relu(self.squeeze(gate))))[:, None, None, :]
        # In place when no autograd graph is recorded: ``x`` is a fresh conv output here.
        return x * gate if torch.is_grad_enabled() else x.mul_(gate)
