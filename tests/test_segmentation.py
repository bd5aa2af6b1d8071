"""The segmentation network's parts: powerset classes, the permutation-invariant loss, frame labels,
chunking, the reconstruction of overlapping speakers, and the model file."""

import itertools

import numpy as np
import pytest
import torch
from conftest import TINY_MODEL

from redimnet.diarization.powerset import Powerset
from redimnet.diarization.segmentation import (
    SegmentationConfig,
    SegmentationNet,
    load_segmentation,
    save_segmentation,
)
from redimnet.diarization.segmented import (
    Chunk,
    ChunkTrack,
    LocalSpeakers,
    Segmenter,
    assign_local_speakers,
    chunk_starts,
    follow_neighbours,
    frame_segments,
    smooth_runs,
    speech_and_overlap,
)
from redimnet.diarization.segments import Segment
from redimnet.errors import CheckpointError, ConfigError, InvalidArgumentError
from redimnet.training.segmentation import PowersetLoss, frame_activity


def tiny_config(**changes) -> SegmentationConfig:
    backbone = dict(TINY_MODEL, hop_length=320)
    return SegmentationConfig(backbone=backbone, lstm_hidden=8, **changes)


# --------------------------------------------------------------------------- powerset


def test_powerset_classes_of_three_speakers_and_pairs():
    powerset = Powerset(3, 2)
    assert powerset.classes == [(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2)]
    every = np.array(list(itertools.product([0, 1], repeat=3)))
    classes = powerset.from_multilabel(every)
    for row, index in zip(every, classes):
        if row.sum() > 2:
            assert index == -1
        else:
            assert powerset.classes[index] == tuple(np.flatnonzero(row))
            assert (powerset.to_multilabel(index) == row.astype(bool)).all()
    probabilities = np.eye(7)[[4]] * 0.6 + np.eye(7)[[1]] * 0.4  # {0,1} at 0.6, {0} at 0.4
    assert np.allclose(powerset.marginals(probabilities), [[1.0, 0.6, 0.0]])
    with pytest.raises(InvalidArgumentError, match="max_simultaneous"):
        Powerset(2, 3)


# --------------------------------------------------------------------------- loss


def one_hot_log_probs(classes, count=7):
    log_probs = torch.full((1, len(classes), count), -30.0)
    for frame, index in enumerate(classes):
        log_probs[0, frame, index] = 0.0
    return torch.log_softmax(log_probs, dim=-1)


def test_loss_is_zero_for_a_perfect_prediction_under_any_order_of_the_local_speakers():
    powerset = Powerset(3, 2)
    loss = PowersetLoss(powerset)
    activity = torch.tensor([[[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 0, 1], [0, 1, 1]]], dtype=torch.int8)
    valid = torch.ones(1, 5, dtype=torch.bool)
    for order in itertools.permutations(range(3)):
        predicted = powerset.from_multilabel(activity[0].numpy()[:, list(order)])
        value, correct, count = loss(one_hot_log_probs(predicted), activity, valid)
        assert value.item() < 1e-6
        assert (correct.item(), count.item()) == (5, 5)
    # a wrong frame costs: speaker 1 missing from the overlap
    predicted = powerset.from_multilabel(activity[0].numpy())
    predicted[1] = powerset.class_of_mask[1]
    value, correct, count = loss(one_hot_log_probs(predicted), activity, valid)
    assert value.item() > 1.0 and correct.item() == 4


def test_loss_leaves_out_invalid_frames_and_frames_of_three_speakers():
    powerset = Powerset(3, 2)
    loss = PowersetLoss(powerset)
    activity = torch.tensor([[[1, 1, 1], [1, 0, 0], [0, 1, 0]]], dtype=torch.int8)
    valid = torch.tensor([[True, True, False]])
    predicted = [0, powerset.class_of_mask[1], 0]  # frame 0 cannot be expressed, frame 2 is not valid
    value, correct, count = loss(one_hot_log_probs(predicted), activity, valid)
    assert value.item() < 1e-6 and (correct.item(), count.item()) == (1, 1)


def test_loss_gradient_reaches_the_network():
    torch.manual_seed(0)
    model = SegmentationNet(tiny_config())
    loss = PowersetLoss(model.powerset)
    wave = torch.randn(2, 16000)
    activity = torch.zeros(2, 50, 3, dtype=torch.int8)
    activity[:, 10:30, 0] = 1
    value, _, count = loss(model(wave), activity, torch.ones(2, 50, dtype=torch.bool))
    value.backward()
    assert count.item() == 100
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


# --------------------------------------------------------------------------- labels


def test_frame_activity_keeps_the_most_present_speakers_and_leaves_out_the_others():
    powerset = Powerset(2, 2)
    segments = [
        Segment(0.0, 1.0, "a"),  # 1.0 s
        Segment(0.5, 0.8, "c"),  # 0.3 s, beyond two local speakers: its frames are not valid
        Segment(0.9, 1.5, "b"),  # 0.6 s
        Segment(3.0, 4.0, "a"),  # outside the chunk
    ]
    activity, valid = frame_activity(segments, 0.0, 100, 0.02, powerset)  # 2 s chunk
    assert activity.shape == (100, 2)
    assert activity[:, 0].sum() == 50 and activity[:, 1].sum() == 30  # a: 0-1 s, b: 0.9-1.5 s
    assert activity[45:50].all()  # both in 0.9-1.0 s
    assert not valid[25:40].any() and valid[:25].all() and valid[40:].all()
    # a chunk starting later sees its own part of the reference
    later, _ = frame_activity(segments, 1.0, 100, 0.02, powerset)
    assert later[:, 0].sum() == 25 and later[:, 1].sum() == 0  # b, 1.0-1.5 s; a starts at the chunk's end


# --------------------------------------------------------------------------- chunks and reconstruction


def test_chunk_starts_cover_the_recording_and_end_at_its_end():
    assert chunk_starts(100, 200, 50, 10).tolist() == [0]
    assert chunk_starts(5, 200, 50, 10).tolist() == []
    starts = chunk_starts(1000, 200, 100, 10)
    assert starts[0] == 0 and starts[-1] == 800 and np.all(np.diff(starts) <= 100)
    starts = chunk_starts(1055, 200, 100, 10)
    assert starts[-1] == 850  # whole frames; the last chunk ends within a frame of the end


def track_of(chunks, frames, powerset, hop=1, min_overlap=0):
    track = ChunkTrack(frames, hop, powerset.sizes, min_overlap)
    for index, (start, classes) in enumerate(chunks):
        classes = np.asarray(classes, dtype=np.uint8)
        activity = powerset.to_multilabel(classes).astype(np.float16)
        track.add(Chunk(index, start * hop, np.zeros(0, np.float32), classes, activity))
    return track


def test_reconstruction_gives_both_speakers_where_they_overlap():
    powerset = Powerset(3, 2)
    a, b, ab = powerset.class_of_mask[1], powerset.class_of_mask[2], powerset.class_of_mask[3]
    # 12000 frames (three blocks), chunks of 1000 frames every 500; local speaker 0 is "A" in
    # every chunk, local 1 is "B"; A speaks 0-6000, B 5000-12000, both 5000-6000
    frames, size = 12000, 1000
    chunks = []
    for start in range(0, frames - size + 1, 500):
        t = np.arange(start, start + size)
        classes = np.where((t < 5000), a, np.where(t < 6000, ab, b))
        chunks.append((start, classes))
    track = track_of(chunks, frames, powerset)
    mapping = np.tile([0, 1, -1], (len(chunks), 1))
    turns = frame_segments(track, mapping, 2, 1.0, min_gap=0, min_turn=0)
    assert turns == [[(0.0, 6000.0)], [(5000.0, 12000.0)]]
    speech, overlap = speech_and_overlap(track, 1.0, 0, 0)
    assert speech == [(0.0, 12000.0)] and overlap == [(5000.0, 6000.0)]
    # swapping the local numbers in every other chunk does not matter once the mapping follows
    swapped = [(s, np.where(c == a, b, np.where(c == b, a, c))) if i % 2 else (s, c) for i, (s, c) in enumerate(chunks)]
    mapping = np.array([[1, 0, -1] if i % 2 else [0, 1, -1] for i in range(len(chunks))])
    assert frame_segments(track_of(swapped, frames, powerset), mapping, 2, 1.0, 0, 0) == turns


def test_overlap_decision_thresholds_the_probability_of_two_speakers_together():
    powerset = Powerset(3, 2)  # 0: nobody, 1-3: one speaker, 4: {0, 1}, 5: {0, 2}, 6: {1, 2}
    probabilities = np.array(
        [
            [0.1, 0.45, 0.0, 0.0, 0.25, 0.2, 0.0],  # {0} most probable, but pairs 0.45 together
            [0.0, 0.3, 0.3, 0.0, 0.4, 0.0, 0.0],  # the pair {0, 1} most probable with 0.4
            [0.9, 0.04, 0.0, 0.0, 0.03, 0.03, 0.0],
        ]
    )
    assert powerset.decide(probabilities).tolist() == [1, 4, 0]
    assert powerset.decide(probabilities, 0.4).tolist() == [4, 4, 0]
    assert powerset.decide(probabilities, 0.42).tolist() == [4, 1, 0]
    assert powerset.decide(probabilities, 0.5).tolist() == [1, 1, 0]
    assert powerset.decide(probabilities, 0.0).tolist() == [4, 4, 4]  # always overlapped
    single = Powerset(2, 1)  # no class of two speakers: nothing to threshold
    assert single.decide(np.array([[0.2, 0.5, 0.3]]), 0.0).tolist() == [1]


def test_overlap_is_decided_on_the_probabilities_of_the_chunks_pooled_not_on_their_votes():
    powerset = Powerset(3, 2)
    a, ab = powerset.class_of_mask[1], powerset.class_of_mask[3]
    # frames 0-100: chunk 0 gives two speakers probability 0.9 (class {0, 1}); frames 50-150:
    # chunk 1 gives 0.3 (class {0}); in frames 50-100 their Hann weights cross at frame 75
    found = {}
    for pooled in (True, False):
        track = ChunkTrack(150, 1, powerset.sizes, 0, overlap_level=0.5)
        for index, (start, probability) in enumerate(((0, 0.9), (50, 0.3))):
            classes = np.full(100, ab if probability >= 0.5 else a, dtype=np.uint8)
            overlap = np.full(100, probability, dtype=np.float16) if pooled else None
            track.add(Chunk(index, start, np.zeros(0, np.float32), classes, powerset.to_multilabel(classes), overlap))
        found[pooled] = speech_and_overlap(track, 1.0, 0, 0, 0, 0)
    # pooled: 0.9 w0 + 0.3 w1 >= 0.5 (w0 + w1) while chunk 0 keeps half chunk 1's weight (to frame 80);
    # the chunks' classes alone (no probabilities) vote, and the vote turns at the crossing
    assert found[True] == ([(0.0, 150.0)], [(0.0, 80.0)])
    assert found[False] == ([(0.0, 150.0)], [(0.0, 75.0)])


def test_by_default_a_second_speaker_needs_more_than_a_third_of_the_chunks_probability():
    # the default decision (docs/diarization.md: chosen on the tune conversations, where stretches whose
    # pooled probability of two speakers stays between 0.3 and 0.35 were mostly one voice heard as two)
    segmenter = Segmenter(SegmentationNet(tiny_config()))
    powerset = segmenter.powerset
    frame = segmenter.frame_seconds  # 20 ms
    track = segmenter.track(500 * segmenter.hop)  # 10 s, one chunk over all of it
    probability = np.full(500, 0.1)
    probability[100:200] = 0.32  # 2 s just above a third
    probability[300:400] = 0.4  # 2 s clearly above
    classes = np.full(500, powerset.class_of_mask[1], dtype=np.uint8)
    activity = powerset.to_multilabel(classes).astype(np.float16)
    track.add(Chunk(0, 0, np.zeros(0, np.float32), classes, activity, probability.astype(np.float16)))
    speech, overlap = speech_and_overlap(track, frame, 0, 0, 0, 0)
    assert speech == [(0.0, 10.0)]
    assert overlap == [(pytest.approx(6.0), pytest.approx(8.0))]


def test_overlaps_shorter_than_min_overlap_count_as_one_speaker():
    powerset = Powerset(3, 2)
    a, ab = powerset.class_of_mask[1], powerset.class_of_mask[3]
    classes = np.full(100, a)
    classes[20:23] = ab  # 3 frames of overlap
    classes[50:60] = ab  # 10 frames
    for min_overlap, expected in ((0, [(20.0, 23.0), (50.0, 60.0)]), (5, [(50.0, 60.0)]), (11, [])):
        track = track_of([(0, classes)], 100, powerset, min_overlap=min_overlap)
        counts = track.counts()
        assert counts.dtype == np.uint8 and counts.max() <= 2 and counts.min() == 1
        speech, overlap = speech_and_overlap(track, 1.0, 0, 0, 0, 0)
        assert speech == [(0.0, 100.0)] and overlap == expected
        turns = frame_segments(track, np.array([[0, 1, -1]]), 2, 1.0, min_gap=0, min_turn=0)
        assert turns == [[(0.0, 100.0)], [(float(s), float(e)) for s, e in expected]]


def test_segmenter_refuses_an_overlap_threshold_outside_zero_to_one_and_a_negative_min_overlap():
    network = SegmentationNet(tiny_config())
    for options, message in (
        ({"overlap_threshold": 1.5}, "overlap_threshold must be from 0 to 1, got 1.5"),
        ({"overlap_threshold": float("nan")}, "overlap_threshold must be from 0 to 1, got nan"),
        ({"min_overlap": -0.5}, "min_overlap must be at least 0 s, got -0.5"),
    ):
        with pytest.raises(ConfigError, match=message):
            Segmenter(network, **options)
    segmenter = Segmenter(network, overlap_threshold=None, min_overlap=0.5)
    assert segmenter.overlap_threshold is None and segmenter.track(16000 * 10).min_overlap == 25  # 20 ms frames


def test_chunks_not_embedded_take_the_speakers_of_their_neighbours():
    powerset = Powerset(3, 2)
    a, b, ab = powerset.class_of_mask[1], powerset.class_of_mask[2], powerset.class_of_mask[3]
    swap = {a: b, b: a, ab: ab}
    # chunks of 100 frames every 50; A speaks 0-120, B 100-250; chunk 1 numbers A as 1 and B as 0
    chunks = []
    for index, start in enumerate(range(0, 151, 50)):
        t = np.arange(start, start + 100)
        classes = np.where(t < 100, a, np.where(t < 120, ab, b))
        chunks.append((start, np.vectorize(swap.get)(classes) if index % 2 else classes))
    track = track_of(chunks, 250, powerset)
    mapping = np.array([[0, 1, -1], [-1, -1, -1], [0, 1, -1], [-1, -1, -1]])  # chunks 0 and 2 embedded
    followed = follow_neighbours(track, mapping, powerset, every=2)
    assert followed[0].tolist() == [0, 1, -1] and followed[2].tolist() == [0, 1, -1]
    assert followed[1].tolist() == [1, 0, -1]  # its local 0 is B, its local 1 is A
    assert followed[3].tolist() == [1, -1, -1]  # only B (its local 0) speaks in chunk 3; from chunk 2 alone
    assert np.array_equal(follow_neighbours(track, mapping, powerset, every=1), mapping)
    turns = frame_segments(track, followed, 2, 1.0, min_gap=0, min_turn=0)
    assert turns == [[(0.0, 120.0)], [(100.0, 250.0)]]


def test_smooth_runs_fills_short_gaps_and_drops_short_turns():
    assert smooth_runs([(0, 10), (12, 20), (40, 41), (60, 70)], min_gap=3, min_turn=2) == [(0, 20), (60, 70)]


def test_local_speakers_of_one_chunk_go_to_different_speakers():
    local = LocalSpeakers(
        chunk=np.array([0, 0, 1]),
        local=np.array([0, 1, 2]),
        seconds=np.ones(3),
        clean=np.ones(3, bool),
        embeddings=np.zeros((3, 4)),
    )
    scores = np.array([[0.9, 0.1], [0.8, 0.3], [0.2, 0.7]])  # both of chunk 0 prefer speaker 0
    mapping = assign_local_speakers(local, scores, chunks=2, speakers_per_chunk=3)
    assert mapping.tolist() == [[0, 1, -1], [-1, -1, 1]]


# --------------------------------------------------------------------------- model file


def test_saved_model_loads_with_the_same_outputs(tmp_path):
    torch.manual_seed(0)
    model = SegmentationNet(tiny_config()).eval()
    path = save_segmentation(model, tmp_path / "seg.pt")
    loaded = load_segmentation(path)
    wave = torch.randn(2, 16000)
    with torch.inference_mode():
        assert torch.equal(model(wave), loaded(wave))
        assert torch.allclose(model(wave), loaded.for_inference()(wave), atol=1e-4)


def test_broken_and_foreign_model_files_are_refused(tmp_path):
    import redimnet

    model = SegmentationNet(tiny_config())
    with pytest.raises(CheckpointError, match="not found"):
        load_segmentation(tmp_path / "missing.pt")
    embedding = redimnet.ReDimNet(**TINY_MODEL)
    redimnet.save_checkpoint(embedding, tmp_path / "embedding.pt")
    with pytest.raises(CheckpointError, match="not a segmentation model.*embedding checkpoint"):
        load_segmentation(tmp_path / "embedding.pt")
    content = {"format": "redimnet-segmentation", "version": 1, "config": model.config.to_dict()}
    state = model.state_dict()
    state["classifier.weight"] = torch.zeros(3, 3)
    torch.save({**content, "state_dict": state}, tmp_path / "shape.pt")
    with pytest.raises(CheckpointError, match="classifier.weight"):
        load_segmentation(tmp_path / "shape.pt")
    state = model.state_dict()
    state["classifier.bias"] = torch.full_like(state["classifier.bias"], float("nan"))
    torch.save({**content, "state_dict": state}, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match="infinite or NaN"):
        load_segmentation(tmp_path / "nan.pt")
    torch.save({**content, "config": {**content["config"], "lstm_hidden": -1}, "state_dict": state}, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="lstm_hidden"):
        load_segmentation(tmp_path / "c.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CheckpointError):
        load_segmentation(tmp_path / "text.pt")
