"""The conversation simulator: its reference must match what is in the mixture."""

import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from redimnet.diarization import read_rttm
from redimnet.errors import InvalidArgumentError
from redimnet.testing.simulation import (
    Channel,
    ConversationSimulator,
    RecordedSpeaker,
    ShiftedSpeaker,
    Speaker,
    SyntheticSpeaker,
    speakers_from_folder,
    speakers_from_lists,
    speech_activity,
)

RATE = 16000
FRAME = 160


class ToneSpeaker(Speaker):
    """A 'voice' that is one pure tone, in bursts of 0.2-0.6 s with 0.05-0.2 s pauses (so a test can tell
    from the mixture's spectrum who sounds when)."""

    def __init__(self, name, frequency):
        self.name, self.frequency = name, frequency

    def utterance(self, rng):
        parts = [np.zeros(int(0.2 * RATE))]
        for _ in range(int(rng.integers(2, 6))):
            n = int(rng.uniform(0.2, 0.6) * RATE)
            t = np.arange(n) / RATE
            parts.append(0.3 * np.sin(2 * np.pi * self.frequency * t) * np.hanning(n) ** 0.1)
            parts.append(np.zeros(int(rng.uniform(0.05, 0.2) * RATE)))
        return np.concatenate(parts).astype(np.float32)


TONES = {"low": 440.0, "mid": 1250.0, "high": 2600.0}


def tone_speakers(count=3):
    return [ToneSpeaker(name, frequency) for name, frequency in list(TONES.items())[:count]]


def band_energy(audio, frequency):
    """Energy per 10 ms frame at ``frequency`` (+-60 Hz), from 32 ms windows."""
    count = len(audio) // FRAME
    width = 512
    padded = np.pad(audio.astype(np.float64), (width // 2, width))
    frames = np.lib.stride_tricks.sliding_window_view(padded, width)[::FRAME][:count] * np.hanning(width)
    spectrum = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    bins = np.fft.rfftfreq(width, 1 / RATE)
    return spectrum[:, np.abs(bins - frequency) <= 60].sum(axis=1)


def frame_mask(segments, label, count, grow=0.0):
    mask = np.zeros(count, dtype=bool)
    for s in segments:
        if s.label == label:
            lo, hi = int(np.floor((s.start - grow) * 100)), int(np.ceil((s.end + grow) * 100))
            mask[max(0, lo) : max(0, hi)] = True
    return mask


def clean_simulator(speakers, **options):
    options.setdefault("speaker_channels", False)
    options.setdefault("turn_variation", 0.0)
    options.setdefault("background_snr_db", None)
    options.setdefault("min_pause", 0.0)
    return ConversationSimulator(speakers, **options)


@pytest.mark.slow
@pytest.mark.parametrize("overlap", [0.0, 0.2])
def test_each_speaker_sounds_exactly_where_the_reference_says(overlap):
    conversation = clean_simulator(tone_speakers(), overlap=overlap).simulate(150, seed=3)
    count = len(conversation.audio) // FRAME
    for name, frequency in TONES.items():
        energy = band_energy(conversation.audio, frequency)[:count]
        loud = energy > 1e-3 * energy.max()
        inside = frame_mask(conversation.segments, name, count, grow=-0.03)
        outside = ~frame_mask(conversation.segments, name, count, grow=0.03)
        assert inside.sum() > 200 and outside.sum() > 200
        assert loud[inside].mean() > 0.99, name
        assert loud[outside].mean() < 0.01, name


@pytest.mark.slow
@pytest.mark.parametrize("overlap", [0.05, 0.15, 0.25])
def test_the_overlap_fraction_is_the_one_asked_for_and_is_in_the_audio(overlap):
    conversation = clean_simulator(tone_speakers(), overlap=overlap).simulate(240, seed=int(overlap * 100))
    assert conversation.overlap_fraction() == pytest.approx(overlap, abs=0.03)
    count = len(conversation.audio) // FRAME
    energies = [band_energy(conversation.audio, f)[:count] for f in TONES.values()]
    sounding = np.stack([energy > 1e-3 * energy.max() for energy in energies]).sum(axis=0)
    # measured from the mixture alone: the frames with two or more tones among the frames with any
    assert (sounding >= 2).sum() / (sounding >= 1).sum() == pytest.approx(overlap, abs=0.03)
    kinds = {t.kind for t in conversation.turns}
    assert "turn" in kinds and "backchannel" in kinds


def test_no_overlap_when_none_is_asked_for():
    conversation = clean_simulator(tone_speakers()).simulate(120, seed=5)
    assert conversation.overlap_fraction() == 0.0
    assert {t.kind for t in conversation.turns} == {"turn"}
    assert sorted(conversation.speakers) == sorted(TONES)


def test_same_seed_same_conversation_and_blocks_do_not_change_it(tmp_path):
    # every random part on: channels per speaker and turn, background noise, overlaps
    simulator = ConversationSimulator(tone_speakers(), overlap=0.1, turn_variation=0.5, background_snr_db=20.0)
    first, again = simulator.simulate(40, seed=7), simulator.simulate(40, seed=7)
    other = simulator.simulate(40, seed=8)
    assert np.array_equal(first.audio, again.audio) and first.segments == again.segments
    assert first.segments != other.segments
    written = simulator.write(tmp_path / "conv.wav", 40, seed=7, block_seconds=1.7)
    audio, rate = sf.read(str(tmp_path / "conv.wav"), dtype="float32")
    assert rate == RATE and len(audio) == len(first.audio) == 40 * RATE
    assert np.max(np.abs(audio - np.clip(first.audio, -1, 1))) < 2.0 / 32768
    assert written.segments == first.segments
    read = read_rttm(tmp_path / "conv.rttm")["conv"]
    assert [s.label for s in read] == [s.label for s in first.segments]
    assert np.allclose([(s.start, s.end) for s in read], [(s.start, s.end) for s in first.segments], atol=1e-6)


@pytest.mark.slow
def test_channels_keep_speech_above_the_pauses_between_turns():
    speakers = [SyntheticSpeaker(9, i) for i in range(2)]
    simulator = ConversationSimulator(speakers, turn_variation=1.0, pauses=(1.5, 2.5), background_snr_db=30.0)
    conversation = simulator.simulate(90, seed=2)
    count = len(conversation.audio) // FRAME
    energy = np.square(conversation.audio[: count * FRAME].astype(np.float64)).reshape(count, FRAME).mean(axis=1)
    speech = np.zeros(count, dtype=bool)
    near = np.zeros(count, dtype=bool)
    for label in conversation.speakers:
        speech |= frame_mask(conversation.segments, label, count, grow=-0.05)
        near |= frame_mask(conversation.segments, label, count, grow=0.9)  # reverberation tails, turn noise
    gaps = ~near
    assert gaps.sum() > 300
    assert 10 * np.log10(energy[speech].mean() / energy[gaps].mean()) > 20
    # every turn went through its own channel; each speaker's turns differ
    channels = {}
    for turn in conversation.turns:
        channels.setdefault(turn.speaker, set()).add(turn.channel)
    assert all(len(seen) > 1 for seen in channels.values())


@pytest.mark.slow
def test_turn_variation_zero_keeps_each_speakers_channel():
    conversation = ConversationSimulator([SyntheticSpeaker(9, i) for i in range(2)], turn_variation=0.0).simulate(
        40, seed=4
    )
    channels = {}
    for turn in conversation.turns:
        channels.setdefault(turn.speaker, set()).add(turn.channel)
    assert all(len(seen) == 1 for seen in channels.values())
    assert channels[conversation.speakers[0]] != channels[conversation.speakers[1]]


def test_monologue_has_one_interjection_in_the_middle():
    main, other = tone_speakers(2)
    conversation = clean_simulator([main, other], style="monologue").simulate(120, seed=1)
    interjections = [t for t in conversation.turns if t.kind == "interjection"]
    assert len(interjections) == 1 and interjections[0].speaker == other.name
    assert 0.3 * 120 < interjections[0].start < 0.75 * 120
    assert {t.speaker for t in conversation.turns if t.kind == "turn"} == {main.name}
    spoken = {name: sum(s.duration for s in conversation.segments if s.label == name) for name in conversation.speakers}
    assert spoken[main.name] > 10 * spoken[other.name]


def test_one_speaker_gives_a_single_speaker_recording():
    conversation = clean_simulator(tone_speakers(1)).simulate(60, seed=0)
    assert conversation.speakers == ["low"]
    assert conversation.overlap_fraction() == 0.0
    assert sum(s.duration for s in conversation.segments) > 20


def test_shifted_sibling_is_higher_and_another_label():
    base = ToneSpeaker("tone", 440.0)
    sibling = ShiftedSpeaker(base, 4)
    assert sibling.name != base.name
    wave = sibling.utterance(np.random.default_rng(0))
    spectrum = np.abs(np.fft.rfft(wave))
    peak = np.fft.rfftfreq(len(wave), 1 / RATE)[np.argmax(spectrum)]
    assert peak == pytest.approx(440.0 * 2 ** (4 / 12), rel=0.01)
    with pytest.raises(InvalidArgumentError):
        ShiftedSpeaker(base, 0)


def test_speech_activity_finds_bursts_and_bridges_short_pauses():
    wave = np.zeros(3 * RATE, dtype=np.float32)
    wave[RATE // 2 : RATE] = 0.2  # 0.5-1.0 s
    wave[int(1.1 * RATE) : int(1.5 * RATE)] = 0.2  # 0.1 s pause: bridged at min_pause 0.25
    wave[int(2.2 * RATE) : int(2.6 * RATE)] = 0.2  # 0.7 s pause: not bridged
    assert speech_activity(wave) == [(0.5, 1.5), (2.2, 2.6)]
    assert speech_activity(wave, min_pause=0.0) == [(0.5, 1.0), (1.1, 1.5), (2.2, 2.6)]
    assert speech_activity(np.zeros(RATE, dtype=np.float32)) == []


def test_telephone_channel_removes_the_high_band():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(RATE).astype(np.float32)
    wet = Channel(300.0, 3400.0).apply(noise, 1.0, np.random.default_rng(1))
    spectrum = np.abs(np.fft.rfft(wet)) ** 2
    bins = np.fft.rfftfreq(len(wet), 1 / RATE)
    inside = spectrum[(bins > 800) & (bins < 2500)].mean()
    assert spectrum[bins > 5000].mean() < 1e-3 * inside
    assert spectrum[bins < 100].mean() < 1e-2 * inside
    assert Channel().vary(rng, 0.0) == Channel()


def test_speakers_from_lists_and_folders(tmp_path):
    tone = ToneSpeaker("x", 500.0).utterance(np.random.default_rng(0))
    for speaker in ("anna", "bob"):
        for number in range(2):
            path = tmp_path / "audio" / speaker / "s1" / f"{number}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), tone, RATE)
    folder = speakers_from_folder(tmp_path / "audio")
    assert [s.name for s in folder] == ["anna", "bob"] and all(len(s.paths) == 2 for s in folder)
    files = sorted((tmp_path / "audio").rglob("*.wav"))
    (tmp_path / "wav.scp").write_text("".join(f"u{i} {f}\n" for i, f in enumerate(files)))
    (tmp_path / "utt2spk").write_text("".join(f"u{i} {f.parts[-3]}\n" for i, f in enumerate(files)))
    listed = speakers_from_lists(tmp_path / "wav.scp", tmp_path / "utt2spk")
    assert [(s.name, len(s.paths)) for s in listed] == [("anna", 2), ("bob", 2)]
    conversation = clean_simulator(listed).simulate(20, seed=0)
    assert sorted(conversation.speakers) == ["anna", "bob"]
    (tmp_path / "utt2spk").write_text("u0 anna\nu9 bob\n")
    with pytest.raises(InvalidArgumentError, match="u9"):
        speakers_from_lists(tmp_path / "wav.scp", tmp_path / "utt2spk")


def test_bad_arguments_are_refused_with_a_reason():
    tones = tone_speakers()
    with pytest.raises(InvalidArgumentError, match="at least one speaker"):
        ConversationSimulator([])
    with pytest.raises(InvalidArgumentError, match="overlap"):
        ConversationSimulator(tones, overlap=0.7)
    with pytest.raises(InvalidArgumentError, match="two speakers"):
        ConversationSimulator(tones[:1], overlap=0.1)
    with pytest.raises(InvalidArgumentError, match="exactly two"):
        ConversationSimulator(tones, style="monologue")
    with pytest.raises(InvalidArgumentError, match="differ"):
        ConversationSimulator([tones[0], tones[0]])
    with pytest.raises(InvalidArgumentError, match="white space"):
        RecordedSpeaker("two words", ["a.wav"])
    with pytest.raises(InvalidArgumentError, match="positive"):
        ConversationSimulator(tones).simulate(0)


@pytest.mark.slow
def test_writing_a_long_recording_holds_a_block_not_the_recording(tmp_path):
    simulator = clean_simulator(tone_speakers(), overlap=0.1)
    tracemalloc.start()
    try:
        conversation = simulator.write(tmp_path / "long.wav", 1200, seed=0, block_seconds=5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sf.info(str(tmp_path / "long.wav")).frames == 1200 * RATE
    assert conversation.duration == 1200 and conversation.segments[-1].end > 1150
    whole = 1200 * RATE * 4  # the recording as float32: 77 MB
    assert peak < 12 * 2**20 < whole / 6
