"""Diarization building blocks: RTTM, DER, VAD, clustering, streamed audio, synthetic conversations."""

import warnings

import numpy as np
import pytest
import soundfile

from redimnet.audio.read import AudioError, read_audio
from redimnet.audio.stream import AudioSource
from redimnet.diarization import clustering
from redimnet.diarization.clustering import AgglomerativeClustering, SpectralClustering
from redimnet.diarization.der import DERScore, diarization_error
from redimnet.diarization.diarizer import Diarizer, keep_windows, plan_windows
from redimnet.diarization.segments import RTTMError, Segment, format_rttm, parse_rttm, read_rttm
from redimnet.diarization.vad import EnergyVAD, scores_to_regions
from redimnet.errors import InvalidArgumentError
from redimnet.testing.synth import generate_conversation, plan_conversation


# --- RTTM -------------------------------------------------------------------------------------------
def test_rttm_round_trip_keeps_segments():
    segments = [Segment(0.5, 1.75, "alice"), Segment(2.0, 3.125, "bob")]
    text = format_rttm(segments, "rec1")
    assert text.splitlines()[0] == "SPEAKER rec1 1 0.500 1.250 <NA> <NA> alice <NA> <NA>"
    assert parse_rttm(text) == {"rec1": segments}


@pytest.mark.parametrize(
    "line, message",
    [
        ("SPEAKER rec 1 0.0 1.0 <NA> <NA>", "at least 8 fields"),
        ("SPEAKER rec 1 zero 1.0 <NA> <NA> a <NA> <NA>", "start 'zero' is not a number"),
        ("SPEAKER rec 1 0.0 -1 <NA> <NA> a <NA> <NA>", "negative duration"),
        ("SPEAKER rec 1 -2 1 <NA> <NA> a <NA> <NA>", "negative start"),
        ("SPEAKER rec 1 0.0 nan <NA> <NA> a <NA> <NA>", "not finite"),
        ("LEXEME rec 1 0.0 1 <NA> <NA> a <NA> <NA>", "expected a SPEAKER line"),
        ("SPEAKER rec 1 0.0 1 <NA> <NA> <NA> <NA> <NA>", "the speaker label (the 8th field) is <NA>"),
    ],
)
def test_rttm_errors_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.rttm"
    path.write_text("# comment\nSPEAKER rec 1 0.0 1.0 <NA> <NA> a <NA> <NA>\n\n" + line + "\n")
    with pytest.raises(RTTMError) as error:
        read_rttm(path)
    assert f"{path}:4:" in str(error.value) and message in str(error.value)


def test_rttm_binary_file_is_a_clear_error(tmp_path):
    path = tmp_path / "x.rttm"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(RTTMError, match="not a text file"):
        read_rttm(path)


# --- DER --------------------------------------------------------------------------------------------
def test_der_hand_computed_example():
    reference = [Segment(0, 10, "A"), Segment(10, 20, "B")]
    # hyp: x covers 0-12 (2 s of B confused), y covers 12-18 (B), nothing 18-20 (missed), z 25-26 (false alarm)
    hypothesis = [Segment(0, 12, "x"), Segment(12, 18, "y"), Segment(25, 26, "z")]
    score = diarization_error(reference, hypothesis, collar=0.0)
    assert score.total == pytest.approx(20)
    assert score.missed == pytest.approx(2)
    assert score.false_alarm == pytest.approx(1)
    assert score.confusion == pytest.approx(2)
    assert score.der == pytest.approx(5 / 20)
    assert score.mapping == {"x": "A", "y": "B"}
    # a 0.5 s collar each side removes 0-0.5, 9.5-10.5 and 19.5-20 from scoring
    collared = diarization_error(reference, hypothesis, collar=0.5)
    assert collared.total == pytest.approx(18)
    assert collared.missed == pytest.approx(1.5)
    assert collared.confusion == pytest.approx(1.5)


def test_der_overlap_scored_or_skipped():
    reference = [Segment(0, 4, "A"), Segment(2, 6, "B")]
    hypothesis = [Segment(0, 6, "h")]
    scored = diarization_error(reference, hypothesis, collar=0.0)
    assert scored.total == pytest.approx(8) and scored.missed == pytest.approx(2)
    assert scored.confusion == pytest.approx(2)  # h maps to one of A/B; the other's 2 solo seconds are confused
    skipped = diarization_error(reference, hypothesis, collar=0.0, skip_overlap=True)
    assert skipped.total == pytest.approx(4) and skipped.missed == 0 and skipped.confusion == pytest.approx(2)


def test_jer_hand_computed_examples():
    reference = [Segment(0, 10, "A"), Segment(10, 20, "B")]
    hypothesis = [Segment(0, 12, "x"), Segment(12, 18, "y"), Segment(25, 26, "z")]
    score = diarization_error(reference, hypothesis, collar=0.0)
    # A-x: 10 s shared of a 12 s union; B-y: 6 s of 10 s; the unmapped z is not counted
    assert score.speakers == 2
    assert score.jer == pytest.approx(((1 - 10 / 12) + (1 - 6 / 10)) / 2)
    # one hypothesis speaker for two reference speakers: the unpaired one has error 1
    merged = diarization_error(reference, [Segment(0, 20, "x")], collar=0.0)
    assert merged.jer == pytest.approx((0.5 + 1.0) / 2)
    assert merged.der == pytest.approx(0.5)
    assert diarization_error(reference, [], collar=0.0).jer == 1.0
    assert diarization_error(reference, reference, collar=0.0).jer == 0.0
    # over recordings JER is the mean over all their reference speakers, not the mean of the rates
    solo = diarization_error([Segment(0, 5, "C")], [Segment(0, 5, "w")], collar=0.0)
    assert (score + merged + solo).jer == pytest.approx((1 / 6 + 0.4 + 0.5 + 1.0 + 0.0) / 5)
    # a speaker whose speech lies wholly inside the collars is not scored
    short = diarization_error(reference + [Segment(30, 30.4, "D")], hypothesis, collar=0.25)
    assert short.speakers == 2
    # nothing to score on either side
    assert diarization_error([], []).jer == 0.0
    assert diarization_error([], [Segment(0, 1, "x")]).jer == 1.0


def _random_segments(rng, labels, length=30.0):
    segments = []
    for label in labels:
        t = rng.uniform(0, 3)
        while t < length:
            d = rng.uniform(0.2, 4)
            segments.append(Segment(round(t, 3), round(t + d, 3), label))
            t += d + rng.uniform(0.1, 3)
    return segments


def _annotation(segments):
    """A pyannote.core Annotation of our segments."""
    from pyannote.core import Annotation
    from pyannote.core import Segment as PSegment

    result = Annotation()
    for index, s in enumerate(segments):
        result[PSegment(s.start, s.end), index] = s.label
    return result


@pytest.mark.slow
def test_der_matches_pyannote_metrics_on_random_pairs():
    pytest.importorskip("pyannote.metrics")
    from pyannote.metrics.diarization import DiarizationErrorRate

    rng = np.random.default_rng(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(60):
            reference = _random_segments(rng, [f"r{i}" for i in range(rng.integers(1, 5))])
            hypothesis = _random_segments(rng, [f"h{i}" for i in range(rng.integers(1, 6))])
            collar, skip = float(rng.choice([0.0, 0.25, 0.5])), bool(rng.integers(2))
            expected = DiarizationErrorRate(collar=2 * collar, skip_overlap=skip)(
                _annotation(reference), _annotation(hypothesis), detailed=True
            )
            ours = diarization_error(reference, hypothesis, collar, skip)
            assert ours.total == pytest.approx(expected["total"], abs=1e-9)
            assert ours.missed == pytest.approx(expected["missed detection"], abs=1e-9)
            assert ours.false_alarm == pytest.approx(expected["false alarm"], abs=1e-9)
            assert ours.confusion == pytest.approx(expected["confusion"], abs=1e-9)


def test_jer_matches_pyannote_metrics_on_random_pairs():
    pytest.importorskip("pyannote.metrics")
    from pyannote.metrics.diarization import JaccardErrorRate

    rng = np.random.default_rng(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for collar, skip in [(0.0, False), (0.25, False), (0.5, True), (0.0, True)]:
            metric = JaccardErrorRate(collar=2 * collar, skip_overlap=skip)
            total = DERScore()
            for _ in range(15):
                reference = _random_segments(rng, [f"r{i}" for i in range(rng.integers(1, 5))])
                hypothesis = _random_segments(rng, [f"h{i}" for i in range(rng.integers(1, 6))])
                expected = metric(_annotation(reference), _annotation(hypothesis), detailed=True)
                ours = diarization_error(reference, hypothesis, collar, skip)
                assert ours.speakers == expected["speaker count"]
                assert ours.speaker_error == pytest.approx(expected["speaker error"], abs=1e-9)
                assert ours.jer == pytest.approx(expected["jaccard error rate"], abs=1e-9)
                total += ours
            assert total.jer == pytest.approx(abs(metric), abs=1e-9)  # pyannote's total over the recordings


# --- VAD --------------------------------------------------------------------------------------------
def test_scores_to_regions_hysteresis_padding_and_limits():
    scores = np.array([0, 0, 9, 9, 5, 9, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 9, 9, 9, 9, 0], dtype=float)
    # frames of 0.1 s; onset 8, offset 4 -> raw regions [0.2, 0.6), [1.0, 1.1), [1.9, 2.3)
    regions = scores_to_regions(scores, 0.1, 8, 4, duration=2.4, min_speech=0.0, min_silence=0.0, pad=0.0)
    assert np.allclose(regions, [(0.2, 0.6), (1.0, 1.1), (1.9, 2.3)])
    bridged = scores_to_regions(scores, 0.1, 8, 4, duration=2.4, min_speech=0.0, min_silence=0.45, pad=0.0)
    assert np.allclose(bridged, [(0.2, 1.1), (1.9, 2.3)])
    dropped = scores_to_regions(scores, 0.1, 8, 4, duration=2.4, min_speech=0.25, min_silence=0.0, pad=0.05)
    assert np.allclose(dropped, [(0.15, 0.65), (1.85, 2.35)])
    with pytest.raises(InvalidArgumentError):
        scores_to_regions(scores, 0.1, 4, 8, duration=2.4)


def test_energy_vad_finds_tone_bursts_and_ignores_noise():
    rate = 16000
    rng = np.random.default_rng(0)
    wave = rng.standard_normal(rate * 6) * 0.001
    t = np.arange(rate) / rate
    for start in (1, 4):
        wave[start * rate : (start + 1) * rate] += 0.3 * np.sin(2 * np.pi * 440 * t)
    regions = EnergyVAD().regions(AudioSource(wave.astype(np.float32)))
    assert len(regions) == 2
    for (start, end), expected in zip(regions, (1, 4)):
        assert abs(start - expected) < 0.1 and abs(end - expected - 1) < 0.1
    assert EnergyVAD().regions(AudioSource(np.zeros(rate * 3, dtype=np.float32))) == []
    # loud samples the input policy accepts (a float file with a wild level) do not overflow: same regions
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loud = EnergyVAD().regions(AudioSource((wave * 2e9).astype(np.float32)))
    assert len(loud) == len(regions)
    for got, want in zip(loud, regions):
        assert got == pytest.approx(want)
    # beyond it they are refused, as embedding refuses them (one policy: redimnet.audio.check_samples)
    with pytest.raises(AudioError, match="larger than 2.15e[+]09 in magnitude"):
        AudioSource((wave * 1e30).astype(np.float32))


@pytest.mark.slow
def test_energy_vad_on_a_synthetic_conversation(tmp_path):
    reference = generate_conversation(tmp_path / "c.wav", speakers=2, seconds=30, seed=3)
    segments = EnergyVAD().segments(AudioSource(tmp_path / "c.wav"))
    score = diarization_error([Segment(s, e, "speech") for s, e, _ in reference], segments, collar=0.25)
    assert score.missed / score.total < 0.1 and score.false_alarm / score.total < 0.15


# --- streamed audio ---------------------------------------------------------------------------------
def test_streamed_blocks_match_whole_file_decoding(tmp_path):
    rate = 44100
    wave = (np.random.default_rng(0).standard_normal((rate * 7, 2)) * 0.1).astype(np.float32)
    soundfile.write(str(tmp_path / "a.wav"), wave, rate)
    blocks = list(AudioSource(tmp_path / "a.wav", block_seconds=2.0).blocks())
    assert len(blocks) >= 4
    streamed = np.concatenate(blocks)
    whole = read_audio(tmp_path / "a.wav")
    assert abs(len(streamed) - len(whole)) <= 2
    n = min(len(streamed), len(whole))
    assert np.max(np.abs(streamed[1000 : n - 1000] - whole[1000 : n - 1000])) < 1e-3


class _Recorder:
    """Test double with the Embedder methods the pipeline uses: keeps the audio it is given."""

    min_samples, embed_dim, channel, model = 400, 2, None, None

    def __init__(self):
        self.waves = []

    def embed_prepared(self, waves):
        self.waves += [np.array(w) for w in waves]
        return np.ones((len(waves), 2), dtype=np.float32)


def test_windows_get_their_own_audio_across_blocks_and_long_pauses():
    # pauses longer than a block and regions crossing block edges: each window must still be cut
    # from its own place in the recording (a lost offset shifts every later window)
    rate = 16000
    wave = (np.arange(40 * rate) % 10007 / 10007).astype(np.float32)  # every sample tells where it is
    regions = [(0.2, 1.9), (4.7, 8.3), (8.6, 9.1), (13.5, 17.2), (30.0, 31.6), (39.0, 40.0)]
    windows = plan_windows(regions, window=1.5, hop=0.75)
    recorder = _Recorder()
    Diarizer(recorder, vad="energy", batch_windows=3).embed_windows(AudioSource(wave, block_seconds=2.0), windows, {})
    assert len(recorder.waves) == len(windows.starts)
    for start, length, piece in zip(windows.starts, windows.lengths, recorder.waves):
        assert np.array_equal(piece, wave[start : start + length])


# --- clustering -------------------------------------------------------------------------------------
def _blobs(count, speakers, dim=32, spread=0.6, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((speakers, dim))
    labels = np.repeat(np.arange(speakers), count // speakers)
    rng.shuffle(labels)
    return centres[labels] + spread * rng.standard_normal((len(labels), dim)), labels


def _agreement(truth, found):
    """Fraction of items whose found cluster's majority truth label is theirs."""
    good = 0
    for cluster in np.unique(found):
        good += np.bincount(truth[found == cluster]).max()
    return good / len(truth)


@pytest.mark.parametrize("method", [SpectralClustering(), AgglomerativeClustering(threshold=0.3)])
@pytest.mark.parametrize("speakers", [1, 2, 4, 6])
def test_clustering_estimates_the_number_of_speakers(method, speakers):
    x, truth = _blobs(300, speakers)
    found = method.cluster(x)
    assert len(np.unique(found)) == speakers
    assert _agreement(truth, found) > 0.98
    assert found[0] == 0 and set(np.unique(found)) == set(range(speakers))


def test_clustering_honours_given_counts():
    x, _ = _blobs(240, 4)
    for method in (SpectralClustering(), AgglomerativeClustering(threshold=0.3)):
        assert len(np.unique(method.cluster(x, num_speakers=2))) == 2
        assert len(np.unique(method.cluster(x, min_speakers=5, max_speakers=6))) in (5, 6)
        assert len(np.unique(method.cluster(x, max_speakers=3))) <= 3
        with pytest.raises(InvalidArgumentError, match="only 240 window"):
            method.cluster(x, num_speakers=241)


def test_context_adds_each_windows_neighbours_in_its_own_region_only():
    x = np.eye(5)
    context = clustering.with_context(x, np.array([0, 0, 0, 1, 1]))
    third = 1 / np.sqrt(3)
    assert np.allclose(context[0], [1 / np.sqrt(2), 1 / np.sqrt(2), 0, 0, 0])
    assert np.allclose(context[1], [third, third, third, 0, 0])
    assert np.allclose(context[2], [0, 1 / np.sqrt(2), 1 / np.sqrt(2), 0, 0])  # not the next region's window
    assert np.allclose(context[3], [0, 0, 0, 1 / np.sqrt(2), 1 / np.sqrt(2)]) and np.allclose(context[4], context[3])
    lone = clustering.with_context(x[:3], np.array([0, 1, 2]))  # no shared region: unchanged
    assert np.allclose(lone, x[:3])
    opposite = clustering.with_context(np.array([[1.0, 0.0], [-1.0, 0.0]]), np.array([0, 0]))
    assert np.allclose(opposite, [[1, 0], [-1, 0]])  # neighbours that cancel leave the window as it was
    with pytest.raises(InvalidArgumentError, match="one region number per window"):
        clustering.with_context(x, np.array([0, 0]))


@pytest.mark.slow
@pytest.mark.parametrize("method", [SpectralClustering(max_direct=500), AgglomerativeClustering(0.3, max_direct=500)])
def test_long_inputs_are_clustered_in_chunks_then_linked_without_a_full_matrix(monkeypatch, method):
    """Speakers recur all along (as in hours of a meeting series): each chunk is clustered, the chunk
    clusters are linked into speakers, and no step sees more than max_direct points."""
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((7, 32))
    turns = rng.integers(7, size=1200)  # 1,200 turns of 5 windows: 6,000 windows
    truth = np.repeat(turns, 5)
    x = centres[truth] + 0.5 * rng.standard_normal((len(truth), 32))
    sizes = []
    original = type(method).cluster_points
    monkeypatch.setattr(
        type(method), "cluster_points", lambda self, p, lo, hi: sizes.append(len(p)) or original(self, p, lo, hi)
    )
    found = method.fit(x, regions=np.repeat(np.arange(1200), 5))
    assert max(sizes) <= 500 and len(sizes) > 12  # 12 chunks and at least one linking step
    assert found.count == 7 and _agreement(truth, found.labels) > 0.99
    given = method.fit(x, num_speakers=5)
    assert given.count == 5


# --- windows ----------------------------------------------------------------------------------------
def test_windows_cover_each_region_and_short_regions_get_one_window():
    windows = plan_windows([(0.0, 0.6), (1.0, 4.2)], window=1.5, hop=0.75)
    rate = 16000
    assert windows.starts[0] == 0 and windows.lengths[0] == int(0.6 * rate)
    later = windows.starts[windows.region == 1]
    assert later[0] == rate and later[-1] + int(1.5 * rate) == int(4.2 * rate)
    assert np.all(np.diff(later) <= int(0.75 * rate))


def _one_hot(labels, speakers):
    return np.eye(speakers)[np.asarray(labels)]


def test_speaker_changes_where_the_weighted_window_scores_cross():
    regions = [(0.0, 3.0)]
    windows = plan_windows(regions, window=1.5, hop=0.75)  # starts 0, .75, 1.5; centres .75, 1.5, 2.25
    # equally sure windows: the change is halfway between the centres of the last A and the first B
    segments = Diarizer.segments_from_scores(regions, windows, _one_hot([0, 0, 1], 2), ["A", "B"])
    assert [s.label for s in segments] == ["A", "B"]
    assert (segments[0].start, segments[-1].end) == (0.0, 3.0) and segments[0].end == segments[1].start
    assert abs(segments[0].end - 1.875) <= 0.05
    # a sure A and an unsure B (a window that straddles the change): the change moves towards the
    # unsure window's centre; with Hann weights cos^2 and sin^2 it is where tan^2 = 2 / 0.2, at 2.10 s
    scores = np.array([[1.0, -1.0], [1.0, -1.0], [0.2, 0.4]])
    segments = Diarizer.segments_from_scores(regions, windows, scores, ["A", "B"])
    assert [s.label for s in segments] == ["A", "B"] and abs(segments[0].end - 2.104) <= 0.05
    # a short turn in the middle of a region is kept, around its window's centre
    regions = [(0.0, 6.0)]
    windows = plan_windows(regions, window=1.5, hop=0.75)  # 7 windows, the 4th centred at 3.0
    segments = Diarizer.segments_from_scores(regions, windows, _one_hot([0, 0, 0, 1, 0, 0, 0], 2), ["A", "B"])
    assert [s.label for s in segments] == ["A", "B", "A"]
    assert abs(segments[1].start - 2.625) <= 0.05 and abs(segments[1].end - 3.375) <= 0.05


def test_long_regions_are_scored_in_chunks_with_the_same_result(monkeypatch):
    from redimnet.diarization import diarizer as pipeline

    regions = [(0.3, 41.17), (42.0, 42.4), (43.0, 70.02)]
    windows = plan_windows(regions, window=1.5, hop=0.75)
    scores = np.random.default_rng(0).uniform(-1, 1, size=(len(windows.starts), 3))
    whole = Diarizer.segments_from_scores(regions, windows, scores, ["A", "B", "C"])
    monkeypatch.setattr(pipeline, "FRAME_CHUNK", 7)
    assert Diarizer.segments_from_scores(regions, windows, scores, ["A", "B", "C"]) == whole
    assert len(whole) > 20 and whole[0].start == 0.3 and whole[-1].end == 70.02
    assert sum(s.duration for s in whole) == pytest.approx(sum(e - s for s, e in regions))


# --- synthetic conversations ------------------------------------------------------------------------
def test_dropped_windows_leave_their_time_to_neighbours_or_unlabelled():
    regions = [(0.0, 4.0), (5.0, 6.0), (7.0, 10.0)]
    windows = plan_windows(regions, window=1.5, hop=0.75)  # starts 0 .75 1.5 2.25 2.5 | 5 | 7 7.75 8.5
    assert list(windows.starts / 16000) == [0, 0.75, 1.5, 2.25, 2.5, 5, 7, 7.75, 8.5]
    unchanged, same = keep_windows(regions, windows, np.ones(9, dtype=bool))
    assert unchanged == regions and same is windows
    # 0.75 alone (neighbours overlap: no gap); the only window of region 2; 7.75 and 8.5 (the end of region 3)
    kept = np.array([1, 0, 1, 1, 1, 0, 1, 0, 0], dtype=bool)
    left, remaining = keep_windows(regions, windows, kept)
    assert left == [(0.0, 4.0), (7.0, 8.5)]
    assert list(remaining.starts / 16000) == [0, 1.5, 2.25, 2.5, 7]
    assert list(remaining.region) == [0, 0, 0, 0, 1]
    # a dropped stretch in the middle splits its region; the VAD's own edges are kept exactly
    middle = np.array([1, 1, 0, 0, 1, 1, 1, 1, 1], dtype=bool)
    uneven = [(0.0, 4.00003), (5.0, 6.0), (7.0, 10.0)]  # an end between two samples
    split, _ = keep_windows(uneven, plan_windows(uneven, window=1.5, hop=0.75), middle)
    assert split == [(0.0, 2.25), (2.5, 4.00003), (5.0, 6.0), (7.0, 10.0)]
    segments = Diarizer.segments_from_scores(left, remaining, _one_hot([0, 0, 1, 1, 2], 3), ["A", "B", "C"])
    assert [(s.start, s.label) for s in segments] == [(0.0, "A"), (segments[1].start, "B"), (7.0, "C")]
    assert [s.end for s in segments] == [segments[1].start, 4.0, 8.5]
    # A's last window is centred at 2.25 s, B's two windows at 3.0 and 3.25 s: the change lies between
    assert 2.25 < segments[1].start < 3.0


@pytest.mark.slow
def test_conversation_reference_matches_the_audio(tmp_path):
    reference = generate_conversation(tmp_path / "c.wav", speakers=4, seconds=60, seed=1, snr_db=30)
    wave, rate = soundfile.read(str(tmp_path / "c.wav"))
    assert rate == 16000 and len(wave) == 60 * 16000
    assert {label for _, _, label in reference} == {f"SPEAKER_0{i}" for i in range(1, 5)}
    written = read_rttm(tmp_path / "c.rttm")["c"]
    assert [s.label for s in written] == [k for _, _, k in reference]
    assert np.allclose([(s.start, s.end) for s in written], [(s, e) for s, e, _ in reference], atol=1e-6)
    inside = np.zeros(len(wave), dtype=bool)
    for start, end, _ in reference:
        inside[int(start * rate) : int(end * rate)] = True
    outside = ~inside
    # speech regions are far louder than the rest (noise at 30 dB below speech, plus reverberation tails)
    assert np.mean(wave[inside] ** 2) > 10 * np.mean(wave[outside] ** 2)
    turns = plan_conversation(4, 600, seed=1, overlap=0.3)
    overlapping = sum(1 for a, b in zip(turns, turns[1:]) if b.start < a.start + a.seconds)
    assert 0.15 < overlapping / len(turns) < 0.45
    pauses = [b.start - (a.start + a.seconds) for a, b in zip(turns, turns[1:])]
    assert max(pauses) <= 3.0


def test_spans_of_blocks_equal_slices_of_the_whole_stream_and_read_only_what_they_need():
    from redimnet.audio.stream import spans_of_blocks

    rng = np.random.default_rng(0)
    stream = rng.standard_normal(10_000).astype(np.float32)
    cuts = np.sort(rng.choice(np.arange(1, 10_000), size=30, replace=False))
    blocks = np.split(stream, cuts)
    read = []

    def reader():
        for block in blocks:
            read.append(len(block))
            yield block

    # overlapping, gapped, repeated and past-the-end spans, starts never decreasing
    starts = [0, 0, 100, 150, 3_000, 3_001, 7_500, 9_990, 12_000]
    lengths = [50, 400, 100, 2_000, 1, 999, 1_000, 100, 10]
    spans = spans_of_blocks(reader(), starts, lengths)
    first = next(spans)
    assert sum(read) < 50 + max(len(b) for b in blocks)  # the first span read no more than it needed
    got = [first.copy()] + [span.copy() for span in spans]
    assert len(got) == len(starts)
    for span, start, length in zip(got, starts, lengths):
        np.testing.assert_array_equal(span, stream[start : start + length])
