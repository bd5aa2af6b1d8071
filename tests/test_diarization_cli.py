"""Diarization end to end: the Python API and the ``vad``, ``diarize`` and ``der`` verbs."""

import json

import numpy as np
import pytest
import soundfile

import redimnet
from redimnet import cli
from redimnet.audio.read import check_signal_level
from redimnet.diarization import Diarizer, EnergyVAD, OracleVAD, Segment, diarization_error, read_rttm
from redimnet.errors import InvalidArgumentError
from redimnet.testing.synth import generate_conversation

RATE = 16000


class ToneEmbedder:
    """Test double with the Embedder methods the pipeline uses: energy at 300 Hz vs 1200 Hz.

    Like the real embedder it refuses silent waveforms (the library's one silence rule).
    """

    min_samples, embed_dim, channel, model = 400, 2, None, None

    def embed_prepared(self, waves):
        rows = []
        for wave in waves:
            check_signal_level(wave)
            spectrum = np.abs(np.fft.rfft(wave))
            bins = np.fft.rfftfreq(len(wave), 1 / RATE)
            rows.append([spectrum[np.abs(bins - f) < 30].sum() for f in (300, 1200)])
        return np.asarray(rows, dtype=np.float32)


def _tones(plan, seconds):
    """A waveform with 300 Hz ('A') or 1200 Hz ('B') tones at the planned times, and its reference."""
    rng = np.random.default_rng(0)
    wave = rng.standard_normal(int(seconds * RATE)) * 0.001
    reference = []
    for start, end, label in plan:
        t = np.arange(int((end - start) * RATE)) / RATE
        tone = 300 if label == "A" else 1200
        wave[int(start * RATE) : int(start * RATE) + len(t)] += 0.3 * np.sin(2 * np.pi * tone * t)
        reference.append(Segment(start, end, label))
    return wave.astype(np.float32), reference


def test_api_diarizes_alternating_tones_exactly():
    plan = [(0.5, 4.0, "A"), (4.6, 9.0, "B"), (9.5, 11.0, "A"), (12.0, 16.5, "B"), (17.0, 19.0, "A")]
    wave, reference = _tones(plan, 20.0)
    diarizer = Diarizer(ToneEmbedder(), vad=EnergyVAD(), clustering="spectral")
    result = diarizer.diarize(wave, recording="tones")
    assert result.speakers == ["SPEAKER_01", "SPEAKER_02"]
    assert diarization_error(reference, result, collar=0.25).der < 0.03
    assert result.to_rttm().startswith("SPEAKER tones 1 0.")
    assert diarizer.diarize(wave, num_speakers=2).speakers == ["SPEAKER_01", "SPEAKER_02"]
    three = diarizer.diarize(wave, num_speakers=3)
    assert len(three.speakers) == 3
    # the same result from a 48 kHz waveform: resampled on the way in
    upsampled = np.repeat(wave, 3)
    assert len(diarizer.diarize(upsampled, sample_rate=48000).speakers) == 2


def _with_digital_silence(plan, seconds, silences):
    """``_tones`` with exact zeros over the ``silences`` (start, end) stretches."""
    wave, reference = _tones(plan, seconds)
    for start, end in silences:
        wave[int(start * RATE) : int(end * RATE)] = 0.0
    return wave, reference


def test_digital_silence_inside_a_speech_region_is_left_out():
    # one VAD region over everything; 4-8 s is exact digital silence between the two speakers
    wave, reference = _with_digital_silence([(0.5, 4.0, "A"), (8.0, 12.0, "B")], 12.5, [(4.0, 8.0)])
    diarizer = Diarizer(ToneEmbedder(), vad=OracleVAD([(0.0, 12.5)]))
    result = diarizer.diarize(wave, recording="gap")
    assert result.speakers == ["SPEAKER_01", "SPEAKER_02"]
    assert result.windows == 16 and result.silent_windows == 3  # windows at 4.5, 5.25 and 6.0 s are all zeros
    # the stretch only silent windows cover (5.25-6.75 s) is unlabelled; the rest went to the neighbours
    assert [(s.start, s.end) for s in result] == [(0.0, 5.25), (6.75, 12.5)]
    assert diarization_error(reference, result, collar=0.25).confusion == 0
    assert result.to_dict()["silent_windows"] == 3
    # one silent window alone: its overlapping neighbours share its time, nothing is unlabelled
    short_gap, _ = _with_digital_silence([(0.5, 4.4, "A"), (6.1, 9.0, "B")], 9.5, [(4.4, 6.1)])  # the 4.5 s window
    single = Diarizer(ToneEmbedder(), vad=OracleVAD([(0.0, 9.5)])).diarize(short_gap)
    assert single.silent_windows == 1 and len(single.speakers) == 2
    assert single[0].start == 0.0 and single[-1].end == 9.5
    assert all(a.end == b.start for a, b in zip(single, single[1:]))


def test_digital_silence_with_the_real_embedder(b0_model_and_checkpoint, one_thread):
    model, _ = b0_model_and_checkpoint
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(12 * RATE)).astype(np.float32)
    wave[4 * RATE : 8 * RATE] = 0.0
    diarizer = Diarizer(redimnet.Embedder(model, device="cpu"), vad=OracleVAD([(0.0, 12.0)]))
    result = diarizer.diarize(wave)
    assert result.silent_windows == 3 and result
    assert not any(s.start < 6.0 < s.end for s in result)  # the middle of the silence is nobody's
    # all silent: handled like a recording without speech
    nothing = diarizer.diarize(np.zeros(5 * RATE, dtype=np.float32))
    assert list(nothing) == [] and nothing.windows == nothing.silent_windows == 6


def test_speaker_count_is_checked_against_the_windows_that_are_not_silent():
    wave, _ = _with_digital_silence([(0.0, 1.2, "A")], 6.0, [(1.2, 6.0)])
    diarizer = Diarizer(ToneEmbedder(), vad=OracleVAD([(0.0, 6.0)]))
    with pytest.raises(InvalidArgumentError, match=r"3 speakers asked for.* only 2 window\(s\) \(5 more were silent\)"):
        diarizer.diarize(wave, num_speakers=3)
    assert diarizer.diarize(wave, num_speakers=2).speakers == ["SPEAKER_01", "SPEAKER_02"]
    # every window silent: no speech, not a speaker-count error
    assert list(diarizer.diarize(np.zeros(6 * RATE, dtype=np.float32), num_speakers=3)) == []


@pytest.fixture(scope="module")
def conversation(tmp_path_factory):
    folder = tmp_path_factory.mktemp("conv")
    generate_conversation(folder / "talk.wav", speakers=2, seconds=30, seed=5)
    return folder


def _run(*argv):
    return cli.main([str(a) for a in argv])


@pytest.mark.slow
def test_diarize_vad_and_der_verbs_end_to_end(tmp_path, conversation, b0_model_and_checkpoint, capsys, one_thread):
    _, checkpoint = b0_model_and_checkpoint
    out = tmp_path / "out"
    status = _run(
        "diarize",
        conversation / "talk.wav",
        "-o",
        out,
        "--checkpoint",
        checkpoint,
        "--vad",
        "energy",
        "--reference",
        conversation / "talk.rttm",
        "--plot",
        "--device",
        "cpu",
    )
    assert status == 0
    err = capsys.readouterr().err
    assert "talk.wav: " in err and "speaker(s)" in err and "DER " in err and "JER " in err
    hypothesis = read_rttm(out / "talk.rttm")["talk"]
    assert hypothesis and all(s.label.startswith("SPEAKER_") for s in hypothesis)
    summary = json.loads((out / "talk.json").read_text())
    assert summary["recording"] == "talk" and summary["duration"] == pytest.approx(30.0)
    totals = {s["label"]: s["seconds"] for s in summary["speakers"]}
    for label, seconds in totals.items():
        assert seconds == pytest.approx(sum(s.duration for s in hypothesis if s.label == label), abs=0.01)
    assert set(summary["timings"]) >= {"vad", "decode", "embed", "cluster", "total"}
    assert (out / "talk.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the scoring verb agrees with the library on the files just written
    assert _run("der", conversation / "talk.rttm", out, "--json") == 0
    scored = json.loads(capsys.readouterr().out)
    expected = diarization_error(read_rttm(conversation / "talk.rttm")["talk"], hypothesis, collar=0.25)
    assert scored["total"]["der"] == pytest.approx(expected.der)
    assert scored["recordings"]["talk"]["missed"] == pytest.approx(expected.missed)
    assert scored["total"]["jer"] == pytest.approx(expected.jer) and 0 <= expected.jer <= 1
    assert scored["recordings"]["talk"]["speakers"] == 2  # the conversation's two voices
    assert _run("der", conversation / "talk.rttm", out / "talk.rttm", "--collar", "0", "--skip-overlap") == 0
    table = capsys.readouterr().out
    assert "TOTAL" in table and "collar 0.0 s" in table and "overlap skipped" in table
    header, row = table.splitlines()[:2]
    assert header.split()[-4:] == ["s", "JER", "%", "speakers"]
    name, der, *_, jer, speakers = row.split()
    plain = diarization_error(read_rttm(conversation / "talk.rttm")["talk"], hypothesis, 0.0, skip_overlap=True)
    assert (name, speakers) == ("talk", "2")
    assert float(jer) == pytest.approx(100 * plain.jer, abs=0.006)
    assert float(der) == pytest.approx(100 * plain.der, abs=0.006)

    # VAD verb: speech as RTTM, close to the reference's speech
    assert _run("vad", conversation, "-o", tmp_path / "speech.rttm", "--vad", "energy") == 0
    speech = read_rttm(tmp_path / "speech.rttm")["talk"]
    assert {s.label for s in speech} == {"speech"}
    reference = [Segment(s.start, s.end, "speech") for s in read_rttm(conversation / "talk.rttm")["talk"]]
    vad_score = diarization_error(reference, speech)
    assert vad_score.missed < 0.1 * vad_score.total and vad_score.false_alarm < 0.15 * vad_score.total


@pytest.mark.slow
def test_silero_vad_runs_offline_on_a_conversation(tmp_path, conversation):
    pytest.importorskip("silero_vad")
    assert _run("vad", conversation / "talk.wav", "-o", tmp_path / "v", "--vad", "silero") == 0
    speech = read_rttm(tmp_path / "v" / "talk.rttm")["talk"]
    assert speech and sum(s.duration for s in speech) > 5.0


def test_silero_vad_leaves_the_model_its_threads(monkeypatch):
    pytest.importorskip("silero_vad")
    import sys

    import torch

    from redimnet.diarization.vad import SileroVAD, make_vad

    before = torch.get_num_threads()
    try:
        for make in (SileroVAD, lambda: make_vad("auto")):
            for name in [m for m in sys.modules if m == "silero_vad" or m.startswith("silero_vad.")]:
                monkeypatch.delitem(sys.modules, name)  # its import sets torch's thread count: import it afresh
            torch.set_num_threads(2)
            assert isinstance(make(), SileroVAD)
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_bad_inputs(tmp_path, conversation, b0_model_and_checkpoint, capsys, one_thread):
    _, checkpoint = b0_model_and_checkpoint
    soundfile.write(str(tmp_path / "silent.wav"), np.zeros(RATE * 3, dtype=np.float32), RATE)
    wave, _ = _tones([(0.2, 1.0, "A")], 1.2)
    soundfile.write(str(tmp_path / "short.wav"), wave, RATE)
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    common = ["--checkpoint", checkpoint, "--vad", "energy", "--device", "cpu"]

    assert _run("diarize", tmp_path / "silent.wav", "-o", tmp_path / "o1", *common) == 0
    assert "no speech found" in capsys.readouterr().err
    assert (tmp_path / "o1" / "silent.rttm").read_text() == ""

    assert _run("diarize", tmp_path / "short.wav", "-o", tmp_path / "o2", *common) == 0
    segments = read_rttm(tmp_path / "o2" / "short.rttm")["short"]
    assert len(segments) == 1 and segments[0].start < 0.3 and segments[0].end > 0.9

    assert _run("diarize", tmp_path / "short.wav", "-o", tmp_path / "o3", "--num-speakers", "5", *common) == 1
    assert "short.wav: 5 speakers asked for, but its speech gives only 1 window(s)" in capsys.readouterr().err
    assert _run("diarize", tmp_path / "short.wav", "-o", tmp_path / "o3", "--min-speakers", "2", *common) == 1
    assert "short.wav: at least 2 speakers asked for, but its speech gives only 1 window(s)" in capsys.readouterr().err

    # a float file whose samples are far outside [-1, 1]: refused by the input policy embed uses too
    soundfile.write(str(tmp_path / "wild.wav"), 1e30 * _tones([(1.0, 3.0, "A")], 4.0)[0], RATE, subtype="FLOAT")
    assert _run("diarize", tmp_path / "wild.wav", "-o", tmp_path / "o3", *common) == 1
    err = capsys.readouterr().err
    assert "wild.wav: 64000 sample(s) are larger than 2.15e+09 in magnitude" in err and "Warning" not in err

    status = _run(
        "diarize",
        tmp_path / "broken.wav",
        conversation / "talk.wav",
        tmp_path / "missing.wav",
        "-o",
        tmp_path / "o4",
        *common,
    )
    err = capsys.readouterr().err
    assert status == 1
    assert "2 input(s) failed" in err and "broken.wav" in err and "missing.wav" in err
    assert (tmp_path / "o4" / "talk.rttm").stat().st_size > 0

    assert (
        _run(
            "diarize",
            tmp_path / "short.wav",
            "-o",
            tmp_path / "o5",
            "--num-speakers",
            "2",
            "--max-speakers",
            "3",
            *common,
        )
        == 2
    )
    assert "either --num-speakers" in capsys.readouterr().err
    bad = tmp_path / "bad.rttm"
    bad.write_text("SPEAKER x 1 0 1 <NA> <NA>\n")
    assert _run("der", bad, bad) == 2
    assert f"{bad}:1:" in capsys.readouterr().err


@pytest.mark.slow
def test_diarize_verb_with_digital_silence(tmp_path, b0_model_and_checkpoint, capsys, one_thread, monkeypatch):
    _, checkpoint = b0_model_and_checkpoint
    # two tones with 3 s of exact zeros between them, which --min-silence 3.5 bridges into one region
    wave = np.zeros(int(10.5 * RATE), dtype=np.float32)
    t = np.arange(int(3.5 * RATE)) / RATE
    wave[int(0.5 * RATE) : int(4.0 * RATE)] = 0.3 * np.sin(2 * np.pi * 300 * t)
    wave[int(7.0 * RATE) : int(10.5 * RATE)] = 0.3 * np.sin(2 * np.pi * 1200 * t)
    soundfile.write(str(tmp_path / "gap.wav"), wave, RATE)
    common = ["--checkpoint", checkpoint, "--device", "cpu", "--vad", "energy", "--min-silence", "3.5"]
    assert _run("vad", tmp_path / "gap.wav", "-o", tmp_path / "v.rttm", "--vad", "energy", "--min-silence", "3.5") == 0
    assert len(read_rttm(tmp_path / "v.rttm")["gap"]) == 1  # one region over the silence
    assert _run("diarize", tmp_path / "gap.wav", "-o", tmp_path / "out", *common) == 0
    err = capsys.readouterr().err
    assert "silent window(s) (below -80 dBFS) left out" in err and "failed" not in err
    segments = read_rttm(tmp_path / "out" / "gap.rttm")["gap"]
    assert segments and not any(s.start < 5.5 < s.end for s in segments)  # the middle of the zeros is unlabelled
    summary = json.loads((tmp_path / "out" / "gap.json").read_text())
    assert summary["silent_windows"] >= 2 and summary["windows"] > summary["silent_windows"]

    # a detector that marks a wholly silent file as speech: handled like no speech (exit 0, empty RTTM)
    soundfile.write(str(tmp_path / "mute.wav"), np.zeros(4 * RATE, dtype=np.float32), RATE)
    monkeypatch.setattr("redimnet.diarization.vad.make_vad", lambda *a, **k: OracleVAD([(0.0, 60.0)]))
    assert _run("diarize", tmp_path / "mute.wav", "-o", tmp_path / "out", *common) == 0
    err = capsys.readouterr().err
    assert "no speech found in 4.0 s (the 5 window(s) over its speech regions are all below -80 dBFS)" in err
    assert (tmp_path / "out" / "mute.rttm").read_text() == ""
    assert json.loads((tmp_path / "out" / "mute.json").read_text())["segments"] == []


def test_speakers_db_names_matching_clusters(tmp_path):
    import torch

    from redimnet.models.fingerprint import model_fingerprint
    from redimnet.speakers.sqlite import SpeakerDatabase

    embedder = ToneEmbedder()
    embedder.model = torch.nn.Linear(2, 2)  # what the database fingerprints
    plan = [(0.5, 4.0, "A"), (4.6, 9.0, "B"), (9.5, 12.0, "A")]
    wave, _ = _tones(plan, 13.0)
    enrolled = embedder.embed_prepared([wave[int(0.6 * RATE) : int(3.9 * RATE)]])
    with SpeakerDatabase(tmp_path / "db.sqlite") as database:
        database.enroll("Ada Lovelace", enrolled, ["a"], fingerprint=model_fingerprint(embedder.model))
    diarizer = Diarizer(embedder, vad=EnergyVAD(), speakers_db=tmp_path / "db.sqlite", name_threshold=0.9)
    result = diarizer.diarize(wave)
    assert result.speakers == ["Ada_Lovelace", "SPEAKER_02"]
    assert result.names["Ada_Lovelace"]["enrolled"] == "Ada Lovelace"
    assert result.names["Ada_Lovelace"]["score"] > 0.99
    assert [s.label for s in result] == ["Ada_Lovelace", "SPEAKER_02", "Ada_Lovelace"]
    # nobody scores above an impossible threshold: labels stay anonymous
    anonymous = Diarizer(embedder, vad=EnergyVAD(), speakers_db=tmp_path / "db.sqlite", name_threshold=1.01)
    assert anonymous.diarize(wave).speakers == ["SPEAKER_01", "SPEAKER_02"]
