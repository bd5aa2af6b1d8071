"""Voice activity detection: where in a recording someone speaks.

A detector is any object with ``regions(source) -> [(start, end), ...]``
(seconds, sorted, not overlapping) taking a
:class:`redimnet.audio.stream.AudioSource`; subclass
:class:`VoiceActivityDetector` to plug in another one.  Two come with the
package; both read the recording block by block and keep only one number
per 10-32 ms frame, so memory stays small for hours of audio:

``SileroVAD`` (the default when the ``silero-vad`` package is installed,
``pip install "redimnet[diarize]"``)
    The Silero VAD network (MIT licence).  Its model files ship inside the
    ``silero-vad`` wheel, so nothing is downloaded at run time; it runs on
    onnxruntime when that is installed, else as TorchScript on torch.  Only
    the network is used (not torchaudio): one speech probability per 32 ms.

``EnergyVAD`` (the fallback, no extra dependencies)
    Energy in the speech band (150-4000 Hz) of 25 ms frames every 10 ms,
    compared with the recording's own noise floor (its 10th percentile):
    frames more than ``margin_db`` above it are speech.  Good on clean or
    stationary-noise recordings, fooled by music and non-speech noise.

Both turn frame scores into regions the same way (:func:`scores_to_regions`):
hysteresis (a region starts above ``onset`` and ends below ``offset``),
``pad`` seconds added on both sides, gaps shorter than ``min_silence``
bridged, regions shorter than ``min_speech`` dropped.
"""

from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .._utils.optional import MissingDependencyError, install_hint
from ..audio.read import TARGET_SAMPLE_RATE
from ..audio.stream import AudioSource
from ..errors import InvalidArgumentError
from .segments import Segment

Regions = List[Tuple[float, float]]

DEFAULT_MIN_SPEECH = 0.25
DEFAULT_MIN_SILENCE = 0.3
DEFAULT_PAD = 0.05


def scores_to_regions(
    scores: np.ndarray,
    frame_seconds: float,
    onset: float,
    offset: float,
    duration: float,
    min_speech: float = DEFAULT_MIN_SPEECH,
    min_silence: float = DEFAULT_MIN_SILENCE,
    pad: float = DEFAULT_PAD,
) -> Regions:
    """Speech regions from one score per frame (frame ``i`` covers ``[i, i+1) * frame_seconds``)."""
    if offset > onset:
        raise InvalidArgumentError(
            f"the VAD offset threshold ({offset}) must not be above the onset threshold ({onset})"
        )
    scores = np.asarray(scores, dtype=np.float64)
    raw: Regions = []
    active, begin = False, 0
    above_onset = scores > onset
    below_offset = scores < offset
    # walk only the frames where the state can change
    index = 0
    count = len(scores)
    while index < count:
        if not active:
            hits = np.flatnonzero(above_onset[index:])
            if not hits.size:
                break
            begin = index + int(hits[0])
            active = True
            index = begin + 1
        else:
            hits = np.flatnonzero(below_offset[index:])
            end = count if not hits.size else index + int(hits[0])
            raw.append((begin * frame_seconds, end * frame_seconds))
            active = False
            index = end + 1
    regions: Regions = []
    for raw_start, raw_end in raw:
        start, stop = max(0.0, raw_start - pad), min(duration, raw_end + pad)
        if regions and start - regions[-1][1] < min_silence:
            regions[-1] = (regions[-1][0], max(regions[-1][1], stop))
        else:
            regions.append((start, stop))
    return [(s, e) for s, e in regions if e - s >= min_speech]


class VoiceActivityDetector:
    """Base class of voice activity detectors: override :meth:`regions`."""

    name = "vad"

    def regions(self, source: AudioSource) -> Regions:
        """Sorted, disjoint ``(start, end)`` speech regions of ``source`` in seconds."""
        raise NotImplementedError

    def segments(self, source: AudioSource, label: str = "speech") -> List[Segment]:
        """The regions as :class:`Segment` objects labelled ``label``."""
        return [Segment(round(s, 3), round(e, 3), label) for s, e in self.regions(source)]


class EnergyVAD(VoiceActivityDetector):
    """Speech-band energy against the recording's noise floor (see the module documentation).

    ``margin_db`` (default 12): how far above the noise floor a frame must be
    to start speech; speech ends below ``margin_db - 4``.  ``floor_db``
    (default -60 dBFS): frames quieter than this are never speech, whatever the floor.
    """

    name = "energy"
    frame_seconds = 0.01

    def __init__(
        self,
        margin_db: float = 12.0,
        floor_db: float = -60.0,
        min_speech: float = DEFAULT_MIN_SPEECH,
        min_silence: float = DEFAULT_MIN_SILENCE,
        pad: float = DEFAULT_PAD,
    ):
        self.margin_db, self.floor_db = float(margin_db), float(floor_db)
        self.min_speech, self.min_silence, self.pad = min_speech, min_silence, pad

    def frame_levels(self, blocks: Iterable[np.ndarray]) -> np.ndarray:
        """Speech-band level (dBFS) of each 10 ms frame (25 ms Hann window)."""
        hop = int(self.frame_seconds * TARGET_SAMPLE_RATE)
        width = 400
        window = np.hanning(width)  # float64: no overflow for samples far outside [-1, 1]
        bins = np.fft.rfftfreq(width, 1.0 / TARGET_SAMPLE_RATE)
        band = (bins >= 150) & (bins <= 4000)
        scale = 2.0 / (np.sum(window**2) * width)
        levels = []
        carry = np.zeros(0, dtype=np.float32)
        for block in blocks:
            data = np.concatenate([carry, block]) if carry.size else block
            count = (len(data) - width) // hop + 1 if len(data) >= width else 0
            if count > 0:
                frames = np.lib.stride_tricks.sliding_window_view(data, width)[::hop][:count]
                power = np.abs(np.fft.rfft(frames * window, axis=1)[:, band]) ** 2
                levels.append(10 * np.log10(power.sum(axis=1) * scale + 1e-12))
                carry = data[count * hop :]
            else:
                carry = data
        if carry.size:  # the tail, zero-padded to one frame
            tail = np.zeros(width, dtype=np.float32)
            tail[: len(carry)] = carry[:width]
            power = np.abs(np.fft.rfft(tail * window)[band]) ** 2
            levels.append(np.array([10 * np.log10(power.sum() * scale + 1e-12)]))
        return np.concatenate(levels) if levels else np.zeros(0)

    def regions(self, source: AudioSource) -> Regions:
        levels = self.frame_levels(source.blocks())
        if not levels.size:
            return []
        noise = float(np.percentile(levels, 10))
        scores = np.where(levels > self.floor_db, levels - noise, -np.inf)
        return scores_to_regions(
            scores,
            self.frame_seconds,
            self.margin_db,
            self.margin_db - 4.0,
            source.duration,
            self.min_speech,
            self.min_silence,
            self.pad,
        )


class SileroVAD(VoiceActivityDetector):
    """The Silero VAD network from the installed ``silero-vad`` wheel (see the module documentation).

    ``threshold`` (default 0.5): speech probability that starts speech;
    speech ends below ``threshold - 0.15``.  ``onnx``: use onnxruntime
    (default: when installed).
    """

    name = "silero"
    chunk = 512  # samples per probability at 16 kHz (32 ms)

    def __init__(
        self,
        threshold: float = 0.5,
        min_speech: float = DEFAULT_MIN_SPEECH,
        min_silence: float = DEFAULT_MIN_SILENCE,
        pad: float = DEFAULT_PAD,
        onnx: Optional[bool] = None,
    ):
        import torch

        threads = torch.get_num_threads()
        try:
            from silero_vad import load_silero_vad
        except ModuleNotFoundError as error:
            if error.name != "silero_vad":
                raise
            raise MissingDependencyError(
                str(install_hint("silero_vad", "the Silero VAD"))  # an optional module
                + " (or use the energy VAD: --vad energy)"
            ) from None
        if onnx is None:
            try:
                import onnxruntime  # noqa: F401

                onnx = True
            except ImportError:
                onnx = False
        if not 0.15 < threshold < 1:
            raise InvalidArgumentError(f"the Silero VAD threshold must be between 0.15 and 1, got {threshold}")
        try:
            self.model = load_silero_vad(onnx=onnx)
        finally:  # importing silero_vad sets torch to one thread for the whole process; the model must keep its own
            torch.set_num_threads(threads)
        self.threshold = float(threshold)
        self.min_speech, self.min_silence, self.pad = min_speech, min_silence, pad

    def probabilities(self, blocks: Iterable[np.ndarray]) -> np.ndarray:
        """Speech probability of each 32 ms chunk."""
        import torch

        self.model.reset_states()
        probabilities = []
        carry = np.zeros(0, dtype=np.float32)
        with torch.inference_mode():
            for block in blocks:
                data = np.concatenate([carry, block]) if carry.size else block
                whole = len(data) // self.chunk * self.chunk
                for first in range(0, whole, self.chunk):
                    chunk = torch.from_numpy(np.ascontiguousarray(data[first : first + self.chunk]))
                    probabilities.append(float(self.model(chunk, TARGET_SAMPLE_RATE)))
                carry = data[whole:]
            if carry.size:
                tail = np.zeros(self.chunk, dtype=np.float32)
                tail[: len(carry)] = carry
                probabilities.append(float(self.model(torch.from_numpy(tail), TARGET_SAMPLE_RATE)))
        return np.asarray(probabilities)

    def regions(self, source: AudioSource) -> Regions:
        probabilities = self.probabilities(source.blocks())
        return scores_to_regions(
            probabilities,
            self.chunk / TARGET_SAMPLE_RATE,
            self.threshold,
            self.threshold - 0.15,
            source.duration,
            self.min_speech,
            self.min_silence,
            self.pad,
        )


class OracleVAD(VoiceActivityDetector):
    """Given regions (for example a reference RTTM's speech), for evaluating the later stages alone."""

    name = "oracle"

    def __init__(self, regions: Sequence[Tuple[float, float]]):
        from .segments import merge_regions

        self._regions = [(float(s), float(e)) for s, e in merge_regions(regions)]

    def regions(self, source: AudioSource) -> Regions:
        return [(s, min(e, source.duration)) for s, e in self._regions if s < source.duration]


VAD_NAMES = ("auto", "silero", "energy")


def make_vad(name: str = "auto", **options) -> VoiceActivityDetector:
    """A detector by name: ``silero``, ``energy``, or ``auto`` (Silero when installed, else energy).

    ``options``: ``threshold`` (Silero) or ``margin_db`` (energy), and
    ``min_speech`` / ``min_silence`` / ``pad`` for both; ``None`` values
    keep the defaults.
    """
    options = {k: v for k, v in options.items() if v is not None}
    if name == "auto":
        import importlib.util

        # find_spec, not import: importing silero_vad changes torch's thread count (SileroVAD restores it)
        name = "silero" if importlib.util.find_spec("silero_vad") is not None else "energy"
    if name == "silero":
        options.pop("margin_db", None)
        return SileroVAD(**options)
    if name == "energy":
        options.pop("threshold", None)
        return EnergyVAD(**options)
    raise InvalidArgumentError(f"unknown VAD {name!r}; choose one of {', '.join(VAD_NAMES)}")
