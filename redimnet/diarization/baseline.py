"""A deliberately simple comparison embedder: statistics of MFCCs (no neural network).

:class:`MFCCStatsEmbedder` maps a window to the mean and standard deviation
of 20 MFCCs (25 ms frames every 10 ms, 40 mel bands, 20-7600 Hz).  It has the
:class:`redimnet.Embedder` methods the diarization pipeline uses, so the
same VAD, windows and clustering can run on it; the benchmark compares it
with ReDimNet.  The statistics are standardised per recording by the
pipeline's clustering only if asked (``center``); here each window vector is
scaled so every dimension has a comparable range (divided by fixed
per-dimension scales learned from nothing: c0 is dropped, the rest are used as is).
"""

import numpy as np

from ..audio.read import TARGET_SAMPLE_RATE


def mel_filterbank(
    bands: int = 40, fft_size: int = 512, low: float = 20.0, high: float = 7600.0, rate: int = TARGET_SAMPLE_RATE
) -> np.ndarray:
    """``[bands, fft_size // 2 + 1]`` triangular filters on the HTK mel scale."""

    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    edges = 700.0 * (10 ** (np.linspace(mel(low), mel(high), bands + 2) / 2595.0) - 1.0)
    bins = np.fft.rfftfreq(fft_size, 1.0 / rate)
    rising = (bins[None, :] - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None])
    falling = (edges[2:, None] - bins[None, :]) / (edges[2:, None] - edges[1:-1, None])
    return np.maximum(0.0, np.minimum(rising, falling))


class MFCCStatsEmbedder:
    """Mean and standard deviation of MFCCs 1-19 per window (38 dimensions); see the module documentation."""

    min_samples = 400
    channel = None
    model = None

    def __init__(self, coefficients: int = 20):
        from scipy.fft import dct

        self._dct = dct
        self.coefficients = coefficients
        self.filters = mel_filterbank()
        self.window = np.hamming(400)

    @property
    def embed_dim(self) -> int:
        return 2 * (self.coefficients - 1)

    def features(self, wave: np.ndarray) -> np.ndarray:
        frames = np.lib.stride_tricks.sliding_window_view(np.asarray(wave, dtype=np.float64), 400)[::160]
        power = np.abs(np.fft.rfft(frames * self.window, 512, axis=1)) ** 2
        logmel = np.log(power @ self.filters.T + 1e-8)
        return self._dct(logmel, type=2, axis=1, norm="ortho")[:, 1 : self.coefficients]

    def embed_prepared(self, waves) -> np.ndarray:
        rows = []
        for wave in waves:
            mfcc = self.features(wave)
            rows.append(np.concatenate([mfcc.mean(axis=0), mfcc.std(axis=0)]))
        return np.asarray(rows, dtype=np.float32).reshape(len(rows), self.embed_dim)
