"""What both mel front ends share: waveform conditioning, log, normalisation, SpecAugment."""

from typing import Optional

import torch
from torch import nn

from ..layers.spec_augment import SpecAugment
from .preemphasis import PreEmphasis, normalize_level


class LogMelFrontEnd(nn.Module):
    """Waveform ``[N, T]`` (16 kHz) -> log-mel features ``[N, n_mels, frames]``.

    Subclasses provide :meth:`mel_power`, the mel-band power of the conditioned
    waveform.  Features are always computed in float32 without gradients (the
    front end has nothing to train) and returned in the input's dtype.
    """

    def __init__(
        self,
        n_mels: int,
        hop_length: int,
        *,
        preemphasis: bool,
        normalize_signal: bool,
        signal_eps: float,
        log_floor: float,
        spec_norm: Optional[str],
        spec_augment: Optional[SpecAugment],
    ):
        super().__init__()
        self.n_mels = n_mels
        self.hop_length = hop_length
        self.signal_eps = signal_eps if normalize_signal else None
        self.preemphasis = PreEmphasis() if preemphasis else None
        self.log_floor = log_floor
        self.spec_norm = spec_norm if spec_norm != "bn" else nn.BatchNorm1d(n_mels)
        self.spec_augment = spec_augment

    def mel_power(self, wave: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def num_frames(self, num_samples: int) -> int:
        raise NotImplementedError

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.spec_norm, nn.Module):
            return self.spec_norm(x)
        if self.spec_norm == "mn":
            return x - x.mean(dim=-1, keepdim=True)
        if self.spec_norm == "mvn":
            return (x - x.mean(dim=-1, keepdim=True)) / (x.std(dim=-1, keepdim=True) + 1e-8)
        return x

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        dtype = wave.dtype
        with torch.no_grad(), torch.autocast(device_type=wave.device.type, enabled=False):
            x = wave.float()
            if self.signal_eps is not None:
                x = normalize_level(x, self.signal_eps)
            if self.preemphasis is not None:
                x = self.preemphasis(x)
            x = self._normalize(torch.log(self.mel_power(x) + self.log_floor))
            if self.spec_augment is not None and self.training:
                x = self.spec_augment(x)
        return x.to(dtype)
