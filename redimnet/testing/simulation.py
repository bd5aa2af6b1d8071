"""Simulated conversations from single-speaker recordings, with their exact reference.

For developing and training diarization (and segmentation) without annotated
meetings: give any single-speaker material -- recordings listed per speaker
(:func:`speakers_from_lists`, :func:`speakers_from_folder`), voices of the
project's synthetic generator (:class:`SyntheticSpeaker`), pitch-shifted
siblings of either (:class:`ShiftedSpeaker`, a different speaker as far as
the reference is concerned) -- and get a conversation: the mixture and who
speaks when, overlaps included.

Flow (one way)::

    speakers -> utterances (dry) -> turns (who, when) -> channel per speaker and turn
             -> mixture blocks + reference segments

* **Turns.** ``style="dialogue"``: speakers take turns of one to a few
  utterances with pauses between them; everyone speaks within the first
  turns, then speakers are drawn with unequal weights (some talk more).
  ``style="monologue"``: the first speaker talks all the time, and the second
  interjects once, around the middle.  One speaker gives a single-speaker
  recording.
* **Overlap.** ``overlap`` is the fraction of the speech time (the union of
  all speakers' speech) in which two or more speakers talk.  It is reached by
  interruptions (a turn starting before the previous one ends) and, with
  ``backchannel_share``, by short backchannels (the start of another
  speaker's utterance, under 1.2 s) inside the current speaker's turn; each
  event is sized from the overlap measured so far, so the fraction of a
  long enough conversation ends close to the one asked for (up to about
  0.3: a turn overlaps at most 90 % of the previous one, and pauses inside
  turns are not overlap).
* **Channels.** Every speaker has a :class:`Channel` (band limits,
  reverberation, noise at 5-25 dB below the speech, gain); with
  ``turn_variation`` > 0 every turn varies it (``Channel.vary``).  A
  background noise under the whole recording is optional.
* **Reference.** One segment per stretch of a speaker's *dry* speech: frames
  less than 40 dB below the utterance's loud frames, pauses up to
  ``min_pause`` seconds bridged; reverberation tails and the noise are not
  speech.  Overlapping segments of different speakers are kept (RTTM allows
  them).

Everything is drawn from ``seed``: the same arguments give the same samples
and segments, whatever the block size.  :meth:`ConversationSimulator.write`
writes WAV and RTTM block by block, so memory holds the turns being mixed,
not the recording (hours are fine).
"""

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..audio.lists import read_table
from ..audio.read import TARGET_SAMPLE_RATE, list_audio_files, read_audio, read_scp, resample
from ..diarization.segments import Segment, merge_regions, write_rttm
from ..errors import InvalidArgumentError

PathLike = Union[str, os.PathLike]

SPEECH_LEVEL = 0.05  # RMS of a speaker's active speech at 0 dB channel gain (about -26 dBFS)
FRAME = 160  # 10 ms: the resolution of the reference
ACTIVITY_FLOOR_DB = -40.0  # frames this far below an utterance's loud frames are silence
MARGIN = 0.1  # seconds of silence kept around each utterance's speech
BACKCHANNEL_SECONDS = (0.3, 1.2)


# --- speakers --------------------------------------------------------------------------------------
class Speaker:
    """A source of single-speaker utterances: dry float32 audio at 16 kHz.

    Subclasses set ``name`` (the label in the reference; no white space) and
    implement :meth:`utterance`.
    """

    name: str = "speaker"

    def utterance(self, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError


def _check_label(name: str) -> str:
    if not name or any(c.isspace() for c in name):
        raise InvalidArgumentError(f"speaker name {name!r} cannot be an RTTM label (empty or contains white space)")
    return name


class RecordedSpeaker(Speaker):
    """Utterances drawn from audio files of one speaker (any format :func:`redimnet.read_audio` reads)."""

    def __init__(self, name: str, paths: Sequence[PathLike]):
        self.name = _check_label(name)
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise InvalidArgumentError(f"speaker {name!r} has no recordings")

    def utterance(self, rng: np.random.Generator) -> np.ndarray:
        return read_audio(self.paths[int(rng.integers(len(self.paths)))])

    def __repr__(self) -> str:
        return f"RecordedSpeaker({self.name!r}, {len(self.paths)} files)"


class SyntheticSpeaker(Speaker):
    """A voice of :mod:`redimnet.testing.synth` (``voice_for(seed, index)``), utterances of about 1-8 s."""

    def __init__(self, seed: int, index: int, name: Optional[str] = None):
        from .synth import voice_for

        self.seed, self.index = int(seed), int(index)
        self.voice = voice_for(self.seed, self.index)
        self.name = _check_label(name or f"synth{self.seed}-{self.index}")

    def utterance(self, rng: np.random.Generator) -> np.ndarray:
        from .synth import synthesize

        seconds = float(np.clip(rng.lognormal(np.log(3.0), 0.5), 1.0, 8.0))
        return synthesize(self.voice, seconds, rng, TARGET_SAMPLE_RATE)

    def __repr__(self) -> str:
        return f"SyntheticSpeaker(seed={self.seed}, index={self.index})"


class ShiftedSpeaker(Speaker):
    """``base`` played ``semitones`` higher (or lower) and as much faster (slower): another speaker.

    The whole spectrum moves (pitch and formants, like a shorter or longer
    vocal tract), so the sibling is a different voice, not the same voice in
    a different mood.
    """

    def __init__(self, base: Speaker, semitones: float, name: Optional[str] = None):
        if not semitones or not -12 <= semitones <= 12:
            raise InvalidArgumentError(f"semitones must be non-zero and within +-12, got {semitones}")
        self.base, self.semitones = base, float(semitones)
        self.name = _check_label(name or f"{base.name}~{self.semitones:+g}st")

    def utterance(self, rng: np.random.Generator) -> np.ndarray:
        wave = self.base.utterance(rng)
        as_if = int(round(TARGET_SAMPLE_RATE * 2.0 ** (self.semitones / 12.0)))
        return resample(np.ascontiguousarray(wave, dtype=np.float32), as_if, TARGET_SAMPLE_RATE)

    def __repr__(self) -> str:
        return f"ShiftedSpeaker({self.base!r}, {self.semitones:+g})"


def speakers_from_lists(wav_scp: PathLike, utt2spk: PathLike) -> List[RecordedSpeaker]:
    """One :class:`RecordedSpeaker` per speaker of a Kaldi-style ``wav.scp`` + ``utt2spk`` pair."""
    paths = dict(read_scp(wav_scp))
    owners = read_table(utt2spk, ("UTTERANCE_ID", "SPEAKER_ID"), InvalidArgumentError, "utt2spk")
    by_speaker: Dict[str, List[Path]] = {}
    for utterance, speaker in owners.items():
        if utterance not in paths:
            raise InvalidArgumentError(f"{utt2spk}: utterance {utterance!r} is not in {wav_scp}")
        by_speaker.setdefault(speaker, []).append(paths[utterance])
    return [RecordedSpeaker(name, files) for name, files in sorted(by_speaker.items())]


def speakers_from_folder(folder: PathLike) -> List[RecordedSpeaker]:
    """One :class:`RecordedSpeaker` per sub-folder of ``folder`` (``SPEAKER/.../*.wav``, the VoxCeleb layout)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidArgumentError(f"{folder}: not a folder (expected SPEAKER/.../audio files below it)")
    speakers = []
    for child in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = list_audio_files(child)
        if files:
            speakers.append(RecordedSpeaker(child.name, files))
    if not speakers:
        raise InvalidArgumentError(f"{folder}: no SPEAKER sub-folders with audio files")
    return speakers


# --- channels --------------------------------------------------------------------------------------
BANDS = ("full", "telephone", "random")


@dataclass(frozen=True)
class ChannelSpace:
    """Which channels :meth:`Channel.random` and :meth:`Channel.vary` draw from.

    ``bands``: the kinds of pass band allowed (``full``, ``telephone`` 300-3400 Hz, ``random``
    50-250 to 3800-7500 Hz); ``rt60``: the range of reverberation times of reverberant channels
    (40 % of channels stay dry).  Disjoint spaces let a model be trained on some channels and
    measured on others; the default (everything) draws exactly as before the option existed.
    """

    bands: Tuple[str, ...] = BANDS
    rt60: Tuple[float, float] = (0.15, 0.7)

    def __post_init__(self):
        if not self.bands or any(b not in BANDS for b in self.bands) or len(set(self.bands)) != len(self.bands):
            raise InvalidArgumentError(f"bands must be distinct names among {', '.join(BANDS)}, got {self.bands}")
        if not 0 < self.rt60[0] <= self.rt60[1] <= 2.0:
            raise InvalidArgumentError(f"rt60 must be a range within (0, 2] seconds, got {self.rt60}")

    def band(self, rng: np.random.Generator) -> Tuple[float, float]:
        kind = rng.random()
        if tuple(self.bands) == BANDS:  # the original proportions: 40 % full, 20 % telephone, 40 % random
            name = "full" if kind < 0.4 else "telephone" if kind < 0.6 else "random"
        else:
            name = self.bands[min(int(kind * len(self.bands)), len(self.bands) - 1)]
        if name == "full":
            return 0.0, 8000.0
        if name == "telephone":
            return 300.0, 3400.0
        return float(rng.uniform(50.0, 250.0)), float(rng.uniform(3800.0, 7500.0))

    def reverberation(self, rng: np.random.Generator) -> float:
        return 0.0 if rng.random() < 0.4 else float(rng.uniform(*self.rt60))


EVERY_CHANNEL = ChannelSpace()


@dataclass(frozen=True)
class Channel:
    """How a speaker (or one turn) reaches the microphone.

    ``low_hz``/``high_hz``: pass band (0 and 8000: none); ``rt60``: seconds of
    reverberation (0: dry); ``snr_db``: noise of this channel, in dB below the
    speech (None: none); ``gain_db``: level relative to ``SPEECH_LEVEL``.
    """

    low_hz: float = 0.0
    high_hz: float = 8000.0
    rt60: float = 0.0
    snr_db: Optional[float] = None
    gain_db: float = 0.0

    @classmethod
    def random(
        cls, rng: np.random.Generator, snr_db: Tuple[float, float] = (5.0, 25.0), space: ChannelSpace = EVERY_CHANNEL
    ) -> "Channel":
        """Full band, telephone band (300-3400 Hz) or a random band; dry or RT60 0.15-0.7 s; gain +-6 dB
        (``space`` restricts the bands and reverberation times)."""
        low, high = space.band(rng)
        rt60 = space.reverberation(rng)
        return cls(low, high, rt60, float(rng.uniform(*snr_db)), float(rng.uniform(-6.0, 6.0)))

    def vary(self, rng: np.random.Generator, amount: float, space: ChannelSpace = EVERY_CHANNEL) -> "Channel":
        """This channel as one turn hears it: with probability ``amount`` a new band and room; the gain moves
        by a normal ``3 * amount`` dB and the noise by ``5 * amount`` dB (kept within 5-25 dB)."""
        if amount <= 0:
            return self
        changed = self
        if rng.random() < amount:
            low, high = space.band(rng)
            rt60 = space.reverberation(rng)
            changed = replace(changed, low_hz=low, high_hz=high, rt60=rt60)
        gain = self.gain_db + float(rng.normal(0.0, 3.0 * amount))
        snr = None if self.snr_db is None else float(np.clip(self.snr_db + rng.normal(0.0, 5.0 * amount), 5.0, 25.0))
        return replace(changed, gain_db=gain, snr_db=snr)

    def apply(self, dry: np.ndarray, speech_rms: float, rng: np.random.Generator) -> np.ndarray:
        """``dry`` through the channel (longer by the reverberation tail), speech at ``SPEECH_LEVEL`` x gain."""
        from scipy.signal import butter, fftconvolve, sosfilt

        wave = dry.astype(np.float64)
        rate = TARGET_SAMPLE_RATE
        if self.low_hz > 0:
            wave = sosfilt(butter(2, self.low_hz, "highpass", fs=rate, output="sos"), wave)
        if self.high_hz < 0.49 * rate:
            wave = sosfilt(butter(6, self.high_hz, "lowpass", fs=rate, output="sos"), wave)
        if self.rt60 > 0:
            from .synth import room_response

            wave = fftconvolve(wave, room_response(rng, rate, rt60=self.rt60))
        # the level is set on the dry speech's loudness, so band limits and rooms change the timbre, not the level
        wave *= SPEECH_LEVEL * 10 ** (self.gain_db / 20) / max(speech_rms, 1e-9)
        if self.snr_db is not None:
            noise = _coloured_noise(rng, len(wave))
            edge = min(len(wave) // 2, int(0.02 * rate))
            if edge:
                ramp = np.linspace(0.0, 1.0, edge)
                noise[:edge] *= ramp
                noise[-edge:] *= ramp[::-1]
            wave += noise * SPEECH_LEVEL * 10 ** ((self.gain_db - self.snr_db) / 20)
        return wave


def _coloured_noise(rng: np.random.Generator, length: int) -> np.ndarray:
    """Unit-RMS noise with a random spectral slope (from white to brown-ish)."""
    from scipy.fft import next_fast_len

    # filtered at a fast FFT size: a length with a large prime factor takes 50x longer
    size = next_fast_len(length, real=True)
    spectrum = np.fft.rfft(rng.standard_normal(length), size)
    bins = np.fft.rfftfreq(size, 1.0 / TARGET_SAMPLE_RATE)
    spectrum *= np.maximum(bins, 50.0) ** -rng.uniform(0.0, 1.0)
    noise = np.fft.irfft(spectrum, size)[:length]
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


# --- what is speech in a dry utterance ----------------------------------------------------------------
def speech_activity(wave: np.ndarray, min_pause: float = 0.25) -> List[Tuple[float, float]]:
    """``(start, end)`` seconds of speech in a dry single-speaker utterance.

    Speech: 10 ms frames at most 40 dB below the utterance's loud frames (its
    95th percentile of frame energy); pauses up to ``min_pause`` seconds are
    bridged.  Empty for silence.
    """
    count = len(wave) // FRAME
    if count == 0:
        return []
    energy = np.square(wave[: count * FRAME].astype(np.float64)).reshape(count, FRAME).mean(axis=1)
    loud = float(np.percentile(energy, 95))
    if loud <= 1e-12:
        return []
    active = energy > loud * 10 ** (ACTIVITY_FLOOR_DB / 10)
    change = np.flatnonzero(np.diff(np.concatenate([[0], active.astype(np.int8), [0]])))
    runs = [(float(a * FRAME), float(b * FRAME)) for a, b in zip(change[::2], change[1::2])]
    seconds = [(a / TARGET_SAMPLE_RATE, b / TARGET_SAMPLE_RATE) for a, b in runs]
    return [(a, b) for a, b in merge_regions(seconds, gap=min_pause)]


# --- the conversation ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SimulatedTurn:
    """One placed piece of speech: ``speaker`` (name), ``kind`` (``turn``, ``backchannel``, ``interjection``),
    the span of its speech (``start``/``end``, seconds) and the :class:`Channel` it went through."""

    speaker: str
    kind: str
    start: float
    end: float
    channel: Channel


@dataclass
class Conversation:
    """A simulated recording: ``audio`` (float32, 16 kHz; None when written to a file), the reference
    ``segments`` and the ``turns`` that made it."""

    audio: Optional[np.ndarray]
    segments: List[Segment]
    turns: List[SimulatedTurn]
    duration: float
    sample_rate: int = TARGET_SAMPLE_RATE

    @property
    def speakers(self) -> List[str]:
        """Speaker labels in order of first speech."""
        return list(dict.fromkeys(s.label for s in sorted(self.segments)))

    def overlap_fraction(self) -> float:
        """Fraction of the speech time (union over speakers) with two or more speakers."""
        union, overlapped = coverage(self.segments)
        return overlapped / union if union > 0 else 0.0


def coverage(segments: Sequence[Segment], since: float = float("-inf")) -> Tuple[float, float]:
    """Seconds after ``since`` with at least one speaker, and with at least two (segments of one label merged)."""
    by_label: Dict[str, List[Tuple[float, float]]] = {}
    for s in segments:
        if s.end > max(s.start, since):
            by_label.setdefault(s.label, []).append((max(s.start, since), s.end))
    events = []
    for regions in by_label.values():
        for start, end in merge_regions(regions):
            events += [(start, 1), (end, -1)]
    events.sort()
    union = overlapped = 0.0
    active = 0
    previous = None
    for time, step in events:
        if previous is not None and active:
            union += time - previous
            if active >= 2:
                overlapped += time - previous
        active += step
        previous = time
    return union, overlapped


@dataclass
class _Piece:
    """Dry audio of a turn and its speech regions (seconds from the start of ``audio``)."""

    audio: np.ndarray
    regions: List[Tuple[float, float]]

    @property
    def speech(self) -> float:
        return sum(b - a for a, b in self.regions)


class ConversationSimulator:
    """Conversations of ``speakers`` (see the module documentation for what each option does).

    Args:
        speakers: the :class:`Speaker` objects taking part (1 or more; each is one label).
        overlap: target fraction of speech time with two or more speakers (0 to 0.5).
        backchannel_share: of the overlap events, the share that are backchannels (the rest interruptions).
        style: ``dialogue`` or ``monologue`` (the first speaker all along, the second interjects once).
        speaker_channels: give each speaker a random :class:`Channel` (False: clean, same level for all).
        turn_variation: how much each turn varies its speaker's channel (0 to 1; see :meth:`Channel.vary`).
        channel_space: the bands and reverberation times channels are drawn from (:class:`ChannelSpace`).
        background_snr_db: a stationary noise under the whole recording, dB below the speech (None: none).
        pauses: shortest and longest pause between turns, seconds.
        turn_seconds: typical (median) length of a dialogue turn; turns take utterances until they reach
            a length drawn around it.
        min_pause: pauses inside a speaker's speech up to this long count as speech in the reference.
    """

    def __init__(
        self,
        speakers: Sequence[Speaker],
        overlap: float = 0.0,
        backchannel_share: float = 0.3,
        style: str = "dialogue",
        speaker_channels: bool = True,
        turn_variation: float = 0.5,
        channel_space: ChannelSpace = EVERY_CHANNEL,
        background_snr_db: Optional[float] = 30.0,
        pauses: Tuple[float, float] = (0.2, 1.5),
        turn_seconds: float = 5.0,
        min_pause: float = 0.25,
    ):
        self.speakers = list(speakers)
        if not self.speakers:
            raise InvalidArgumentError("a conversation needs at least one speaker")
        names = [s.name for s in self.speakers]
        if len(set(names)) != len(names):
            raise InvalidArgumentError(f"speaker names must differ (each is one label), got {names}")
        if not 0.0 <= overlap <= 0.5:
            raise InvalidArgumentError(f"overlap must be between 0 and 0.5 (a fraction of speech), got {overlap}")
        if not 0.0 <= backchannel_share <= 1.0 or not 0.0 <= turn_variation <= 1.0:
            raise InvalidArgumentError("backchannel_share and turn_variation must be between 0 and 1")
        if style not in ("dialogue", "monologue"):
            raise InvalidArgumentError(f"style must be 'dialogue' or 'monologue', got {style!r}")
        if style == "monologue" and len(self.speakers) != 2:
            raise InvalidArgumentError("a monologue with one interjection needs exactly two speakers")
        if overlap > 0 and len(self.speakers) < 2:
            raise InvalidArgumentError("overlap needs at least two speakers")
        if not 0 <= pauses[0] <= pauses[1] or turn_seconds <= 0 or min_pause < 0:
            raise InvalidArgumentError("need 0 <= shortest pause <= longest pause, turn_seconds > 0, min_pause >= 0")
        self.overlap = float(overlap)
        self.backchannel_share = float(backchannel_share)
        self.style = style
        self.speaker_channels = bool(speaker_channels)
        self.turn_variation = float(turn_variation)
        self.channel_space = channel_space
        self.background_snr_db = background_snr_db
        self.pauses = (float(pauses[0]), float(pauses[1]))
        self.turn_seconds = float(turn_seconds)
        self.min_pause = float(min_pause)

    # --- public ---------------------------------------------------------------------------------
    def simulate(self, seconds: float, seed: int = 0) -> Conversation:
        """A conversation of ``seconds`` in memory (use :meth:`write` for long ones)."""
        segments: List[Segment] = []
        turns: List[SimulatedTurn] = []
        blocks = list(self._blocks(seconds, seed, segments, turns, block=int(30 * TARGET_SAMPLE_RATE)))
        audio = np.concatenate(blocks).astype(np.float32) if blocks else np.zeros(0, np.float32)
        return Conversation(audio, sorted(segments), turns, len(audio) / TARGET_SAMPLE_RATE)

    def write(
        self,
        path: PathLike,
        seconds: float,
        seed: int = 0,
        recording: Optional[str] = None,
        block_seconds: float = 30.0,
    ) -> Conversation:
        """Write the conversation to ``path`` (16-bit WAV) and its reference to ``path`` with ``.rttm``, block by
        block; returns it without the audio."""
        import soundfile

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        segments: List[Segment] = []
        turns: List[SimulatedTurn] = []
        block = max(1, int(block_seconds * TARGET_SAMPLE_RATE))
        written = 0
        with soundfile.SoundFile(str(path), "w", TARGET_SAMPLE_RATE, 1, subtype="PCM_16", format="WAV") as out:
            for piece in self._blocks(seconds, seed, segments, turns, block):
                out.write(np.clip(piece, -1.0, 1.0).astype(np.float32))
                written += len(piece)
        write_rttm(path.with_suffix(".rttm"), segments, recording or path.stem)
        return Conversation(None, sorted(segments), turns, written / TARGET_SAMPLE_RATE)

    # --- planning and mixing --------------------------------------------------------------------
    def _piece(self, speaker: Speaker, rng: np.random.Generator, target: float) -> _Piece:
        """Utterances of ``speaker``, trimmed to their speech plus a margin, joined by short pauses
        until ``target`` seconds of audio."""
        parts: List[np.ndarray] = []
        regions: List[Tuple[float, float]] = []
        length = 0
        failures = 0
        while True:
            wave = np.asarray(speaker.utterance(rng), dtype=np.float32)
            found = speech_activity(wave, self.min_pause)
            if not found:
                failures += 1
                if failures >= 10:
                    raise InvalidArgumentError(f"speaker {speaker.name!r}: 10 utterances in a row had no speech")
                continue
            margin = int(MARGIN * TARGET_SAMPLE_RATE)
            lo = max(0, int(found[0][0] * TARGET_SAMPLE_RATE) - margin)
            hi = min(len(wave), int(found[-1][1] * TARGET_SAMPLE_RATE) + margin)
            if parts:
                gap = np.zeros(int(rng.uniform(0.1, 0.4) * TARGET_SAMPLE_RATE), np.float32)
                parts.append(gap)
                length += len(gap)
            offset = (length - lo) / TARGET_SAMPLE_RATE
            regions += [(a + offset, b + offset) for a, b in found]
            parts.append(wave[lo:hi])
            length += hi - lo
            if length >= target * TARGET_SAMPLE_RATE:
                break
        audio = np.concatenate(parts)
        return _Piece(audio, [(a, b) for a, b in merge_regions(regions, gap=self.min_pause)])

    @staticmethod
    def _backchannel(piece: _Piece, rng: np.random.Generator) -> _Piece:
        """The first 0.3-1.2 s of speech of ``piece`` (faded out): a short response."""
        start = piece.regions[0][0]
        length = float(rng.uniform(*BACKCHANNEL_SECONDS))
        end = min(piece.regions[0][1], start + length)
        lo, hi = int(start * TARGET_SAMPLE_RATE), int(end * TARGET_SAMPLE_RATE)
        audio = piece.audio[lo:hi].copy()
        fade = min(len(audio), int(0.03 * TARGET_SAMPLE_RATE))
        if fade:
            audio[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        return _Piece(audio, [(0.0, (hi - lo) / TARGET_SAMPLE_RATE)])

    def _blocks(
        self,
        seconds: float,
        seed: int,
        segments: List[Segment],
        turns: List[SimulatedTurn],
        block: int,
    ) -> Iterator[np.ndarray]:
        """The mixture in blocks of ``block`` samples; fills ``segments`` and ``turns`` on the way."""
        from scipy.signal import lfilter

        if not seconds > 0:
            raise InvalidArgumentError(f"seconds must be positive, got {seconds}")
        rate = TARGET_SAMPLE_RATE
        total = int(round(seconds * rate))
        plan_seed, noise_seed = np.random.SeedSequence([int(seed), 9157]).spawn(2)
        rng = np.random.default_rng(plan_seed)
        noise_rng = np.random.default_rng(noise_seed)
        noise_state = np.zeros(1)
        clean = Channel()
        space = self.channel_space
        channels = [Channel.random(rng, space=space) if self.speaker_channels else clean for _ in self.speakers]
        weights = rng.dirichlet(np.full(len(self.speakers), 3.0))  # some talk more than others
        pending: List[Tuple[int, np.ndarray]] = []  # (start sample, wet audio) still to be mixed
        written = 0
        latest: Dict[int, float] = {}  # end of each speaker's latest speech

        def emit(upto: int) -> Iterator[np.ndarray]:
            """Mix and yield whole blocks up to sample ``upto`` (the end at ``total``)."""
            nonlocal written, pending, noise_state
            while written < total and (upto >= total or written + block <= upto):
                end = min(total, written + block)
                mix = np.zeros(end - written)
                for at, wet in pending:
                    lo, hi = max(written, at), min(end, at + len(wet))
                    if hi > lo:
                        mix[lo - written : hi - written] += wet[lo - at : hi - at]
                pending = [(at, wet) for at, wet in pending if at + len(wet) > end]
                if self.background_snr_db is not None:
                    white = noise_rng.standard_normal(end - written)
                    hum, noise_state = lfilter([0.2], [1.0, -0.8], white, zi=noise_state)
                    level = SPEECH_LEVEL * 10 ** (-self.background_snr_db / 20)
                    mix += (0.6 * white + hum) * level / 0.8433  # unit RMS
                written = end
                yield mix

        def place(speaker: int, piece: _Piece, at: float, kind: str) -> Optional[SimulatedTurn]:
            """Put ``piece`` of ``speaker`` with its audio starting at ``at`` seconds (if it fits)."""
            if at < 0 or at + piece.regions[-1][1] > seconds - 0.05:
                return None
            channel = channels[speaker].vary(rng, self.turn_variation, self.channel_space)
            speech = np.concatenate([piece.audio[int(a * rate) : int(b * rate)] for a, b in piece.regions]).astype(
                np.float64
            )
            wet = channel.apply(piece.audio, float(np.sqrt(np.mean(speech**2))), rng)
            start = int(round(at * rate))
            pending.append((start, wet))
            label = self.speakers[speaker].name
            offset = start / rate
            placed = [Segment(round(a + offset, 3), round(b + offset, 3), label) for a, b in piece.regions]
            segments.extend(placed)
            turn = SimulatedTurn(label, kind, placed[0].start, placed[-1].end, channel)
            turns.append(turn)
            latest[speaker] = max(latest.get(speaker, -np.inf), turn.end)
            return turn

        if self.style == "monologue":
            yield from self._monologue(seconds, rng, place, emit)
        else:
            yield from self._dialogue(seconds, rng, weights, segments, latest, place, emit)
        yield from emit(total)

    def _pause(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(*self.pauses))

    def _dialogue(self, seconds, rng, weights, segments, latest, place, emit) -> Iterator[np.ndarray]:
        rate = TARGET_SAMPLE_RATE
        count = len(self.speakers)
        order = list(rng.permutation(count))
        frontier = float(rng.uniform(0.3, 1.0))  # end of the speech placed so far (main turns)
        previous: Optional[_Piece] = None
        previous_start = 0.0
        previous_speaker = -1
        union = overlapped = 0.0  # speech time so far, and its part with two or more speakers
        recent = 0  # segments before this index end long before anything still to be placed
        while True:
            if order:
                speaker = int(order.pop(0))
            elif count == 1:
                speaker = 0
            else:
                others = [k for k in range(count) if k != previous_speaker]
                p = weights[others] / weights[others].sum()
                speaker = int(others[int(rng.choice(len(others), p=p))])
            target = float(np.clip(rng.lognormal(np.log(self.turn_seconds), 0.6), 0.5, 4 * self.turn_seconds))
            piece = self._piece(self.speakers[speaker], rng, target)
            since = previous_start - 1.0
            while recent < len(segments) and segments[recent].end < since - 60.0:
                recent += 1
            before = coverage(segments[recent:], since)
            shift = 0.0
            deficit = self.overlap * (union + piece.speech) - overlapped
            if previous is not None and count > 1 and self.overlap > 0 and deficit > 0.2:
                if rng.random() < self.backchannel_share:
                    self._place_backchannel(rng, previous, previous_start, previous_speaker, weights, place)
                else:
                    # start before the previous turn ends, by what brings the overlap to the target
                    spans = [p.regions[-1][1] - p.regions[0][0] for p in (piece, previous)]
                    limit = min(0.9 * min(spans), frontier - latest.get(speaker, -np.inf) - 0.1)
                    shift = float(np.clip(deficit / (1.0 + self.overlap), 0.0, max(limit, 0.0)))
            start = frontier - shift + (0.0 if shift > 0 else self._pause(rng)) - piece.regions[0][0]
            turn = place(speaker, piece, start, "turn")
            if turn is None:
                break
            after = coverage(segments[recent:], since)
            union += after[0] - before[0]
            overlapped += after[1] - before[1]
            frontier = max(frontier, turn.end)
            previous, previous_start, previous_speaker = piece, start, speaker
            # nothing placed later starts before this turn (less a second of margin)
            yield from emit(int((start - 1.0) * rate))

    def _place_backchannel(self, rng, previous: _Piece, previous_start: float, main: int, weights, place) -> None:
        """A short response by someone else inside the speech of ``previous`` (the main speaker's last turn)."""
        others = [k for k in range(len(self.speakers)) if k != main]
        p = weights[others] / weights[others].sum()
        speaker = int(others[int(rng.choice(len(others), p=p))])
        short = self._backchannel(self._piece(self.speakers[speaker], rng, 0.5), rng)
        first, last = previous.regions[0][0], previous.regions[-1][1]
        room = last - first - short.regions[0][1]
        if room <= 0.2:
            return
        place(speaker, short, previous_start + first + float(rng.uniform(0.1, room)), "backchannel")

    def _monologue(self, seconds, rng, place, emit) -> Iterator[np.ndarray]:
        rate = TARGET_SAMPLE_RATE
        position = float(rng.uniform(0.3, 1.0))
        interject_at = float(rng.uniform(0.35, 0.65)) * seconds
        interjected = False
        last_end: Optional[float] = None
        while True:
            if not interjected and last_end is not None and position >= interject_at:
                interjected = True
                piece = self._piece(self.speakers[1], rng, float(rng.uniform(1.0, 3.0)))
                if self.overlap > 0:  # the interjection starts before the monologue's sentence ends
                    start = last_end - min(0.8 * piece.speech, 1.0) - piece.regions[0][0]
                else:
                    start = position - piece.regions[0][0]
                turn = place(1, piece, start, "interjection")
                if turn is not None:
                    position = max(position, turn.end + self._pause(rng))
                    continue
            piece = self._piece(self.speakers[0], rng, float(rng.uniform(2.0, 8.0)))
            start = position - piece.regions[0][0]
            turn = place(0, piece, start, "turn")
            if turn is None:
                break
            last_end = turn.end
            position = turn.end + float(rng.uniform(0.2, 0.9))
            yield from emit(int((start - 1.0) * rate))


def simulate_conversation(speakers: Sequence[Speaker], seconds: float, seed: int = 0, **options) -> Conversation:
    """``ConversationSimulator(speakers, **options).simulate(seconds, seed)``."""
    return ConversationSimulator(speakers, **options).simulate(seconds, seed)


def write_conversation(
    path: PathLike, speakers: Sequence[Speaker], seconds: float, seed: int = 0, **options
) -> Conversation:
    """``ConversationSimulator(speakers, **options).write(path, seconds, seed)``: WAV + RTTM, block by block."""
    return ConversationSimulator(speakers, **options).write(path, seconds, seed)
