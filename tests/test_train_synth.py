"""The synthetic multi-speaker corpus."""

import numpy as np
import soundfile

from redimnet.testing import synth


def test_voices_differ_between_speakers_and_repeat_for_one():
    a, b = synth.voice_for(0, 1), synth.voice_for(0, 2)
    assert a.f0 != b.f0 and a.formant_scale != b.formant_scale
    again = synth.voice_for(0, 1)
    assert again.f0 == a.f0 and np.array_equal(again.vowel_habits, a.vowel_habits)


def test_synthesized_speech_has_the_speakers_pitch():
    voice = synth.voice_for(0, 3)
    wave = synth.synthesize(voice, 1.5, np.random.default_rng(0))
    assert wave.dtype == np.float32 and wave.size == 24000 and np.isfinite(wave).all()
    # autocorrelation peak within the speaker's f0 range (declination/intonation +-40 %)
    segment = wave[4000:12000] - wave[4000:12000].mean()
    corr = np.correlate(segment, segment, "full")[segment.size - 1 :]
    low, high = int(16000 / (voice.f0 * 1.6)), int(16000 / (voice.f0 * 0.6))
    lag = low + int(np.argmax(corr[low:high]))
    assert 0.6 * voice.f0 < 16000 / lag < 1.6 * voice.f0


def test_generate_corpus_layout_and_trials(tmp_path):
    written = synth.generate_corpus(tmp_path / "c", speakers=[0, 5], utterances=3, seconds=0.5)
    assert [w[0] for w in written][:2] == ["id10000/session0/00001.wav", "id10000/session1/00002.wav"]
    audio, rate = soundfile.read(tmp_path / "c" / written[-1][0])
    assert rate == 16000 and 0.3 < audio.size / rate < 0.7 and np.abs(audio).max() <= 1.0
    trials = synth.write_trials(written, tmp_path / "trials.txt").read_text().splitlines()
    assert len(trials) == 15 and sum(line.startswith("1 ") for line in trials) == 6


def test_command_line_with_held_out_speakers(tmp_path, capsys):
    assert (
        synth.main(
            [
                str(tmp_path / "out"),
                "--speakers",
                "3",
                "--utterances",
                "2",
                "--seconds",
                "0.3",
                "--held-out",
                "1",
                "--rir-dir",
                str(tmp_path / "rir"),
            ]
        )
        == 0
    )
    assert len(list((tmp_path / "out" / "train").rglob("*.wav"))) == 4
    assert len(list((tmp_path / "out" / "test").rglob("*.wav"))) == 2
    assert (
        tmp_path / "out" / "test_trials.txt"
    ).read_text() == "1 id10002/session0/00001.wav id10002/session1/00002.wav\n"
    assert len(list((tmp_path / "rir").glob("*.wav"))) == 4
