"""Load the original ReDimNet implementation for side-by-side timing.

The original's mel front end imports ``torchaudio``, which this project does
not use.  :func:`install_torchaudio_standin` puts a tiny ``torchaudio`` module
into ``sys.modules`` whose only member is ``transforms.MelSpectrogram``, a
``torch.stft`` power mel spectrogram of the same cost (HTK mel scale, no filter
normalisation, centred STFT with reflect padding), so the original can be
imported and timed without torchaudio installed.
"""

import contextlib
import importlib
import io
import sys
import types
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from redimnet.frontend.mel import htk_mel_filterbank


class _Buffers(nn.Module):
    """Holds one named buffer (so state-dict keys match torchaudio's)."""

    def __init__(self, name: str, value: torch.Tensor):
        super().__init__()
        self.register_buffer(name, value)


class MelSpectrogramStandIn(nn.Module):
    """Power mel spectrogram ``[..., T] -> [..., n_mels, frames]`` (torchaudio's defaults where unused).

    Buffers are named ``spectrogram.window`` and ``mel_scale.fb`` as in
    torchaudio, so the original's state dicts load unchanged.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 400,
        win_length: Optional[int] = None,
        hop_length: Optional[int] = None,
        f_min: float = 0.0,
        f_max: Optional[float] = None,
        n_mels: int = 128,
        window_fn: Callable[..., torch.Tensor] = torch.hann_window,
        **unused,
    ):
        super().__init__()
        self.n_fft = n_fft
        self.win_length = win_length or n_fft
        self.hop_length = hop_length or self.win_length // 2
        self.spectrogram = _Buffers("window", window_fn(self.win_length))
        self.mel_scale = _Buffers(
            "fb", htk_mel_filterbank(n_fft // 2 + 1, f_min, f_max or sample_rate / 2, n_mels, sample_rate)
        )

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        shape = wave.shape
        spec = torch.stft(
            wave.reshape(-1, shape[-1]),
            self.n_fft,
            self.hop_length,
            self.win_length,
            self.spectrogram.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        power = spec.abs().pow(2.0)
        mel = torch.matmul(power.transpose(-1, -2), self.mel_scale.fb).transpose(-1, -2)
        return mel.reshape(shape[:-1] + mel.shape[-2:])


def install_scipy_standin() -> None:
    """Register a minimal ``scipy.signal.windows`` (numpy windows) when scipy is absent.

    The original imports it at module level for its "tf" front end only.
    """
    try:
        import scipy.signal  # noqa: F401

        return
    except ImportError:
        pass
    scipy = types.ModuleType("scipy")
    signal = types.ModuleType("scipy.signal")
    windows = types.ModuleType("scipy.signal.windows")
    windows.hamming = lambda length: np.hamming(length)
    windows.kaiser = lambda length, beta=12.0: np.kaiser(length, beta)
    signal.windows = windows
    scipy.signal = signal
    sys.modules.update({"scipy": scipy, "scipy.signal": signal, "scipy.signal.windows": windows})


def install_torchaudio_standin() -> None:
    """Register the stand-in as ``torchaudio`` (only if no real torchaudio is imported)."""
    if "torchaudio" in sys.modules:
        return
    package = types.ModuleType("torchaudio")
    transforms = types.ModuleType("torchaudio.transforms")
    transforms.MelSpectrogram = MelSpectrogramStandIn
    package.transforms = transforms
    sys.modules["torchaudio"] = package
    sys.modules["torchaudio.transforms"] = transforms


def import_original(checkout: Path):
    """The original's ``redimnet.model`` module from a checkout directory.

    The original package is also called ``redimnet``; it is imported under the
    name ``redimnet_original`` by loading its files directly, so both can live
    in one process.
    """
    checkout = Path(checkout)
    package_dir = checkout / "redimnet"
    if not (package_dir / "model.py").is_file():
        raise FileNotFoundError(
            f"{checkout}: not a checkout of the original ReDimNet (expected {package_dir / 'model.py'})"
        )
    install_torchaudio_standin()
    install_scipy_standin()
    # The original imports itself as ``redimnet.layers...``; swap the module
    # table while importing so those names resolve to the checkout.
    saved = {name: mod for name, mod in sys.modules.items() if name == "redimnet" or name.startswith("redimnet.")}
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, str(checkout))
    try:
        model_module = importlib.import_module("redimnet.model")
    finally:
        sys.path.remove(str(checkout))
        for name in [n for n in sys.modules if n == "redimnet" or n.startswith("redimnet.")]:
            del sys.modules[name]
        sys.modules.update(saved)
    return model_module


def build_original(checkout: Path, model_config: dict, state_dict: dict) -> nn.Module:
    """``ReDimNetWrap(**model_config)`` from the checkout with ``state_dict`` loaded, eval mode."""
    module = import_original(checkout)
    model = module.ReDimNetWrap(**model_config)
    model.load_state_dict(state_dict)
    return model.eval()


def build_original_redimnet2(checkout: Path, model_config: dict, state_dict: dict) -> nn.Module:
    """The official ReDimNet2 ``ReDimNet2Wrap(**model_config)`` from a checkout of PalabraAI/redimnet2,
    ``state_dict`` loaded strictly, eval mode (its package is ``redimnet2``, no clash with ours)."""
    checkout = Path(checkout)
    if not (checkout / "redimnet2" / "redimnet2.py").is_file():
        raise FileNotFoundError(f"{checkout}: not a checkout of ReDimNet2 (expected redimnet2/redimnet2.py)")
    install_torchaudio_standin()  # only its "pt" front end uses it; the release models use "tf"
    install_scipy_standin()
    sys.path.insert(0, str(checkout))
    try:
        module = importlib.import_module("redimnet2.redimnet2")
    finally:
        sys.path.remove(str(checkout))
    with contextlib.redirect_stdout(io.StringIO()):  # its constructor prints
        model = module.ReDimNet2Wrap(**model_config)
    model.load_state_dict(state_dict, strict=True)
    return model.eval()
