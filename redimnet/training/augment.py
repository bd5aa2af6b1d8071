"""On-the-fly waveform augmentation: crops, speed changes, additive noise, reverberation.

All functions take a :class:`numpy.random.Generator`, so a training example's
augmentation is a pure function of its seed (which makes resumed runs repeat
exactly, whatever the number of DataLoader workers).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from ..audio.read import TARGET_SAMPLE_RATE, read_excerpt, resample
from ..errors import RedimnetError

PathLike = Union[str, os.PathLike]
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
NOISE_KINDS = ("noise", "music", "babble")


def random_crop(wave: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``length``-sample window; a shorter signal is repeated to fill it."""
    if wave.size < length:
        wave = np.tile(wave, int(np.ceil(length / max(wave.size, 1))) + 1)
    start = int(rng.integers(0, wave.size - length + 1))
    return wave[start : start + length]


def change_speed(wave: np.ndarray, factor: float) -> np.ndarray:
    """Play ``factor`` times faster (pitch and formants move with it), as Kaldi's speed perturbation."""
    if factor == 1.0:
        return wave
    return resample(np.asarray(wave, dtype=np.float32), 1000.0 * factor, 1000.0)


def _power(wave: np.ndarray) -> float:
    return float(np.mean(np.square(wave, dtype=np.float64))) + 1e-10


def add_noise(wave: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``wave + noise`` with the noise scaled to ``snr_db`` below the signal."""
    if noise.size < wave.size:
        noise = np.tile(noise, int(np.ceil(wave.size / max(noise.size, 1))))
    noise = noise[: wave.size]
    gain = np.sqrt(_power(wave) / (_power(noise) * 10.0 ** (snr_db / 10.0)))
    return (wave + gain * noise).astype(np.float32)


def reverberate(wave: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolve with a room impulse response (unit energy), aligned on its direct-path peak, same length."""
    rir = np.asarray(rir, dtype=np.float64)
    rir = rir / (np.sqrt(np.sum(rir**2)) + 1e-10)
    size = wave.size + rir.size - 1
    n_fft = 1 << (size - 1).bit_length()
    wet = np.fft.irfft(np.fft.rfft(wave, n_fft) * np.fft.rfft(rir, n_fft), n_fft)
    delay = int(np.argmax(np.abs(rir)))
    wet = wet[delay : delay + wave.size]
    # keep the loudness of the dry signal
    wet *= np.sqrt(_power(wave) / _power(wet))
    return wet.astype(np.float32)


def _audio_files(folder: Path) -> List[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())


@dataclass
class AugmentationSettings:
    """What :class:`Augmenter` does; mirrors the ``augment`` config section."""

    prob: float = 0.6
    noise_dir: Optional[str] = None
    rir_dir: Optional[str] = None
    snr: Dict[str, Tuple[float, float]] = field(
        default_factory=lambda: {"noise": (0.0, 15.0), "music": (5.0, 15.0), "babble": (13.0, 20.0)}
    )
    babble_speakers: Tuple[int, int] = (3, 8)


class Augmenter:
    """Additive noise (MUSAN-style folders) and reverberation (an RIR folder), chosen at random.

    The noise folder's subfolders ``noise``, ``music`` and ``speech`` (or ``babble``)
    give the three noise kinds; babble mixes several ``speech`` files.  A folder
    without those subfolders is used as ``noise``.  File lists are made once;
    the audio is read when needed.
    """

    def __init__(self, settings: AugmentationSettings, sample_rate: int = TARGET_SAMPLE_RATE):
        self.settings = settings
        self.sample_rate = sample_rate
        self.noise_files: Dict[str, List[Path]] = {}
        self.rir_files: List[Path] = []
        if settings.noise_dir:
            root = Path(settings.noise_dir)
            for kind, names in (("noise", ("noise",)), ("music", ("music",)), ("babble", ("speech", "babble"))):
                files = [f for name in names if (root / name).is_dir() for f in _audio_files(root / name)]
                if files:
                    self.noise_files[kind] = files
            if not self.noise_files:
                files = _audio_files(root)
                if not files:
                    raise RedimnetError(f"augment.noise: no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {root}")
                self.noise_files["noise"] = files
        if settings.rir_dir:
            self.rir_files = _audio_files(Path(settings.rir_dir))
            if not self.rir_files:
                raise RedimnetError(
                    f"augment.rir: no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {settings.rir_dir}"
                )

    @property
    def kinds(self) -> List[str]:
        kinds = (["reverb"] if self.rir_files else []) + [k for k in NOISE_KINDS if k in self.noise_files]
        return kinds

    def _noise_clip(self, path: Path, length: int, rng: np.random.Generator) -> np.ndarray:
        return random_crop(read_excerpt(path, self.sample_rate), length, rng)

    def __call__(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        kinds = self.kinds
        if not kinds or rng.random() >= self.settings.prob:
            return wave
        kind = kinds[int(rng.integers(len(kinds)))]
        if kind == "reverb":
            path = self.rir_files[int(rng.integers(len(self.rir_files)))]
            return reverberate(wave, read_excerpt(path, self.sample_rate))
        files = self.noise_files[kind]
        low, high = self.settings.snr.get(kind, (0.0, 15.0))
        if kind == "babble":
            talkers = int(rng.integers(*self.settings.babble_speakers))
            noise = np.zeros_like(wave)
            for _ in range(max(talkers, 1)):
                clip = self._noise_clip(files[int(rng.integers(len(files)))], wave.size, rng)
                noise += clip / np.sqrt(_power(clip))
        else:
            noise = self._noise_clip(files[int(rng.integers(len(files)))], wave.size, rng)
        return add_noise(wave, noise, float(rng.uniform(low, high)))
