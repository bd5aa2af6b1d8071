"""A synthetic multi-speaker speech corpus, for tests and demos (no downloads, numpy only).

Voices come from the source-filter model of :mod:`redimnet.audio.synthetic`: a glottal harmonic source (f0 contour
with declination, intonation, jitter and shimmer, a speaker-specific spectral
tilt, breath noise) shaped by a cascade of formant resonances whose targets
move from vowel to vowel.  A *speaker* fixes the f0 range, the vocal-tract
length (formant scaling), per-vowel formant habits, the high formants F4/F5,
bandwidths, tilt, speaking rate, jitter and breathiness; an *utterance* is a
random sequence of vowel-like segments and pauses, recorded in a session with
its own channel colouring and background noise.

Command line::

    python -m redimnet.testing.synth OUT_DIR --speakers 48 --utterances 8 [--held-out 16]

writes ``OUT_DIR/SPEAKER/SESSION/NNNNN.wav`` (VoxCeleb layout), or with
``--held-out H`` the last H speakers to ``OUT_DIR/test`` with a trial list
``OUT_DIR/test_trials.txt`` and the others to ``OUT_DIR/train``.

Conversations (for diarization)::

    python -m redimnet.testing.synth OUT_DIR --conversations 3 --conversation-speakers 2,4,6 \
        --conversation-seconds 300

writes ``OUT_DIR/conv-NNN-Kspk.wav`` with its exact reference
``OUT_DIR/conv-NNN-Kspk.rttm`` (see :func:`generate_conversation`).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..audio.read import TARGET_SAMPLE_RATE
from ..audio.synthetic import VOWEL_FORMANTS, Voice, record, synthesize, voice_for  # noqa: F401 (also exported here)


def speaker_id(index: int) -> str:
    return f"id{10000 + index:05d}"


def generate_corpus(
    out_dir,
    speakers: Sequence[int],
    utterances: int = 8,
    seed: int = 0,
    seconds: float = 3.0,
    sessions: int = 2,
    sample_rate: int = TARGET_SAMPLE_RATE,
) -> List[Tuple[str, str]]:
    """Write ``speaker/session/NNNNN.wav`` files for the given speaker numbers.

    Returns ``(utterance id, speaker id)`` pairs, ids relative to ``out_dir``.
    """
    import soundfile

    out_dir = Path(out_dir)
    written = []
    for speaker in speakers:
        voice = voice_for(seed, speaker)
        session_rng = np.random.default_rng([seed, speaker, 202])
        channels = [
            (float(session_rng.uniform(-0.3, 0.3)), float(session_rng.uniform(15, 35))) for _ in range(sessions)
        ]
        for number in range(utterances):
            rng = np.random.default_rng([seed, speaker, 303, number])
            session = number % sessions
            length = seconds * rng.uniform(0.8, 1.2)
            wave = record(synthesize(voice, length, rng, sample_rate), rng, *channels[session], sample_rate)
            utt = f"{speaker_id(speaker)}/session{session}/{number + 1:05d}.wav"
            path = out_dir / utt
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(str(path), wave, sample_rate, subtype="PCM_16")
            written.append((utt, speaker_id(speaker)))
    return written


def write_trials(utterances: Sequence[Tuple[str, str]], path) -> Path:
    """Every pair of utterances as a VoxCeleb-format trial list (``1`` same speaker, ``0`` different)."""
    path = Path(path)
    lines = [f"{int(sa == sb)} {a} {b}\n" for (a, sa), (b, sb) in itertools.combinations(utterances, 2)]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def write_noise_folder(
    folder, seed: int = 0, files: int = 4, seconds: float = 4.0, sample_rate: int = TARGET_SAMPLE_RATE
) -> Path:
    """A small MUSAN-style folder: ``noise/`` (coloured noise), ``music/`` (chords), ``speech/`` (other talkers)."""
    import soundfile

    folder = Path(folder)
    n = int(seconds * sample_rate)
    for kind in ("noise", "music", "speech"):
        (folder / kind).mkdir(parents=True, exist_ok=True)
    for index in range(files):
        rng = np.random.default_rng([seed, index, 404])
        spectrum = np.fft.rfft(rng.standard_normal(n))
        spectrum *= np.maximum(np.fft.rfftfreq(n, 1 / sample_rate), 20.0) ** rng.uniform(-1.0, 0.0)
        noise = np.fft.irfft(spectrum, n)
        t = np.arange(n) / sample_rate
        music = sum(np.sin(2 * np.pi * f * h * t) / h for f in rng.uniform(110, 660, 3) for h in (1, 2, 3))
        music *= 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t) ** 2
        talker = synthesize(voice_for(seed + 7919, index), seconds, rng, sample_rate)
        for kind, wave in (("noise", noise), ("music", music), ("speech", talker)):
            wave = wave / (np.abs(wave).max() + 1e-9) * 0.5
            soundfile.write(str(folder / kind / f"{kind}-{index:04d}.wav"), wave.astype(np.float32), sample_rate)
    return folder


def write_rir_folder(folder, seed: int = 0, files: int = 4, sample_rate: int = TARGET_SAMPLE_RATE) -> Path:
    """Synthetic room impulse responses: a direct path then exponentially decaying noise (RT60 0.2-0.8 s)."""
    import soundfile

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        rng = np.random.default_rng([seed, index, 505])
        rt60 = rng.uniform(0.2, 0.8)
        n = int(rt60 * sample_rate)
        t = np.arange(n) / sample_rate
        rir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60) * 0.3
        delay = int(rng.integers(10, 80))
        rir[:delay] = 0.0
        rir[delay] = 1.0
        soundfile.write(
            str(folder / f"rir-{index:04d}.wav"), (rir / np.abs(rir).max() * 0.9).astype(np.float32), sample_rate
        )
    return folder


# --- conversations ---------------------------------------------------------------------------------
def room_response(
    rng: np.random.Generator, sample_rate: int = TARGET_SAMPLE_RATE, rt60: Optional[float] = None
) -> np.ndarray:
    """A synthetic room impulse response: direct path, then exponentially decaying noise (RT60 ``rt60`` seconds;
    by default drawn from 0.15-0.5 s)."""
    if rt60 is None:
        rt60 = float(rng.uniform(0.15, 0.5))
    n = int(rt60 * sample_rate)
    t = np.arange(n) / sample_rate
    rir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60) * rng.uniform(0.05, 0.2)
    delay = int(rng.integers(10, 80))
    rir[:delay] = 0.0
    rir[delay] = 1.0
    return rir / np.sqrt(np.sum(rir**2))


def _convolve(wave: np.ndarray, response: np.ndarray) -> np.ndarray:
    size = len(wave) + len(response) - 1
    fft_size = 1 << (size - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(wave, fft_size) * np.fft.rfft(response, fft_size), fft_size)[:size]


@dataclass(frozen=True)
class Turn:
    """One planned turn of a conversation: ``speaker`` (0-based) starts at ``start`` (s) with clip ``clip``."""

    speaker: int
    start: float
    clip: int
    seconds: float


def plan_conversation(speakers: int, seconds: float, seed: int = 0, overlap: float = 0.1, pool: int = 0) -> List[Turn]:
    """Who speaks when: turns of 0.8-10 s (median 3 s), pauses of 0.2-3 s, a fraction ``overlap`` of
    turns starting 0.3-1 s before the previous one ends.  Every speaker speaks within the first turns.

    ``pool`` > 0: each speaker reuses ``pool`` different clips (fast generation of long recordings).
    """
    rng = np.random.default_rng([seed, speakers, 808])
    turns: List[Turn] = []
    order = list(rng.permutation(speakers))
    clips = [0] * speakers
    position = float(rng.uniform(0.3, 1.0))
    previous = -1
    while True:
        speaker = int(order.pop(0)) if order else int(rng.choice([s for s in range(speakers) if s != previous]))
        clip = int(rng.integers(pool)) if pool else clips[speaker]
        clips[speaker] += 1
        length = clip_seconds(seed, speaker, clip)
        if position + length > seconds - 0.2:
            break
        turns.append(Turn(speaker, position, clip, length))
        if rng.random() < overlap:
            position += length - float(rng.uniform(0.3, min(1.0, 0.5 * length)))
        else:
            pause = rng.uniform(0.2, 1.2) if rng.random() < 0.8 else rng.uniform(1.2, 3.0)
            position += length + float(pause)
        previous = speaker
    return turns


def clip_seconds(seed: int, speaker: int, clip: int) -> float:
    """Planned length of clip ``clip`` of ``speaker``."""
    return float(np.clip(np.random.default_rng([seed, speaker, 606, clip]).lognormal(np.log(3.0), 0.5), 0.8, 10.0))


def generate_conversation(
    path,
    speakers: int = 2,
    seconds: float = 60.0,
    seed: int = 0,
    overlap: float = 0.1,
    snr_db: float = 20.0,
    room: bool = True,
    pool: int = 0,
    first_voice: int = 100000,
    recording: Optional[str] = None,
    sample_rate: int = TARGET_SAMPLE_RATE,
    block_seconds: float = 60.0,
) -> List[Tuple[float, float, str]]:
    """Write a synthetic conversation to ``path`` (16-bit WAV) and its reference RTTM next to it.

    ``speakers`` voices (numbers ``first_voice + seed * 10 + i`` of the
    voice generator, so they differ from a training corpus made with
    ``generate_corpus``) take turns as :func:`plan_conversation` plans them;
    each speaker stands at their own place in one synthetic room (``room``),
    and stationary background noise is added at ``snr_db`` below the nominal
    speech level.  The file is written block by block: memory does not grow
    with ``seconds`` (30 s to hours; use ``pool`` for hours).

    The reference: one ``SPEAKER_k`` segment per turn, from the first to the
    last non-zero dry sample of that turn (pauses inside a turn, at most
    0.25 s, count as speech; the room's reverberation tail does not).
    Returns the ``(start, end, label)`` triples, also written to
    ``path`` with the suffix ``.rttm``.
    """
    import soundfile

    from ..diarization.segments import Segment, write_rttm

    if not 1 <= speakers <= 10 or seconds < 5:
        raise ValueError("need 1 to 10 speakers and at least 5 seconds")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recording = recording or path.stem
    turns = plan_conversation(speakers, seconds, seed, overlap, pool)
    voices = [voice_for(first_voice + seed * 10, i) for i in range(speakers)]
    setting = np.random.default_rng([seed, speakers, 909])
    rooms = [room_response(setting, sample_rate) if room else np.ones(1) for _ in range(speakers)]
    gains = [0.08 * 10 ** (setting.uniform(-3, 3) / 20) for _ in range(speakers)]
    noise_rms = 0.08 / 10 ** (snr_db / 20)
    cache: Dict[Tuple[int, int], Tuple[np.ndarray, int, int]] = {}

    def clip_audio(turn: Turn) -> Tuple[np.ndarray, int, int]:
        key = (turn.speaker, turn.clip)
        if key in cache:
            return cache[key]
        rng = np.random.default_rng([seed, first_voice, turn.speaker, 707, turn.clip])
        dry = synthesize(voices[turn.speaker], turn.seconds, rng, sample_rate)
        voiced = np.flatnonzero(dry)
        first, last = (int(voiced[0]), int(voiced[-1]) + 1) if voiced.size else (0, 0)
        wet = _convolve(dry.astype(np.float64), rooms[turn.speaker]) * gains[turn.speaker]
        entry = (wet, first, last)
        if pool:
            cache[key] = entry
        return entry

    total = int(seconds * sample_rate)
    block = int(block_seconds * sample_rate)
    noise_rng = np.random.default_rng([seed, speakers, 1010])
    reference = []
    pending = []  # (start sample, audio) of turns that may still reach later blocks
    next_turn = 0
    with soundfile.SoundFile(str(path), "w", samplerate=sample_rate, channels=1, subtype="PCM_16") as out:
        for begin in range(0, total, block):
            end = min(total, begin + block)
            while next_turn < len(turns) and int(turns[next_turn].start * sample_rate) < end:
                turn = turns[next_turn]
                wet, first, last = clip_audio(turn)
                at = int(turn.start * sample_rate)
                if last > first:
                    reference.append(
                        ((at + first) / sample_rate, (at + last) / sample_rate, f"SPEAKER_{turn.speaker + 1:02d}")
                    )
                pending.append((at, wet))
                next_turn += 1
            mix = np.zeros(end - begin)
            for at, wet in pending:
                lo, hi = max(begin, at), min(end, at + len(wet))
                if hi > lo:
                    mix[lo - begin : hi - begin] += wet[lo - at : hi - at]
            pending = [(at, wet) for at, wet in pending if at + len(wet) > end]
            noise = noise_rng.standard_normal(end - begin)
            noise += 0.3 * np.convolve(noise_rng.standard_normal(end - begin), np.ones(8) / 8, mode="same")
            mix += noise / np.sqrt(np.mean(noise**2)) * noise_rms
            out.write(np.clip(mix, -1.0, 1.0).astype(np.float32))
    reference = sorted((round(s, 3), round(e, 3), k) for s, e, k in reference)
    write_rttm(path.with_suffix(".rttm"), [Segment(s, e, k) for s, e, k in reference], recording)
    return reference


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m redimnet.testing.synth", description=__doc__.split("\n\n")[0], allow_abbrev=False
    )
    parser.add_argument("out_dir", help="folder to write (VoxCeleb layout)")
    parser.add_argument("--speakers", type=int, default=48)
    parser.add_argument("--utterances", type=int, default=8, help="utterances per speaker")
    parser.add_argument("--seconds", type=float, default=3.0, help="mean utterance length")
    parser.add_argument("--sessions", type=int, default=2, help="recording sessions (channels) per speaker")
    parser.add_argument(
        "--held-out",
        type=int,
        default=0,
        metavar="H",
        help="put the last H speakers in OUT_DIR/test with OUT_DIR/test_trials.txt",
    )
    parser.add_argument("--noise-dir", help="also write a small MUSAN-style noise folder here")
    parser.add_argument("--rir-dir", help="also write synthetic room impulse responses here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--conversations",
        type=int,
        default=0,
        metavar="N",
        help="write N synthetic conversations (WAV + reference RTTM) per speaker count instead",
    )
    parser.add_argument(
        "--conversation-speakers",
        default="2",
        metavar="K[,K...]",
        help="speakers per conversation, e.g. 2,4,6 (default 2)",
    )
    parser.add_argument("--conversation-seconds", type=float, default=60.0, help="length of a conversation")
    parser.add_argument("--overlap", type=float, default=0.1, help="fraction of turns overlapping the previous one")
    parser.add_argument("--snr", type=float, default=20.0, help="speech-to-noise ratio of conversations, dB")
    parser.add_argument(
        "--pool",
        type=int,
        default=0,
        help="clips per speaker reused across a conversation (fast for hours; 0: all different)",
    )
    args = parser.parse_args(argv)
    if args.conversations:
        return _conversations(args, parser)
    if args.speakers < 2 or args.utterances < 1 or args.seconds <= 0 or args.sessions < 1:
        parser.error("need --speakers >= 2, --utterances >= 1, --sessions >= 1 and --seconds > 0")
    if not 0 <= args.held_out < args.speakers:
        parser.error("--held-out must be between 0 and --speakers - 1")
    out = Path(args.out_dir)
    common = dict(utterances=args.utterances, seed=args.seed, seconds=args.seconds, sessions=args.sessions)
    if args.held_out:
        first_test = args.speakers - args.held_out
        train = generate_corpus(out / "train", range(first_test), **common)
        test = generate_corpus(out / "test", range(first_test, args.speakers), **common)
        trials = write_trials(test, out / "test_trials.txt")
        print(
            f"{len(train)} training utterances in {out / 'train'}, {len(test)} held-out utterances in "
            f"{out / 'test'}, trials {trials}"
        )
    else:
        written = generate_corpus(out, range(args.speakers), **common)
        print(f"{len(written)} utterances of {args.speakers} speakers in {out}")
    if args.noise_dir:
        print(f"noise: {write_noise_folder(args.noise_dir, args.seed)}")
    if args.rir_dir:
        print(f"room impulse responses: {write_rir_folder(args.rir_dir, args.seed)}")
    return 0


def _conversations(args, parser) -> int:
    try:
        counts = [int(k) for k in args.conversation_speakers.split(",")]
    except ValueError:
        parser.error(f"--conversation-speakers: expected numbers such as 2,4,6, got {args.conversation_speakers!r}")
    if any(not 1 <= k <= 10 for k in counts) or args.conversation_seconds < 5 or args.conversations < 1:
        parser.error("need 1 to 10 speakers per conversation, --conversation-seconds >= 5 and --conversations >= 1")
    out = Path(args.out_dir)
    for k in counts:
        for number in range(args.conversations):
            path = out / f"conv-{number:03d}-{k}spk.wav"
            reference = generate_conversation(
                path,
                k,
                args.conversation_seconds,
                seed=args.seed * 1000 + number,
                overlap=args.overlap,
                snr_db=args.snr,
                pool=args.pool,
            )
            print(f"{path}: {k} speakers, {len(reference)} turns, reference {path.with_suffix('.rttm')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
