"""The "tf" front ends: TensorFlow-style spectra computed with DFT convolutions.

Frames are cut by a strided convolution with windowed cosine and sine kernels
(zero padding of ``hop // 2`` on each side, the Nyquist bin dropped), so the
whole front end is plain convolutions and exports anywhere.  "tf" (both
families) puts mel filters on that power spectrum; ReDimNet2's "tf_spec" averages
pairs of its bins instead.
"""

import numpy as np
import torch
import torch.nn.functional as F

from ..audio.read import TARGET_SAMPLE_RATE
from .base import LogMelFrontEnd


def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def tf_mel_filterbank(n_bins: int, f_min: float, f_max: float, n_mels: int, sample_rate: int) -> np.ndarray:
    """Mel filters ``[n_bins, n_mels]`` over ``n_bins`` spectrum bins, TensorFlow style.

    Bin ``k`` (k >= 1) is placed at ``k / (n_bins - 1)`` of the Nyquist frequency and
    bin 0 gets no weight, which is how the original "tf" front end lays them out.
    """
    edges = np.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2)
    lower, centre, upper = edges[None, :-2], edges[None, 1:-1], edges[None, 2:]
    bins = _hz_to_mel(np.linspace(0, sample_rate // 2, n_bins))[1:, None]
    weights = np.maximum(0.0, np.minimum((bins - lower) / (centre - lower), (upper - bins) / (upper - centre)))
    return np.vstack([np.zeros((1, n_mels)), weights]).astype(np.float32)


def dft_kernels(n_fft: int, win_length: int) -> tuple:
    """Windowed cosine and sine kernels ``[n_fft // 2, 1, win_length]`` (symmetric Hamming)."""
    n = np.arange(win_length)
    window = 0.54 - 0.46 * np.cos(2 * np.pi * n / (win_length - 1)) if win_length > 1 else np.ones(1)
    k = np.arange(n_fft // 2)
    phase = 2 * np.pi * np.outer(k, n) / n_fft
    real = (np.cos(phase).astype(np.float32) * window.astype(np.float32)).astype(np.float32)
    imag = (np.sin(phase).astype(np.float32) * window.astype(np.float32)).astype(np.float32)
    return torch.from_numpy(real[:, None, :]), torch.from_numpy(imag[:, None, :])


class DFTFrontEnd(LogMelFrontEnd):
    """What the "tf" front ends share: the power spectrum of the conditioned waveform by strided
    convolution (symmetric Hamming window, ``hop // 2`` zero padding, bins 0 .. n_fft/2 - 1),
    clipped to [eps, 1/eps]; ``log(x + eps)``; per-bin mean removal over time."""

    def __init__(
        self,
        n_bins: int,
        hop_length: int,
        *,
        n_fft: int,
        win_length: int,
        eps: float,
        preemphasis: bool,
        normalize_signal: bool,
        signal_eps: float,
        spec_augment,
    ):
        super().__init__(
            n_bins,
            hop_length,
            preemphasis=preemphasis,
            normalize_signal=normalize_signal,
            signal_eps=signal_eps,
            log_floor=eps,
            spec_norm="mn",
            spec_augment=spec_augment,
        )
        self.eps = eps
        self.win_length = win_length
        real, imag = dft_kernels(n_fft, win_length)
        self.dft_real: torch.Tensor
        self.register_buffer("dft_real", real)
        self.dft_imag: torch.Tensor
        self.register_buffer("dft_imag", imag)

    def num_frames(self, num_samples: int) -> int:
        return (num_samples + 2 * (self.hop_length // 2) - self.win_length) // self.hop_length + 1

    def dft_power(self, wave: torch.Tensor) -> torch.Tensor:
        """Power spectrum ``[N, n_fft // 2, frames]``, clipped to [eps, 1/eps]."""
        x = wave.unsqueeze(1)
        pad = self.hop_length // 2
        real = F.conv1d(x, self.dft_real, stride=self.hop_length, padding=pad)
        imag = F.conv1d(x, self.dft_imag, stride=self.hop_length, padding=pad)
        return (real.square() + imag.square()).clamp(self.eps, 1 / self.eps)


class TFMelFrontEnd(DFTFrontEnd):
    """The "tf" front end: pre-emphasis -> DFT power (clipped to [eps, 1/eps]) -> mel filters
    (clipped) -> ``log(x + eps)`` -> per-bin mean removal over time."""

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
        eps: float = 1e-8,
        spec_augment=None,
    ):
        super().__init__(
            n_mels,
            hop_length,
            n_fft=n_fft,
            win_length=win_length,
            eps=eps,
            preemphasis=preemphasis,
            normalize_signal=normalize_signal,
            signal_eps=eps,
            spec_augment=spec_augment,
        )
        filters = tf_mel_filterbank(n_fft // 2, f_min, f_max, n_mels, sample_rate)
        self.mel_filters: torch.Tensor
        self.register_buffer("mel_filters", torch.from_numpy(filters.T.copy())[:, :, None])

    def mel_power(self, wave: torch.Tensor) -> torch.Tensor:
        return F.conv1d(self.dft_power(wave), self.mel_filters).clamp(self.eps, 1 / self.eps)


# The official spectrogram front end normalises the level with this epsilon (its mel ones use 1e-6 / eps).
_SPECTROGRAM_SIGNAL_EPS = 1e-10


class TFSpectrogramFrontEnd(DFTFrontEnd):
    """ReDimNet2's "tf_spec" front end: log power spectrum with adjacent bins averaged.

    Pre-emphasis -> DFT power (as in "tf") -> ``log(x + eps)`` -> per-bin mean removal
    over time -> (SpecAugment in training) -> mean of bin pairs.  Output
    ``[N, n_fft // 4, frames]``.
    """

    def __init__(
        self,
        hop_length: int = 160,
        *,
        n_fft: int = 512,
        win_length: int = 400,
        preemphasis: bool = True,
        normalize_signal: bool = False,
        eps: float = 1e-8,
        spec_augment=None,
    ):
        super().__init__(
            n_fft // 4,
            hop_length,
            n_fft=n_fft,
            win_length=win_length,
            eps=eps,
            preemphasis=preemphasis,
            normalize_signal=normalize_signal,
            signal_eps=_SPECTROGRAM_SIGNAL_EPS,
            spec_augment=None,
        )
        # Masks are drawn on the full spectrum, before the bins are paired.
        self.bin_augment = spec_augment

    def mel_power(self, wave: torch.Tensor) -> torch.Tensor:
        """Power spectrum ``[N, n_fft // 2, frames]`` (no mel filters in this front end)."""
        return self.dft_power(wave)

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        x = super()._normalize(x)
        if self.bin_augment is not None and self.training:
            x = self.bin_augment(x)
        return 0.5 * (x[:, 0::2] + x[:, 1::2])
