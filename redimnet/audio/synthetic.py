"""Synthetic speech from a source-filter model (numpy only, deterministic for a seed).

A glottal harmonic source (f0 contour with declination, intonation, jitter and
shimmer, a speaker-specific spectral tilt, breath noise) is shaped by a cascade
of formant resonances whose targets move from vowel to vowel.  A :class:`Voice`
fixes the f0 range, the vocal-tract length (formant scaling), per-vowel formant
habits, the high formants F4/F5, bandwidths, tilt, speaking rate, jitter and
breathiness; :func:`synthesize` speaks a random sequence of vowel-like segments
and pauses, and :func:`record` puts it through a session's channel.

It sits with the audio readers because the library itself uses it: the int8
engine calibrates on it (:mod:`redimnet.fast.int8`).  Corpora, conversations
and the command line built on it are in :mod:`redimnet.testing.synth`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from .read import TARGET_SAMPLE_RATE

__all__ = ["VOWEL_FORMANTS", "Voice", "record", "synthesize", "voice_for"]

# Average formant frequencies F1-F3 (Hz) of English vowels spoken by adult men
# (after Peterson & Barney 1952); speakers scale and perturb them.
VOWEL_FORMANTS = np.array(
    [
        (270, 2290, 3010),
        (390, 1990, 2550),
        (530, 1840, 2480),
        (660, 1720, 2410),
        (730, 1090, 2440),
        (570, 840, 2410),
        (440, 1020, 2240),
        (300, 870, 2240),
        (640, 1190, 2390),
        (490, 1350, 1690),
    ],
    dtype=np.float64,
)


@dataclass(frozen=True)
class Voice:
    """The fixed properties of one synthetic speaker."""

    f0: float  # mean fundamental frequency, Hz
    f0_range: float  # intonation depth, fraction of f0
    formant_scale: float  # 1 / vocal-tract length, relative to an adult male
    vowel_habits: np.ndarray  # [vowels, 3] multiplicative formant offsets
    high_formants: Tuple[float, float]
    bandwidth_scale: float
    tilt: float  # spectral slope exponent of the source (amplitude ~ f ** tilt)
    segment_seconds: float  # mean vowel duration (speaking rate)
    jitter: float  # cycle-to-cycle f0 variation, fraction
    shimmer: float  # amplitude variation, fraction
    breathiness: float  # aspiration noise level

    @classmethod
    def random(cls, rng: np.random.Generator) -> "Voice":
        female = rng.random() < 0.5
        f0 = rng.uniform(165, 255) if female else rng.uniform(85, 150)
        scale = rng.uniform(1.08, 1.25) if female else rng.uniform(0.88, 1.04)
        return cls(
            f0=float(f0),
            f0_range=float(rng.uniform(0.05, 0.3)),
            formant_scale=float(scale),
            vowel_habits=rng.normal(1.0, 0.07, size=VOWEL_FORMANTS.shape).clip(0.8, 1.2),
            high_formants=(float(rng.uniform(3300, 3900) * scale), float(rng.uniform(4200, 5000) * scale)),
            bandwidth_scale=float(rng.uniform(0.7, 1.6)),
            tilt=float(rng.uniform(-1.6, -0.5)),
            segment_seconds=float(rng.uniform(0.08, 0.22)),
            jitter=float(rng.uniform(0.003, 0.02)),
            shimmer=float(rng.uniform(0.02, 0.1)),
            breathiness=float(rng.uniform(0.005, 0.08)),
        )


def voice_for(seed: int, speaker: int) -> Voice:
    """The voice of speaker number ``speaker`` of corpus ``seed`` (independent of other speakers)."""
    return Voice.random(np.random.default_rng([seed, speaker, 101]))


def _envelope(freqs: np.ndarray, formants: np.ndarray, bandwidths: np.ndarray, tilt: float) -> np.ndarray:
    """Magnitude of the vocal-tract cascade (times source tilt) at ``freqs``.

    ``freqs`` ``[..., K]``; ``formants``/``bandwidths`` ``[..., 1, M]`` (broadcast).
    """
    f = freqs[..., None]
    ratio = f / formants
    magnitude = 1.0 / np.sqrt((1.0 - ratio**2) ** 2 + (f * bandwidths / formants**2) ** 2)
    return np.prod(magnitude, axis=-1) * np.maximum(freqs, 50.0) ** tilt


def _smooth_noise(rng: np.random.Generator, length: int, period: int) -> np.ndarray:
    """Random values every ``period`` samples, linearly interpolated."""
    points = rng.standard_normal(length // period + 2)
    return np.interp(np.arange(length) / period, np.arange(points.size), points)


def synthesize(
    voice: Voice, seconds: float, rng: np.random.Generator, sample_rate: int = TARGET_SAMPLE_RATE
) -> np.ndarray:
    """One utterance of ``voice``: about ``seconds`` long, float32 in [-1, 1]."""
    n = int(seconds * sample_rate)
    hop = sample_rate // 200  # control rate: 5 ms
    frames = n // hop + 2
    t_frames = np.arange(frames) * hop

    # segment plan: vowels with pauses
    centres: List[float] = []
    targets: List[np.ndarray] = []
    gate_points: List[Tuple[float, float]] = []
    position = int(rng.uniform(0.02, 0.15) * sample_rate)
    gate_points.append((0, 0.0))
    while position < n:
        length = int(voice.segment_seconds * rng.uniform(0.6, 1.7) * sample_rate)
        vowel = int(rng.integers(len(VOWEL_FORMANTS)))
        formants = VOWEL_FORMANTS[vowel] * voice.vowel_habits[vowel] * voice.formant_scale
        centres.append(position + length / 2)
        targets.append(np.concatenate([formants, voice.high_formants]))
        gate_points += [(position, 0.0), (position + 0.015 * sample_rate, 1.0)]
        position += length
        if rng.random() < 0.15:  # pause
            gate_points += [(position - 0.015 * sample_rate, 1.0), (position, 0.0)]
            position += int(rng.uniform(0.05, 0.25) * sample_rate)
    target_rows = np.array(targets)
    formant_track = np.stack(
        [np.interp(t_frames, centres, target_rows[:, m]) for m in range(target_rows.shape[1])], axis=1
    )
    gate_t, gate_v = zip(*sorted(gate_points))
    gate = np.interp(np.arange(n), gate_t, gate_v)
    loudness = np.exp(0.25 * _smooth_noise(rng, n, int(0.3 * sample_rate)))

    # f0 contour: declination + intonation + jitter
    t = np.arange(n) / sample_rate
    declination = 1.0 + voice.f0_range * (0.5 - t / max(seconds, 1e-3))
    intonation = 1.0 + 0.5 * voice.f0_range * np.sin(2 * np.pi * rng.uniform(0.3, 1.5) * t + rng.uniform(0, 6.3))
    jitter = 1.0 + voice.jitter * _smooth_noise(rng, n, max(int(sample_rate / voice.f0), 1))
    f0 = voice.f0 * declination * intonation * jitter
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate

    # harmonic amplitudes on the control grid, then per sample
    harmonics = int(0.45 * sample_rate / f0.min())
    k = np.arange(1, harmonics + 1)
    f0_frames = np.interp(t_frames, np.arange(n), f0)
    freq = f0_frames[:, None] * k[None, :]  # [frames, K]
    bandwidths = np.array([60.0, 90.0, 120.0, 180.0, 250.0]) * voice.bandwidth_scale
    amp = _envelope(freq, formant_track[:, None, :], bandwidths, voice.tilt)
    amp[freq >= 0.47 * sample_rate] = 0.0
    sample_grid = np.arange(n) / hop
    wave = np.zeros(n)
    for index in range(harmonics):
        a = np.interp(sample_grid, np.arange(frames), amp[:, index])
        wave += a * np.sin(k[index] * phase)
    shimmer = 1.0 + voice.shimmer * _smooth_noise(rng, n, max(int(sample_rate / voice.f0), 1))
    voiced = wave * shimmer
    voiced /= np.sqrt(np.mean(voiced**2)) + 1e-12

    # breath noise shaped by the speaker's neutral tract
    spectrum = np.fft.rfft(rng.standard_normal(n))
    bins = np.fft.rfftfreq(n, 1.0 / sample_rate)
    neutral = np.concatenate([VOWEL_FORMANTS.mean(0) * voice.formant_scale, voice.high_formants])
    spectrum *= _envelope(bins, neutral[None, :], bandwidths[None, :], voice.tilt + 1.0)
    breath = np.fft.irfft(spectrum, n)
    breath /= np.sqrt(np.mean(breath**2)) + 1e-12
    speech = (voiced + voice.breathiness * 4 * breath) * gate * loudness
    return speech.astype(np.float32)


def record(
    speech: np.ndarray,
    rng: np.random.Generator,
    channel_tilt: float,
    snr_db: float,
    sample_rate: int = TARGET_SAMPLE_RATE,
) -> np.ndarray:
    """A session's channel: a gentle spectral tilt, background noise at ``snr_db``, peak normalisation."""
    spectrum = np.fft.rfft(speech)
    bins = np.fft.rfftfreq(speech.size, 1.0 / sample_rate)
    spectrum *= (np.maximum(bins, 100.0) / 1000.0) ** channel_tilt
    wave = np.fft.irfft(spectrum, speech.size)
    noise = np.cumsum(rng.standard_normal(speech.size)) * 0.02 + rng.standard_normal(speech.size)
    noise -= noise.mean()
    power = np.mean(wave**2) + 1e-12
    wave = wave + noise * np.sqrt(power / (np.mean(noise**2) * 10 ** (snr_db / 10)))
    return (wave / (np.abs(wave).max() + 1e-9) * rng.uniform(0.3, 0.9)).astype(np.float32)
