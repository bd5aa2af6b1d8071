"""ReDimNet2's front ends: the toolkit's "pt" and "tf" log-mel front ends, plus "tf_spec"."""

import torch
import torch.nn.functional as F

from ..frontend import make_frontend as make_mel_frontend
from ..frontend.base import LogMelFrontEnd
from ..frontend.tf_mel import dft_kernels
from ..layers.spec_augment import SpecAugment
from .config import ReDimNet2Config

# The official spectrogram front end normalises the level with this epsilon (its mel ones use 1e-6 / eps).
_SPECTROGRAM_SIGNAL_EPS = 1e-10


class TFSpectrogramFrontEnd(LogMelFrontEnd):
    """The "tf_spec" front end: log power spectrum with adjacent bins averaged.

    Pre-emphasis -> DFT power by strided convolution (symmetric Hamming window,
    ``hop // 2`` zero padding, bins 0 .. n_fft/2 - 1) clipped to [eps, 1/eps] ->
    ``log(x + eps)`` -> per-bin mean removal over time -> (SpecAugment in
    training) -> mean of bin pairs.  Output ``[N, n_fft // 4, frames]``.
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
            preemphasis=preemphasis,
            normalize_signal=normalize_signal,
            signal_eps=_SPECTROGRAM_SIGNAL_EPS,
            log_floor=eps,
            spec_norm="mn",
            spec_augment=None,
        )
        # Masks are drawn on the full spectrum, before the bins are paired.
        self.bin_augment = spec_augment
        self.eps = eps
        self.win_length = win_length
        real, imag = dft_kernels(n_fft, win_length)
        self.dft_real: torch.Tensor
        self.register_buffer("dft_real", real)
        self.dft_imag: torch.Tensor
        self.register_buffer("dft_imag", imag)

    def num_frames(self, num_samples: int) -> int:
        return (num_samples + 2 * (self.hop_length // 2) - self.win_length) // self.hop_length + 1

    def mel_power(self, wave: torch.Tensor) -> torch.Tensor:
        """Power spectrum ``[N, n_fft // 2, frames]`` (no mel filters in this front end)."""
        x = wave.unsqueeze(1)
        pad = self.hop_length // 2
        real = F.conv1d(x, self.dft_real, stride=self.hop_length, padding=pad)
        imag = F.conv1d(x, self.dft_imag, stride=self.hop_length, padding=pad)
        return (real.square() + imag.square()).clamp(self.eps, 1 / self.eps)

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        x = super()._normalize(x)
        if self.bin_augment is not None and self.training:
            x = self.bin_augment(x)
        return 0.5 * (x[:, 0::2] + x[:, 1::2])


def make_frontend(config: ReDimNet2Config) -> LogMelFrontEnd:
    """The front end a ReDimNet2 configuration asks for (``feat_type`` and ``spec_params``)."""
    if config.frontend != "tf_spec":
        return make_mel_frontend(config)
    params = dict(config.spec_params)
    spec_augment = None
    if params.get("do_spec_aug", False):
        spec_augment = SpecAugment(
            params.get("freq_mask_width", (0, 8)),
            params.get("time_mask_width", (0, 10)),
            params.get("freq_start_bin", 0),
            repeats=params.get("num_apply_spec_aug", 1),
        )
    options = {
        "hop_length": params.get("hop_length", 160),
        "n_fft": params.get("n_fft", 512),
        "win_length": params.get("win_length", 400),
        "preemphasis": params.get("do_preemph", True),
        "normalize_signal": params.get("norm_signal", False),
    }
    if "eps" in params:
        options["eps"] = params["eps"]
    return TFSpectrogramFrontEnd(**options, spec_augment=spec_augment)
