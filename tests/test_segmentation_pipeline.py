"""Diarization with a segmentation network: the pipeline's mechanics with a tone-detecting stand-in
for the network (so every number is known), and the ``vad --overlap`` / ``diarize --segmentation`` verbs."""

import json

import numpy as np
import pytest
import soundfile
import torch
from conftest import TINY_MODEL
from test_diarization_cli import RATE, ToneEmbedder

import redimnet
from redimnet import cli
from redimnet.diarization import Diarizer, Segment, diarization_error, read_rttm
from redimnet.diarization.powerset import Powerset
from redimnet.diarization.segmentation import SegmentationConfig, SegmentationNet, save_segmentation
from redimnet.diarization.segmented import (
    Chunk,
    ChunkTrack,
    SegmentationVAD,
    Segmenter,
    frame_labels,
    map_by_agreement,
    nearest_other,
    overlap_speakers,
    subtract_regions,
)
from redimnet.diarization.segments import overlap_regions
from redimnet.errors import ConfigError

TONES = (300, 1200, 2500)


def tiny_network(chunk_seconds=4.0) -> SegmentationNet:
    torch.manual_seed(0)
    config = SegmentationConfig(backbone=dict(TINY_MODEL, hop_length=320), lstm_hidden=8, chunk_seconds=chunk_seconds)
    return SegmentationNet(config)


class ToneSegmenter(Segmenter):
    """A segmenter whose "network" hears which of three tones sound in each frame, and numbers the
    local speakers of every other chunk in reverse (the pipeline must not rely on the order)."""

    calls = 0

    def predict(self, chunks):
        hop = self.hop
        frames = chunks.shape[1] // hop
        activity = np.zeros((len(chunks), frames, 3), dtype=np.float32)
        bins = np.fft.rfftfreq(hop, 1 / RATE)
        for row, wave in enumerate(chunks):
            spectrum = np.abs(np.fft.rfft(wave[: frames * hop].reshape(frames, hop), axis=1))
            for k, tone in enumerate(TONES):
                activity[row, :, k] = spectrum[:, np.abs(bins - tone) < 60].sum(axis=1) > 5.0
            ToneSegmenter.calls += 1
            if ToneSegmenter.calls % 2:
                activity[row] = activity[row, :, ::-1]
        classes = self.powerset.from_multilabel(activity).clip(min=0).astype(np.uint8)
        return classes, activity.astype(np.float16), (activity.sum(axis=2) >= 2).astype(np.float16)


def tones(plan, seconds):
    rng = np.random.default_rng(0)
    wave = rng.standard_normal(int(seconds * RATE)) * 0.001
    reference = []
    for start, end, label in plan:
        t = np.arange(int(round((end - start) * RATE))) / RATE
        first = int(round(start * RATE))
        wave[first : first + len(t)] += 0.2 * np.sin(2 * np.pi * TONES["ABC".index(label)] * t)
        reference.append(Segment(start, end, label))
    return wave.astype(np.float32), reference


class ThreeToneEmbedder(ToneEmbedder):
    embed_dim = 3

    def embed_prepared(self, waves):
        rows = []
        for wave in waves:
            spectrum = np.abs(np.fft.rfft(wave))
            bins = np.fft.rfftfreq(len(wave), 1 / RATE)
            rows.append([spectrum[np.abs(bins - f) < 30].sum() for f in TONES])
        return np.asarray(rows, dtype=np.float32)


PLAN = [(1.0, 6.0, "A"), (5.0, 9.0, "B"), (10.0, 14.0, "A"), (13.5, 18.0, "C"), (19.0, 23.0, "B"), (24.0, 27.0, "C")]


def test_overlapped_tones_get_both_speakers_and_the_rttm_has_overlapping_lines():
    wave, reference = tones(PLAN, 30.0)
    segmenter = ToneSegmenter(tiny_network(), min_overlap=0.0)
    diarizer = Diarizer(
        ThreeToneEmbedder(), segmentation=segmenter, min_clean=0.5, cluster_seconds=0.5, speaker_embeddings="local"
    )
    for count in (3, None):
        result = diarizer.diarize(wave, num_speakers=count, recording="tones")
        score = diarization_error(reference, result, collar=0.0)
        assert score.der < 0.02, (count, score)
        assert len(result.speakers) == 3
    assert [[round(s, 2), round(e, 2)] for s, e in result.overlap] == [[5.0, 6.0], [13.5, 14.0]]
    lines = [line.split() for line in result.to_rttm().splitlines()]
    spans = sorted((float(f[3]), float(f[3]) + float(f[4])) for f in lines)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:]))  # overlapping RTTM lines
    assert result.to_dict()["overlap"] == pytest.approx(1.5, abs=0.05)
    speech, overlap = SegmentationVAD(segmenter).analyse(redimnet.diarization.AudioSource(wave))
    assert overlap == [(pytest.approx(5.0), pytest.approx(6.0)), (pytest.approx(13.5), pytest.approx(14.0))]
    assert [(round(s, 2), round(e, 2)) for s, e in speech] == [(1.0, 9.0), (10.0, 18.0), (19.0, 23.0), (24.0, 27.0)]


def test_overlap_shorter_than_min_overlap_goes_to_one_speaker():
    wave, reference = tones(PLAN, 30.0)  # overlaps: 5.0-6.0 s and 13.5-14.0 s
    assert ToneSegmenter(tiny_network()).min_overlap == 0.75  # the default
    for min_overlap, expected in ((0.75, [[5.0, 6.0]]), (1.2, [])):
        segmenter = ToneSegmenter(tiny_network(), min_overlap=min_overlap)
        result = Diarizer(
            ThreeToneEmbedder(), segmentation=segmenter, min_clean=0.5, cluster_seconds=0.5, speaker_embeddings="local"
        ).diarize(wave, num_speakers=3)
        assert [[round(s, 2), round(e, 2)] for s, e in result.overlap] == expected
        found = [[round(s, 1), round(e, 1)] for s, e in overlap_regions(list(result))]
        assert found == expected  # the speakers' segments overlap there, and only there
        score = diarization_error(reference, result, collar=0.0)
        missed_overlap = 1.5 - sum(e - s for s, e in expected)
        assert score.missed == pytest.approx(missed_overlap, abs=0.1) and score.confusion < 0.1


def test_embedding_every_other_chunk_halves_the_embeddings_and_keeps_the_result():
    wave, reference = tones(PLAN, 30.0)
    results = {}
    for every in (1, 2):
        segmenter = ToneSegmenter(tiny_network(), min_overlap=0.0)
        diarizer = Diarizer(
            ThreeToneEmbedder(),
            segmentation=segmenter,
            min_clean=0.5,
            cluster_seconds=0.5,
            embed_every=every,
            speaker_embeddings="local",
        )
        results[every] = diarizer.diarize(wave, num_speakers=3)
        assert diarization_error(reference, results[every], collar=0.0).der < 0.02
    assert results[2].windows <= (results[1].windows + 1) // 2 + 1
    with pytest.raises(ConfigError, match="embed_every must be a positive integer"):
        Diarizer(ThreeToneEmbedder(), segmentation=ToneSegmenter(tiny_network()), embed_every=0)


# --------------------------------------------------------------------------- speakers from windows


def test_frame_labels_put_each_frame_in_the_segment_holding_its_centre():
    segments = [Segment(0.0, 0.05, "1"), Segment(0.05, 0.1, "0"), Segment(0.15, 0.19, "2")]
    # 20 ms frames: centres 0.01, 0.03, 0.05, 0.07, 0.09, 0.11, 0.13, 0.15, 0.17, 0.19
    assert frame_labels(segments, 10, 0.02).tolist() == [1, 1, 0, 0, 0, -1, -1, 2, 2, -1]


def test_nearest_other_speaker_in_time_skips_unlabelled_frames():
    labels = np.array([-1, 0, 0, -1, 1, 1, 1, -1, -1, 0, 2, 2])
    assert nearest_other(labels).tolist() == [-1, 1, 1, -1, 0, 0, 0, -1, -1, 2, 0, 0]
    assert nearest_other(np.array([0, 0, -1, 0])).tolist() == [-1, -1, -1, -1]  # nobody else
    assert nearest_other(np.array([-1, -1])).tolist() == [-1, -1]


def _track(chunks, frames, powerset, min_overlap=0):
    """A ChunkTrack of hand-made chunks: (first frame, [frames, 3] 0/1 activity of the local speakers)."""
    track = ChunkTrack(frames, 320, powerset.sizes, min_overlap)
    for index, (start, activity) in enumerate(chunks):
        activity = np.asarray(activity, dtype=np.float32)
        classes = powerset.from_multilabel(activity).astype(np.uint8)
        track.add(Chunk(index, start * 320, np.zeros(0, np.float32), classes, activity.astype(np.float16)))
    return track


def test_local_speakers_take_the_window_speaker_of_most_of_their_frames():
    powerset = Powerset(3, 2)
    # chunk 0 (frames 0-9): local 0 speaks 0-5, local 2 speaks 4-9; chunk 1 (frames 5-14): local 1 5-14
    first = np.zeros((10, 3))
    first[0:6, 0] = 1
    first[4:10, 2] = 1
    second = np.zeros((10, 3))
    second[:, 1] = 1
    track = _track([(0, first), (5, second)], 15, powerset)
    labels = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, -1])
    mapping = map_by_agreement(track, labels, powerset, 2)
    # chunk 0: local 0 -> 1 (5 frames of 6), local 2 -> 0 (5 of 6); local 1 never speaks: none
    # chunk 1: local 1 -> 0 (7 frames against 2); locals 0 and 2 silent
    assert mapping.tolist() == [[1, -1, 0], [-1, 0, -1]]
    assert map_by_agreement(track, np.full(15, -1), powerset, 2).tolist() == [[-1, -1, -1], [-1, -1, -1]]


def test_overlapped_frames_go_to_the_two_local_speakers_or_the_nearest_other_speaker():
    powerset = Powerset(3, 2)
    activity = np.zeros((20, 3))
    activity[0:12, 0] = 1  # local 0 speaks 0-11
    activity[8:20, 1] = 1  # local 1 speaks 8-19: frames 8-11 (0.16-0.24 s) overlapped
    track = _track([(0, activity)], 20, powerset)
    overlap = [(pytest.approx(0.16), pytest.approx(0.24))]
    labels = np.array([0] * 10 + [1] * 10)  # the windows' speakers change at frame 10
    added, removed = overlap_speakers(track, labels, np.array([[0, 1, -1]]), 2, 0.02, min_gap=0.0, min_turn=0.0)
    assert added == [overlap, overlap] and removed == [[], []]
    # without any matched local speaker: the frame's own speaker and the nearest other one in time
    added, removed = overlap_speakers(track, labels, np.full((1, 3), -1), 2, 0.02, min_gap=0.0, min_turn=0.0)
    assert added == [overlap, overlap] and removed == [[], []]
    # the windows put a third speaker on the overlapped frames: the two local speakers' speakers replace it
    labels = np.array([0] * 8 + [2] * 4 + [1] * 8)
    added, removed = overlap_speakers(track, labels, np.array([[0, 1, -1]]), 3, 0.02, min_gap=0.0, min_turn=0.0)
    assert added == [overlap, overlap, []] and removed == [[], [], overlap]


def test_subtract_regions():
    assert subtract_regions([(0, 5), (6, 10)], [(1, 2), (4, 7), (9, 12)]) == [(0, 1), (2, 4), (7, 9)]
    assert subtract_regions([(0, 5)], []) == [(0, 5)] and subtract_regions([(1, 2)], [(0, 3)]) == []


SHORT_TURNS = [(1.0, 5.0, "A"), (6.0, 6.6, "B"), (7.5, 11.0, "A"), (12.0, 12.6, "B"), (13.5, 17.0, "A")]


@pytest.mark.slow
def test_speakers_from_windows_label_turns_too_short_for_a_local_embedding():
    # B's turns (0.6 s) are shorter than min_clean (1 s): the local design embeds nothing of B and misses
    # them; the windows over the speech label them, and overlapped speech still gets both speakers
    wave, reference = tones(SHORT_TURNS, 19.0)

    def diarizer(design=None):
        options = {} if design is None else {"speaker_embeddings": design}
        return Diarizer(ThreeToneEmbedder(), segmentation=ToneSegmenter(tiny_network(), min_overlap=0.0), **options)

    windows = diarizer("windows").diarize(wave, num_speakers=2)
    assert diarization_error(reference, windows, collar=0.0).der < 0.02
    assert windows.speaker_count["given"] is True and windows.windows > 0  # the window pipeline's record
    local = diarization_error(reference, diarizer("local").diarize(wave, num_speakers=2), collar=0.0)
    assert local.missed + local.confusion >= 1.5, local
    # auto (the default): windows when the count is given, the local design when it is estimated
    assert list(diarizer().diarize(wave, num_speakers=2)) == list(windows)
    estimated = diarizer().diarize(wave)
    assert estimated.speaker_count == {}  # the local design records no clustering evidence
    assert list(estimated) == list(diarizer("local").diarize(wave))
    assert diarizer("windows").diarize(wave).speaker_count["given"] is False

    wave, reference = tones(PLAN, 30.0)
    result = diarizer("windows").diarize(wave, num_speakers=3)
    assert [[round(s, 2), round(e, 2)] for s, e in result.overlap] == [[5.0, 6.0], [13.5, 14.0]]
    found_overlap = overlap_regions(list(result))
    assert sum(e - s for s, e in found_overlap) == pytest.approx(1.5, abs=0.1)
    assert diarization_error(reference, result, collar=0.0).missed < 0.1
    with pytest.raises(redimnet.InvalidArgumentError, match="speaker_embeddings must be one of auto, windows, local"):
        Diarizer(ThreeToneEmbedder(), segmentation=ToneSegmenter(tiny_network()), speaker_embeddings="clean")


def test_a_recording_shorter_than_a_chunk_and_one_without_speech():
    wave, reference = tones([(0.5, 2.0, "A"), (1.5, 3.0, "B")], 3.2)
    for design in ("local", "windows"):
        diarizer = Diarizer(
            ThreeToneEmbedder(),
            segmentation=ToneSegmenter(tiny_network(), min_overlap=0),
            min_clean=0.3,
            speaker_embeddings=design,
        )
        result = diarizer.diarize(wave, num_speakers=2)
        assert diarization_error(reference, result, collar=0.0).der < 0.05, design
    silent = np.random.default_rng(1).standard_normal(5 * RATE).astype(np.float32) * 0.001
    empty = diarizer.diarize(silent)
    assert len(empty) == 0 and empty.speech == [] and empty.overlap == []


def test_segmentation_keeps_memory_bounded_per_chunk():
    # a long recording: what is kept per chunk is the classes and activity, not the audio
    wave, _ = tones([(10.0 * k + 1, 10.0 * k + 6, "ABC"[k % 3]) for k in range(30)], 300.0)
    segmenter = ToneSegmenter(tiny_network())
    source = redimnet.diarization.AudioSource(wave)
    kept = [chunk for chunk in segmenter.chunks(source)]
    assert len(kept) == 149 and all(len(c.audio) == 64000 for c in kept)
    assert kept[-1].start + 64000 <= len(wave) and kept[-1].start + 64000 > len(wave) - 320


# --------------------------------------------------------------------------- command line


@pytest.fixture
def conversation(tmp_path):
    wave, reference = tones(PLAN, 30.0)
    path = tmp_path / "in" / "tones.wav"
    path.parent.mkdir()
    soundfile.write(path, wave, RATE)
    return path


@pytest.fixture
def network(tmp_path):
    return save_segmentation(tiny_network(), tmp_path / "seg.pt")


def test_vad_overlap_needs_a_segmentation_network(conversation, tmp_path, capsys):
    assert cli.main(["vad", str(conversation), "-o", str(tmp_path / "o.rttm"), "--overlap"]) == 2
    assert "--overlap needs --segmentation MODEL" in capsys.readouterr().err
    assert cli.main(["vad", str(conversation), "-o", str(tmp_path / "o.rttm"), "--segmentation", "nope.pt"]) == 2
    assert "--segmentation nope.pt: no such file" in capsys.readouterr().err
    embedding = redimnet.save_checkpoint(redimnet.ReDimNet(**TINY_MODEL), tmp_path / "embedding.pt")
    code = cli.main(["vad", str(conversation), "-o", str(tmp_path / "o.rttm"), "--segmentation", str(embedding)])
    assert code == 2 and "not a segmentation model" in capsys.readouterr().err
    assert not (tmp_path / "o.rttm").exists()


def test_vad_writes_speech_or_overlap_regions_from_the_network(conversation, network, tmp_path, capsys):
    for flag, label in (([], "speech"), (["--overlap"], "overlap")):
        out = tmp_path / f"{label}.rttm"
        assert cli.main(["vad", str(conversation), "-o", str(out), "--segmentation", str(network), *flag]) == 0
        err = capsys.readouterr().err
        assert "s overlapped" in err
        assert all(line.split()[7] == label for line in out.read_text().splitlines())


def test_vad_overlap_threshold_and_min_overlap_options(conversation, network, tmp_path, capsys):
    def overlap(*options):
        out = tmp_path / "overlap.rttm"
        args = ["vad", str(conversation), "-o", str(out), "--segmentation", str(network), "--overlap"]
        assert cli.main([*args, *options]) == 0
        capsys.readouterr()
        return [(float(f[3]), float(f[4])) for f in (line.split() for line in out.read_text().splitlines())]

    # threshold 0: every frame is overlapped (one region over the whole 30 s); 1: none is
    assert overlap("--overlap-threshold", "0", "--min-overlap", "0") == [(0.0, pytest.approx(30.0, abs=0.05))]
    assert overlap("--overlap-threshold", "1") == []
    assert overlap("--overlap-threshold", "0", "--min-overlap", "31") == []  # shorter than 31 s
    for options, message in (
        (["--overlap-threshold", "1.5"], "--overlap-threshold must be from 0 to 1, got 1.5"),
        (["--overlap-threshold", "nan"], "--overlap-threshold must be from 0 to 1, got nan"),
        (["--min-overlap", "-1"], "--min-overlap must be at least 0 s, got -1"),
    ):
        args = ["vad", str(conversation), "-o", str(tmp_path / "x.rttm"), "--segmentation", str(network), *options]
        assert cli.main(args) == 2 and message in capsys.readouterr().err
    for option in ("--overlap-threshold", "--min-overlap"):
        assert cli.main(["vad", str(conversation), "-o", str(tmp_path / "x.rttm"), option, "0.5"]) == 2
        assert f"{option} needs --segmentation MODEL" in capsys.readouterr().err
    assert not (tmp_path / "x.rttm").exists()


@pytest.mark.slow
def test_diarize_min_clean_and_cluster_seconds_options(conversation, network, tmp_path, capsys):
    from conftest import PROJECT_ROOT

    checkpoint = PROJECT_ROOT / "tests" / "data" / "diarization" / "redimnet_synthetic.pt"
    base = ["diarize", str(conversation), "--checkpoint", str(checkpoint), "--num-speakers", "2"]
    out = tmp_path / "out"
    for options in (["--cluster-seconds", "0"], ["--embed-every", "2"], ["--speaker-embeddings", "windows"]):
        assert cli.main([*base, "-o", str(out), "--segmentation", str(network), *options]) == 0
        assert json.loads((out / "tones.json").read_text())["speakers"]
    # no local speaker of a 4 s chunk has 5 s of speech: nothing is embedded, nobody found
    out = tmp_path / "none"
    args = [*base, "-o", str(out), "--segmentation", str(network), "--min-clean", "5", "--speaker-embeddings", "local"]
    assert cli.main(args) == 0
    assert json.loads((out / "tones.json").read_text())["speakers"] == []
    capsys.readouterr()
    for options, message in (
        (["--min-clean", "0"], "--min-clean must be positive, got 0"),
        (["--cluster-seconds", "-1"], "--cluster-seconds must be at least 0 s, got -1"),
        (["--embed-every", "0"], "--embed-every must be at least 1, got 0"),
    ):
        args = [*base, "-o", str(tmp_path / "bad"), "--segmentation", str(network), *options]
        assert cli.main(args) == 2 and message in capsys.readouterr().err
    for option, value in (
        ("--min-clean", "1"),
        ("--cluster-seconds", "1"),
        ("--embed-every", "1"),
        ("--speaker-embeddings", "windows"),
    ):
        assert cli.main([*base, "-o", str(tmp_path / "bad"), option, value]) == 2
        assert f"{option} needs --segmentation MODEL" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_diarize_with_segmentation_writes_overlap_to_the_json(conversation, network, tmp_path, capsys):
    from conftest import PROJECT_ROOT

    out = tmp_path / "out"
    checkpoint = PROJECT_ROOT / "tests" / "data" / "diarization" / "redimnet_synthetic.pt"
    args = ["diarize", str(conversation), "-o", str(out), "--segmentation", str(network)]
    assert cli.main(args + ["--checkpoint", str(checkpoint), "--num-speakers", "2"]) == 0
    err = capsys.readouterr().err
    summary = json.loads((out / "tones.json").read_text())
    assert "overlap" in summary and "s overlapped" in err
    assert read_rttm(out / "tones.rttm").keys() <= {"tones"}
    assert cli.main(args + ["--checkpoint", str(checkpoint), "--segmentation-step", "0"]) == 2
    assert "segmentation step" in capsys.readouterr().err


def test_overlap_regions_of_a_reference():
    segments = [Segment(0, 5, "a"), Segment(4, 8, "b"), Segment(7, 9, "c"), Segment(8, 10, "a"), Segment(10, 12, "b")]
    assert overlap_regions(segments) == [[4.0, 5.0], [7.0, 9.0]]
    assert overlap_regions(segments, 1) == [[0.0, 12.0]]
    assert overlap_regions(segments, 3) == []
