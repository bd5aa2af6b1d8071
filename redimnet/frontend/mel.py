"""The "pt" front end: power mel spectrogram from a centred STFT (torchaudio-compatible)."""

import math

import torch

from ..audio.read import TARGET_SAMPLE_RATE
from .base import LogMelFrontEnd


def hz_to_mel(hz):
    """HTK mel scale."""
    return 2595.0 * math.log10(1.0 + hz / 700.0)


def htk_mel_filterbank(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int) -> torch.Tensor:
    """Triangular HTK-mel filters, unnormalised, ``[n_freqs, n_mels]``.

    Band edges are equally spaced on the mel scale between ``f_min`` and
    ``f_max``; each filter rises linearly from its lower edge to its centre
    and falls to its upper edge, evaluated at the STFT bin frequencies.
    """
    # Computed on the CPU even under a ``torch.device("meta")`` context (checkpoint layout checks):
    # these ops on meta tensors would import torch._dynamo, seconds of start-up for every command.
    bin_hz = torch.linspace(0, sample_rate // 2, n_freqs, dtype=torch.float32, device="cpu")
    edges_mel = torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2, dtype=torch.float32, device="cpu")
    edges_hz = 700.0 * (10.0 ** (edges_mel / 2595.0) - 1.0)
    lower, centre, upper = edges_hz[:-2], edges_hz[1:-1], edges_hz[2:]
    rising = (bin_hz[:, None] - lower) / (centre - lower)
    falling = (upper - bin_hz[:, None]) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


class MelSpectrogramFrontEnd(LogMelFrontEnd):
    """Pre-emphasis -> |STFT|^2 (periodic Hamming window, centred, reflect padding)
    -> HTK mel filters -> ``log(x + 1e-6)`` -> per-bin mean removal over time."""

    def __init__(
        self,
        n_mels: int = 72,
        hop_length: int = 160,
        *,
        sample_rate: int = TARGET_SAMPLE_RATE,
        n_fft: int = 512,
        win_length: int = 400,
        f_min: float = 20,
        f_max: float = 7600,
        preemphasis: bool = True,
        normalize_signal: bool = False,
        spec_norm="mn",
        spec_augment=None,
    ):
        super().__init__(
            n_mels,
            hop_length,
            preemphasis=preemphasis,
            normalize_signal=normalize_signal,
            signal_eps=1e-6,
            log_floor=1e-6,
            spec_norm=spec_norm,
            spec_augment=spec_augment,
        )
        self.n_fft = n_fft
        self.win_length = win_length
        self.window: torch.Tensor
        self.register_buffer("window", torch.hamming_window(win_length, periodic=True, device="cpu"))
        self.mel_filters: torch.Tensor
        self.register_buffer("mel_filters", htk_mel_filterbank(n_fft // 2 + 1, f_min, f_max, n_mels, sample_rate))

    def num_frames(self, num_samples: int) -> int:
        return num_samples // self.hop_length + 1

    def mel_power(self, wave: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(
            wave,
            self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        power = spec.abs().pow(2)
        return torch.matmul(power.transpose(1, 2), self.mel_filters).transpose(1, 2)
