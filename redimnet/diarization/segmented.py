"""Diarization with a segmentation network: overlapped speech gets both speakers.

Stages (data flows one way)::

    audio blocks -> chunks -> segmentation network (batched) -> local speaker activity per chunk
                 -> each local speaker's clean (single-speaker) audio -> embeddings (batched)
                 -> clustering -> local speakers assigned to distinct global speakers, chunk by chunk
                 -> per frame: number of speakers and each speaker's score, aggregated over the
                    chunks covering it -> the ``count`` best speakers -> segments (they may overlap)

1. **Chunks.** The recording is cut into chunks of the network's ``chunk_seconds`` every
   ``step`` seconds (half a chunk by default), the last one ending at the recording's end (a
   recording shorter than a chunk is one shorter chunk).  It is read once, block by block;
   only the chunks waiting for the network are in memory.
2. **Segmentation.** For every frame of a chunk the network gives the powerset class (who of
   its ``local_speakers`` speak; within the chunk a frame is overlapped only where the classes
   of two or more speakers together reach ``overlap_threshold``, see :meth:`Powerset.decide
   <redimnet.diarization.powerset.Powerset.decide>`), each local speaker's probability of speaking
   and the probability that two or more speak.  Only these are kept (9 bytes per frame of each
   chunk: 33 MB for ten hours at the default step).
3. **Embeddings.** For each local speaker of each chunk, the frames where it speaks alone are
   cut out of the chunk and joined; if they last at least ``min_clean`` seconds they are
   embedded, otherwise the frames where it speaks at all (overlap included) if those last at
   least ``min_clean``; otherwise the local speaker gets no embedding.  Lengths are rounded
   down to 0.25 s so that equal lengths share a batch.
4. **Clustering** (any :class:`~redimnet.diarization.clustering.Clustering`) of the embeddings
   of at least ``cluster_seconds`` of speech (all of them when those are too few); then every
   chunk's embedded local speakers are assigned to the clusters by their cosine similarity to
   the cluster centroids, two local speakers of one chunk never to the same cluster (Hungarian
   algorithm).  A local speaker without an embedding, or left over, is dropped.
5. **Reconstruction.** Each output frame (one network frame, 20 ms for the shipped recipe)
   gets the number of speakers: the frame is overlapped (two or more) where the mean over the
   chunks covering it of the probability that two or more speak (weighted by a Hann window over
   the chunk, so a chunk's centre counts more than its edges) reaches ``overlap_threshold``
   (the chunks' votes are pooled before the decision, not the decisions); otherwise it has one
   speaker or none, from the same weighted mean of the number active in each chunk, rounded.
   Overlaps shorter than ``min_overlap`` are lowered to one speaker.  Every global speaker gets
   a score, the same weighted mean of the
   probabilities of the local speakers assigned to it.  The frame goes to the ``count``
   best-scoring speakers (those with a positive score).  Frames are processed a block at a
   time, so memory does not grow with the recording beyond the chunk outputs.  Each speaker's
   pauses shorter than ``min_gap`` are filled and turns shorter than ``min_turn`` dropped.

Speech regions (count >= 1) and overlap regions (count >= 2) come out of the same counts:
:func:`speech_and_overlap` gives them without any embedding (``redimnet vad --overlap``).

The other design (``Diarizer(speaker_embeddings="windows")``) replaces steps 3-5 for who speaks: the
speech regions are labelled one speaker at a time by the embedding-only pipeline's windows
(:class:`~redimnet.diarization.diarizer.Diarizer`), those labels are read per frame
(:func:`frame_labels`), every chunk's local speakers are matched to them by the frames they share
(:func:`map_by_agreement`), and frames counted as overlapped go to two of them
(:func:`overlap_speakers`).
"""

import time
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .._utils.validation import at_least, within
from ..audio import TARGET_SAMPLE_RATE, SignalLevel
from ..audio.stream import AudioSource, spans_of_blocks
from ..errors import InvalidArgumentError
from .segmentation import SegmentationNet, load_segmentation
from .segments import Segment
from .vad import VoiceActivityDetector

BLOCK_FRAMES = 4096  # output frames reconstructed at a time
LENGTH_QUANTUM = 4000  # samples: clean audio is cut down to a multiple of 0.25 s (equal lengths batch together)
# the overlap decision, chosen on the tuning conversations of benchmarks/segmentation.py (docs/diarization.md)
DEFAULT_OVERLAP_THRESHOLD = 0.35
DEFAULT_MIN_OVERLAP = 0.75


@dataclass
class Chunk:
    """One chunk's network output: ``classes`` ``[frames]`` (powerset class of each frame),
    ``activity`` ``[frames, local speakers]`` (each local speaker's probability of speaking) and
    ``overlap`` ``[frames]`` (the probability that two or more speak; None: 1 where the class has
    two or more speakers, else 0)."""

    index: int
    start: int  # first sample
    audio: np.ndarray
    classes: np.ndarray
    activity: np.ndarray
    overlap: Optional[np.ndarray] = None


def chunk_starts(samples: int, chunk: int, step: int, hop: int) -> np.ndarray:
    """First samples of the chunks of a recording of ``samples`` samples (see the module documentation)."""
    if samples <= chunk:
        return np.zeros(1 if samples >= hop else 0, dtype=np.int64)
    last = (samples - chunk) // hop * hop
    starts = list(range(0, last + 1, step))
    if starts[-1] != last:
        starts.append(last)
    return np.asarray(starts, dtype=np.int64)


def make_segmenter(segmentation, step: Optional[float] = None, **options) -> "Segmenter":
    """A :class:`Segmenter` from a segmenter, a :class:`SegmentationNet` or the path of a saved network
    (``options``: the other arguments of :class:`Segmenter`)."""
    if isinstance(segmentation, Segmenter):
        return segmentation
    if not isinstance(segmentation, SegmentationNet):
        segmentation = load_segmentation(segmentation)
    return Segmenter(segmentation, step=step, **options)


class Segmenter:
    """Runs a :class:`~redimnet.diarization.segmentation.SegmentationNet` over a recording, chunk by chunk.

    ``step``: seconds between chunk starts (default: half a chunk; rounded to whole frames).
    ``batch_size``: chunks per network call.
    ``overlap_threshold``: a frame is overlapped only where the network gives the classes of two
    or more speakers together at least this probability, averaged over the chunks covering the
    frame (0 to 1; None: where such a class is the most probable one in chunks of at least half
    the weight).
    ``min_overlap``: overlapped speech shorter than this (seconds) counts as one speaker.
    Both defaults were chosen on tuning conversations for the segmentation network shipped with the
    tests (docs/diarization.md); another network may want its own.
    """

    def __init__(
        self,
        model: SegmentationNet,
        step: Optional[float] = None,
        batch_size: int = 16,
        overlap_threshold: Optional[float] = DEFAULT_OVERLAP_THRESHOLD,
        min_overlap: float = DEFAULT_MIN_OVERLAP,
    ):
        config = model.config
        self.model = model.eval()
        self.config = config
        self.powerset = config.powerset()
        self.hop = config.hop
        self.chunk = config.chunk_samples
        step_seconds = config.chunk_seconds / 2 if step is None else float(step)
        if not 0 < step_seconds <= config.chunk_seconds:
            raise InvalidArgumentError(
                f"the segmentation step must be above 0 and at most the chunk ({config.chunk_seconds} s), "
                f"got {step_seconds}"
            )
        self.step = max(1, int(round(step_seconds * TARGET_SAMPLE_RATE / self.hop))) * self.hop
        self.batch_size = max(1, int(batch_size))
        if overlap_threshold is not None:
            within("overlap_threshold", overlap_threshold, 0.0, 1.0)
        at_least("min_overlap", min_overlap, 0.0, " s")
        self.overlap_threshold = None if overlap_threshold is None else float(overlap_threshold)
        self.min_overlap = float(min_overlap)
        self.network = model.for_inference()

    def track(self, samples: int) -> "ChunkTrack":
        """An empty :class:`ChunkTrack` for a recording of ``samples`` samples."""
        min_overlap = int(round(self.min_overlap * TARGET_SAMPLE_RATE / self.hop))
        level = 0.5 if self.overlap_threshold is None else self.overlap_threshold
        return ChunkTrack(samples // self.hop, self.hop, self.powerset.sizes, min_overlap, level)

    @property
    def frame_seconds(self) -> float:
        return self.hop / TARGET_SAMPLE_RATE

    def predict(self, chunks: np.ndarray) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        """Classes ``[N, frames]`` (uint8), activity ``[N, frames, speakers]`` and overlap ``[N, frames]``
        (float16; None without ``overlap_threshold``: see :class:`Chunk`) of equal-length chunks."""
        with torch.inference_mode():
            log_probs = self.network(torch.from_numpy(np.ascontiguousarray(chunks, dtype=np.float32)))
        probabilities = log_probs.exp().numpy()
        classes = self.powerset.decide(probabilities, self.overlap_threshold).astype(np.uint8)
        overlap = None
        if self.overlap_threshold is not None:
            overlap = self.powerset.overlap_probability(probabilities).astype(np.float16)
        return classes, self.powerset.marginals(probabilities).astype(np.float16), overlap

    def chunks(self, source: AudioSource, timings: Optional[Dict[str, float]] = None) -> Iterator[Chunk]:
        """The chunks of ``source`` with the network's output, in order (one pass over its blocks)."""
        starts = chunk_starts(source.samples, self.chunk, self.step, self.hop)
        if not len(starts):
            return
        length = min(self.chunk, source.samples) // self.hop * self.hop
        timings = timings if timings is not None else {}
        blocks = iter(source.blocks())
        pending: List[Tuple[int, int, np.ndarray]] = []
        network = 0.0

        def flush() -> Iterator[Chunk]:
            nonlocal network
            clock = time.perf_counter()
            classes, activity, overlap = self.predict(np.stack([audio for _, _, audio in pending]))
            network += time.perf_counter() - clock
            for row, (index, start, audio) in enumerate(pending):
                overlap_row = None if overlap is None else overlap[row]
                yield Chunk(index, start, audio, classes[row], activity[row], overlap_row)
            pending.clear()

        spans = spans_of_blocks(blocks, starts.tolist(), [length] * len(starts))
        for index, (start, audio) in enumerate(zip(starts.tolist(), spans)):
            if len(audio) < length:  # the file was shorter than its header said
                audio = np.pad(audio, (0, length - len(audio)))
            pending.append((index, start, audio.copy()))
            if len(pending) >= self.batch_size:
                yield from flush()
        if pending:
            yield from flush()
        for _ in blocks:  # decode the rest, to report damage at the end of the file
            pass
        timings["segmentation"] = timings.get("segmentation", 0.0) + network


@dataclass
class ChunkTrack:
    """What the reconstruction keeps of every chunk: its first frame, classes, activity and overlap."""

    frames: int  # output frames of the recording
    hop: int
    sizes: np.ndarray  # speakers in each powerset class
    min_overlap: int = 0  # frames: shorter overlaps count as one speaker (see counts())
    overlap_level: float = 0.5  # a frame is overlapped where the chunks' mean overlap reaches it
    starts: List[int] = field(default_factory=list)
    classes: List[np.ndarray] = field(default_factory=list)
    activity: List[np.ndarray] = field(default_factory=list)
    overlap: List[np.ndarray] = field(default_factory=list)

    def add(self, chunk: Chunk) -> None:
        self.starts.append(chunk.start // self.hop)
        self.classes.append(chunk.classes)
        self.activity.append(chunk.activity)
        overlap = chunk.overlap if chunk.overlap is not None else self.sizes[chunk.classes] >= 2
        self.overlap.append(np.asarray(overlap, dtype=np.float16))

    def __len__(self) -> int:
        return len(self.starts)

    def blocks(
        self, mapping: Optional[np.ndarray] = None, speakers: int = 0
    ) -> Iterator[Tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """``(first frame, count [n], overlap [n], scores [n, speakers])`` over the recording,
        ``BLOCK_FRAMES`` frames at a time.

        ``count``: the weighted mean number of active speakers; ``overlap``: the weighted mean
        probability that two or more speak; ``scores``: each global speaker's weighted mean activity,
        from the local speakers ``mapping[chunk, local]`` assigns to it (-1: none).
        """
        starts = np.asarray(self.starts, dtype=np.int64)
        lengths = np.asarray([len(c) for c in self.classes], dtype=np.int64)
        ends = starts + lengths
        windows: Dict[int, np.ndarray] = {}
        for first in range(0, self.frames, BLOCK_FRAMES):
            last = min(self.frames, first + BLOCK_FRAMES)
            count = np.zeros(last - first)
            overlap = np.zeros(last - first)
            weights = np.zeros(last - first)
            scores = np.zeros((last - first, speakers))
            lo = int(np.searchsorted(ends, first, "right"))
            hi = int(np.searchsorted(starts, last, "left"))
            for c in range(lo, hi):
                a, b = max(first, int(starts[c])), min(last, int(ends[c]))
                if b <= a:
                    continue
                size = int(lengths[c])
                if size not in windows:
                    windows[size] = np.sin(np.pi * (np.arange(size) + 0.5) / size) ** 2 + 1e-3
                weight = windows[size][a - starts[c] : b - starts[c]]
                weights[a - first : b - first] += weight
                count[a - first : b - first] += weight * self.sizes[self.classes[c][a - starts[c] : b - starts[c]]]
                overlap[a - first : b - first] += weight * self.overlap[c][a - starts[c] : b - starts[c]]
                if mapping is not None:
                    for local, speaker in enumerate(mapping[c]):
                        if speaker >= 0:
                            activity = self.activity[c][a - starts[c] : b - starts[c], local].astype(np.float64)
                            scores[a - first : b - first, speaker] += weight * activity
            covered = weights > 0
            count[covered] /= weights[covered]
            overlap[covered] /= weights[covered]
            scores[covered] /= weights[covered][:, None]
            yield first, count, overlap, scores

    def counts(self) -> np.ndarray:
        """Speakers in each frame ``[frames]`` (uint8): two or more where the weighted mean overlap
        reaches ``overlap_level`` (the weighted mean number of active speakers rounded, at least 2),
        elsewhere that rounded number, at most 1; each run of two or more shorter than
        ``min_overlap`` frames lowered to one."""
        counts = np.zeros(self.frames, dtype=np.uint8)
        for first, count, overlap, _ in self.blocks():
            rounded = np.minimum(np.floor(count + 0.5), 255)
            over = overlap >= self.overlap_level
            counts[first : first + len(count)] = np.where(over, np.maximum(rounded, 2), np.minimum(rounded, 1))
        for a, b in _runs(counts >= 2):
            if b - a < self.min_overlap:
                counts[a:b] = 1
        return counts


def _runs(active: np.ndarray) -> List[Tuple[int, int]]:
    """``(start, end)`` index pairs of the runs of True in a boolean vector."""
    padded = np.concatenate([[False], active, [False]]).astype(np.int8)
    changes = np.flatnonzero(np.diff(padded))
    return list(zip(changes[0::2].tolist(), changes[1::2].tolist()))


class _RunJoiner:
    """Runs of True per column of consecutive boolean blocks, joined across block edges."""

    def __init__(self, columns: int):
        self.open: List[Optional[int]] = [None] * columns
        self.runs: List[List[Tuple[int, int]]] = [[] for _ in range(columns)]

    def add(self, first: int, active: np.ndarray) -> None:
        length = len(active)
        for column in range(active.shape[1]):
            values = active[:, column]
            start = self.open[column]
            if start is not None and (length == 0 or not values[0]):  # the open run ended at the block edge
                self.runs[column].append((start, first))
                start = None
            for a, b in _runs(values):
                a, b = a + first, b + first
                if a == first and start is not None:
                    a = start
                start = None
                if b == first + length:
                    start = a  # may go on in the next block
                else:
                    self.runs[column].append((a, b))
            self.open[column] = start

    def finish(self, end: int) -> List[List[Tuple[int, int]]]:
        for column, start in enumerate(self.open):
            if start is not None:
                self.runs[column].append((start, end))
                self.open[column] = None
        return self.runs


def smooth_runs(runs: Sequence[Tuple[int, int]], min_gap: int, min_turn: int) -> List[Tuple[int, int]]:
    """Runs with gaps shorter than ``min_gap`` frames filled, then runs shorter than ``min_turn`` dropped."""
    joined: List[List[int]] = []
    for a, b in runs:
        if joined and a - joined[-1][1] < min_gap:
            joined[-1][1] = b
        else:
            joined.append([a, b])
    return [(a, b) for a, b in joined if b - a >= min_turn]


def speech_and_overlap(
    track: ChunkTrack,
    frame_seconds: float,
    min_gap: float = 0.1,
    min_turn: float = 0.1,
    overlap_gap: float = 0.1,
    overlap_turn: float = 0.1,
) -> Tuple[List[Tuple[float, float]], List[Tuple[float, float]]]:
    """Speech regions (at least one speaker) and overlap regions (at least two), in seconds; gaps
    shorter than ``min_gap`` are filled and regions shorter than ``min_turn`` dropped (``overlap_gap``
    and ``overlap_turn`` for overlap regions)."""
    counts = track.counts()
    speech, overlap = (
        [
            (a * frame_seconds, b * frame_seconds)
            for a, b in smooth_runs(
                _runs(counts >= least), int(round(gap / frame_seconds)), int(round(turn / frame_seconds))
            )
        ]
        for least, gap, turn in ((1, min_gap, min_turn), (2, overlap_gap, overlap_turn))
    )
    return speech, overlap


def frame_segments(
    track: ChunkTrack,
    mapping: np.ndarray,
    speakers: int,
    frame_seconds: float,
    min_gap: float = 0.1,
    min_turn: float = 0.1,
) -> List[List[Tuple[float, float]]]:
    """Each global speaker's turns (seconds), from the per-frame count and scores (see the module documentation)."""
    joiner = _RunJoiner(speakers)
    counts = track.counts()
    for first, _, _, scores in track.blocks(mapping, speakers):
        wanted = np.minimum(counts[first : first + len(scores)], speakers).astype(np.int64)
        order = np.argsort(-scores, axis=1, kind="stable")
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(speakers)[None, :].repeat(len(order), 0), axis=1)
        active = (rank < wanted[:, None]) & (scores > 0)
        joiner.add(first, active)
    gap, turn = int(round(min_gap / frame_seconds)), int(round(min_turn / frame_seconds))
    return [
        [(a * frame_seconds, b * frame_seconds) for a, b in smooth_runs(runs, gap, turn)]
        for runs in joiner.finish(track.frames)
    ]


def frame_labels(segments: Sequence[Segment], frames: int, frame_seconds: float) -> np.ndarray:
    """``[frames]`` (int32): the integer label of the segment holding each frame's centre (-1: none)."""
    labels = np.full(frames, -1, dtype=np.int32)
    for segment in segments:
        a = max(0, int(np.ceil(segment.start / frame_seconds - 0.5)))
        b = min(frames, int(np.ceil(segment.end / frame_seconds - 0.5)))
        labels[a:b] = int(segment.label)
    return labels


def map_by_agreement(track: ChunkTrack, labels: np.ndarray, powerset, speakers: int) -> np.ndarray:
    """``[chunks, local speakers]``: the global speaker of every local speaker (-1: none) from frame labels.

    Each local speaker of a chunk goes to the global speaker ``labels`` give most of the frames where it
    speaks, two local speakers of one chunk never to the same one (Hungarian algorithm); a local
    speaker sharing no frame with any labelled speaker gets none.  No embedding is needed.
    """
    from scipy.optimize import linear_sum_assignment

    mapping = np.full((len(track), powerset.speakers), -1, dtype=np.int64)
    if speakers <= 0:
        return mapping
    for c, (start, classes) in enumerate(zip(track.starts, track.classes)):
        here = labels[start : start + len(classes)]
        active = powerset.mapping[classes[: len(here)]]  # [frames, local speakers]
        known = here >= 0
        votes = active[known].T @ np.eye(speakers, dtype=np.float32)[here[known]]  # [local, global]
        for k, speaker in zip(*linear_sum_assignment(votes, maximize=True)):
            if votes[k, speaker] > 0:
                mapping[c, k] = speaker
    return mapping


def nearest_other(labels: np.ndarray) -> np.ndarray:
    """``[frames]``: for each labelled frame, the label of the nearest frame (before or after) labelled with
    another speaker, unlabelled frames skipped (-1: no other speaker, or an unlabelled frame)."""
    other = np.full(len(labels), -1, dtype=np.int32)
    labelled = np.flatnonzero(labels >= 0)
    breaks = np.flatnonzero(np.diff(labels[labelled])) + 1
    bounds = np.r_[0, breaks, len(labelled)]  # runs of one label in the labelled frames
    if len(bounds) <= 2:
        return other
    firsts, lasts = labelled[bounds[:-1]], labelled[bounds[1:] - 1]
    values = labels[firsts]
    for i in range(len(values)):
        frames = labelled[bounds[i] : bounds[i + 1]]
        before = frames - lasts[i - 1] if i > 0 else np.full(len(frames), np.inf)
        after = firsts[i + 1] - frames if i + 1 < len(values) else np.full(len(frames), np.inf)
        other[frames] = np.where(before <= after, values[i - 1] if i > 0 else -1, values[(i + 1) % len(values)])
    return other


def overlap_speakers(
    track: ChunkTrack,
    labels: np.ndarray,
    mapping: np.ndarray,
    speakers: int,
    frame_seconds: float,
    min_gap: float = 0.1,
    min_turn: float = 0.1,
) -> Tuple[List[List[Tuple[float, float]]], List[List[Tuple[float, float]]]]:
    """The speakers of overlapped frames: each global speaker's turns to add and to remove (seconds).

    ``labels``: the one speaker each frame already has (:func:`frame_labels`).  Where the segmentation
    counts two or more speakers, the frame goes to the two best-scoring speakers of the local speakers
    ``mapping`` assigns (their probabilities averaged as in :func:`frame_segments`); a place left (no
    other speaker scores) goes to the frame's own speaker, then to the nearest other speaker in time
    (:func:`nearest_other`).  The frame's own speaker is removed there when neither place is its.
    """
    over = track.counts() >= 2
    pair = np.full((track.frames, 2), -1, dtype=np.int32)
    for first, _, _, scores in track.blocks(mapping, speakers):
        n = len(scores)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :2]
        best = np.take_along_axis(scores, order, axis=1)
        pair[first : first + n] = np.where((best > 0) & over[first : first + n, None], order, -1)
    own = labels  # the frame's own speaker
    # a missing first place takes the frame's own speaker
    fill = over & (pair[:, 0] < 0)
    pair[fill, 0] = own[fill]
    # a missing second place: the frame's own speaker when it is not the first, else the nearest other
    fill = over & (pair[:, 1] < 0) & (own >= 0) & (own != pair[:, 0])
    pair[fill, 1] = own[fill]
    fill = over & (pair[:, 1] < 0)
    if fill.any():
        pair[fill, 1] = nearest_other(labels)[fill]
        pair[fill & (pair[:, 1] == pair[:, 0]), 1] = -1
    gap, turn = int(round(min_gap / frame_seconds)), int(round(min_turn / frame_seconds))
    added, removed = [], []
    for speaker in range(speakers):
        mine = over & ((pair[:, 0] == speaker) | (pair[:, 1] == speaker))
        added.append([(a * frame_seconds, b * frame_seconds) for a, b in smooth_runs(_runs(mine), gap, turn)])
        lost = over & (own == speaker) & ~mine
        removed.append([(a * frame_seconds, b * frame_seconds) for a, b in _runs(lost)])
    return added, removed


def subtract_regions(
    regions: Sequence[Tuple[float, float]], cuts: Sequence[Tuple[float, float]]
) -> List[Tuple[float, float]]:
    """``regions`` less ``cuts`` (both sorted, non-overlapping lists of ``(start, end)``)."""
    result: List[Tuple[float, float]] = []
    k = 0
    for start, end in regions:
        while k < len(cuts) and cuts[k][1] <= start:
            k += 1
        j = k
        while j < len(cuts) and cuts[j][0] < end:
            if cuts[j][0] > start:
                result.append((start, cuts[j][0]))
            start = max(start, cuts[j][1])
            j += 1
        if end > start:
            result.append((start, end))
    return result


@dataclass
class LocalSpeakers:
    """The embedded local speakers: ``chunk`` and ``local`` number of each, the seconds embedded,
    whether the audio was clean (single-speaker), and the embeddings ``[n, dim]``."""

    chunk: np.ndarray
    local: np.ndarray
    seconds: np.ndarray
    clean: np.ndarray
    embeddings: np.ndarray


def clean_audio(chunk: Chunk, speaker: int, powerset, hop: int, min_samples: int) -> Tuple[Optional[np.ndarray], bool]:
    """The audio of ``chunk`` where local ``speaker`` speaks alone (``clean`` True), else where it
    speaks at all, cut to a multiple of 0.25 s; None when shorter than ``min_samples``."""
    alone = chunk.classes == powerset.class_of_mask[1 << speaker]
    for frames, clean in ((alone, True), (powerset.mapping[chunk.classes, speaker] > 0, False)):
        count = int(frames.sum())
        if count * hop < min_samples:
            continue
        mask = np.repeat(frames, hop)
        audio = chunk.audio[: len(mask)][mask[: len(chunk.audio)]]
        keep = max(min_samples, len(audio) // LENGTH_QUANTUM * LENGTH_QUANTUM)
        audio = audio[:keep]
        if SignalLevel.of(audio).silent:
            return None, clean
        return audio, clean
    return None, False


def embed_local_speakers(
    segmenter: Segmenter,
    embedder,
    source: AudioSource,
    track: ChunkTrack,
    min_clean: float,
    batch: int,
    timings: Dict[str, float],
    every: int = 1,
) -> LocalSpeakers:
    """One pass over ``source``: every chunk's segmentation (kept in ``track``) and the embeddings of the
    local speakers of every ``every``-th chunk (the first, then every ``every``)."""
    min_samples = max(int(round(min_clean * TARGET_SAMPLE_RATE)), embedder.min_samples)
    owners: List[Tuple[int, int, float, bool]] = []
    pieces: List[np.ndarray] = []
    rows: List[np.ndarray] = []
    network = 0.0

    def flush():
        nonlocal network
        clock = time.perf_counter()
        rows.append(embedder.embed_prepared(pieces))
        network += time.perf_counter() - clock
        pieces.clear()

    for chunk in segmenter.chunks(source, timings):
        track.add(chunk)
        if chunk.index % every:
            continue
        for speaker in range(segmenter.config.local_speakers):
            audio, clean = clean_audio(chunk, speaker, segmenter.powerset, segmenter.hop, min_samples)
            if audio is None:
                continue
            owners.append((chunk.index, speaker, len(audio) / TARGET_SAMPLE_RATE, clean))
            pieces.append(audio)
            if len(pieces) >= batch:
                flush()
    if pieces:
        flush()
    timings["embed"] = network
    embeddings = np.concatenate(rows) if rows else np.zeros((0, embedder.embed_dim or 1), dtype=np.float32)
    if not np.all(np.isfinite(embeddings)):
        raise InvalidArgumentError(
            f"{source.name}: the model produced non-finite embeddings (sample values far outside [-1, 1]?); "
            "check the audio's level"
        )
    columns = list(zip(*owners)) if owners else [(), (), (), ()]
    return LocalSpeakers(
        np.asarray(columns[0], dtype=np.int64),
        np.asarray(columns[1], dtype=np.int64),
        np.asarray(columns[2], dtype=np.float64),
        np.asarray(columns[3], dtype=bool),
        embeddings,
    )


def _agreement(track: ChunkTrack, powerset, c: int) -> np.ndarray:
    """``[speakers, speakers]``: how far each local speaker of chunk ``c`` and each of chunk ``c + 1``
    speak in the same frames of the two (the frames where both speak over those where either does)."""
    first, second = track.starts[c], track.starts[c + 1]
    shared = first + len(track.classes[c]) - second
    if shared <= 0:
        return np.zeros((powerset.speakers, powerset.speakers))
    a = powerset.mapping[track.classes[c][second - first :]] > 0  # [shared, speakers]
    b = powerset.mapping[track.classes[c + 1][:shared]] > 0
    both = (a[:, :, None] & b[:, None, :]).sum(0)
    either = (a[:, :, None] | b[:, None, :]).sum(0)
    return np.where(either > 0, both / np.maximum(either, 1), 0.0)


def neighbour_links(track: ChunkTrack, local: LocalSpeakers, powerset, min_agreement: float = 0.5) -> np.ndarray:
    """``[pairs, 2]`` rows of ``local`` that are the same voice in consecutive chunks.

    Consecutive chunks share frames (a chunk every half chunk: half of each); a local speaker of
    one and a local speaker of the next whose activity over the shared frames agrees
    (:func:`_agreement`) by at least ``min_agreement`` are linked, one to one (Hungarian
    algorithm on the agreement).
    """
    from scipy.optimize import linear_sum_assignment

    row_of = {(int(c), int(k)): row for row, (c, k) in enumerate(zip(local.chunk, local.local))}
    links = []
    for c in range(len(track) - 1):
        agreement = _agreement(track, powerset, c)
        for k, j in zip(*linear_sum_assignment(agreement, maximize=True)):
            if agreement[k, j] >= min_agreement and (c, k) in row_of and (c + 1, j) in row_of:
                links.append((row_of[(c, k)], row_of[(c + 1, j)]))
    return np.asarray(links, dtype=np.int64).reshape(-1, 2)


def follow_neighbours(
    track: ChunkTrack, mapping: np.ndarray, powerset, every: int, min_agreement: float = 0.5
) -> np.ndarray:
    """``mapping`` with the local speakers of the chunks that were not embedded (those whose index is
    not a multiple of ``every``) assigned too: each takes the global speaker of the local speaker of
    the chunk before or after it that speaks in the same frames (agreement summed over both, at
    least ``min_agreement``), never two of one chunk the same one (Hungarian algorithm)."""
    from scipy.optimize import linear_sum_assignment

    mapping = mapping.copy()
    speakers = mapping.max() + 1 if mapping.size else 0
    if every <= 1 or speakers <= 0:
        return mapping
    for c in range(len(track)):
        if c % every == 0:
            continue
        votes = np.zeros((powerset.speakers, speakers))
        for neighbour in (c - 1, c + 1):
            if not (0 <= neighbour < len(track) and neighbour % every == 0):
                continue
            # [locals of c, locals of the neighbour]
            shared = _agreement(track, powerset, c - 1).T if neighbour < c else _agreement(track, powerset, c)
            for j, speaker in enumerate(mapping[neighbour]):
                if speaker >= 0:
                    votes[:, speaker] += shared[:, j]
        for k, speaker in zip(*linear_sum_assignment(votes, maximize=True)):
            if votes[k, speaker] >= min_agreement:
                mapping[c, k] = speaker
    return mapping


def with_neighbours(points: np.ndarray, links: np.ndarray) -> np.ndarray:
    """Each unit row of ``points`` plus the rows it is linked to (:func:`neighbour_links`), normalised:
    a local speaker is clustered with the context of the same voice in the chunks beside it."""
    context = points.copy()
    if len(links):
        np.add.at(context, links[:, 0], points[links[:, 1]])
        np.add.at(context, links[:, 1], points[links[:, 0]])
    lengths = np.linalg.norm(context, axis=1, keepdims=True)
    return np.where(lengths > 1e-6, context / np.maximum(lengths, 1e-6), points)


def assign_local_speakers(local: LocalSpeakers, scores: np.ndarray, chunks: int, speakers_per_chunk: int) -> np.ndarray:
    """``[chunks, speakers_per_chunk]``: the global speaker of every local speaker (-1: none).

    ``scores`` ``[embedded local speakers, clusters]``: similarity to each cluster; within a
    chunk, local speakers go to distinct clusters, maximising the summed similarity.
    """
    from scipy.optimize import linear_sum_assignment

    mapping = np.full((chunks, speakers_per_chunk), -1, dtype=np.int64)
    order = np.argsort(local.chunk, kind="stable")
    bounds = np.flatnonzero(np.diff(local.chunk[order])) + 1
    for rows in np.split(order, bounds):
        if not len(rows):
            continue
        chosen, clusters = linear_sum_assignment(scores[rows], maximize=True)
        for row, cluster in zip(rows[chosen], clusters):
            mapping[local.chunk[row], local.local[row]] = cluster
    return mapping


def as_segments(turns: Sequence[Sequence[Tuple[float, float]]], names: Sequence[str]) -> List[Segment]:
    """Segments (rounded to milliseconds) of every speaker's turns."""
    return sorted(
        Segment(round(a, 3), round(b, 3), names[speaker]) for speaker, runs in enumerate(turns) for a, b in runs
    )


class SegmentationVAD(VoiceActivityDetector):
    """Speech (and overlapped speech) from a segmentation network instead of a voice activity detector.

    ``segmentation``: as :class:`~redimnet.diarization.diarizer.Diarizer` takes it; ``step``:
    seconds between chunks; pauses shorter than ``min_silence`` are bridged and regions
    shorter than ``min_speech`` dropped.
    """

    name = "segmentation"

    def __init__(self, segmentation, step: Optional[float] = None, min_speech: float = 0.1, min_silence: float = 0.1):
        self.segmenter = make_segmenter(segmentation, step)
        self.min_speech, self.min_silence = float(min_speech), float(min_silence)

    def analyse(self, source: AudioSource) -> Tuple[List[Tuple[float, float]], List[Tuple[float, float]]]:
        """Speech regions and overlap regions (seconds) of ``source``, from one pass over it."""
        segmenter = self.segmenter
        track = segmenter.track(source.samples)
        for chunk in segmenter.chunks(source):
            track.add(chunk)
        return speech_and_overlap(track, segmenter.frame_seconds, self.min_silence, self.min_speech)

    def regions(self, source: AudioSource) -> List[Tuple[float, float]]:
        return self.analyse(source)[0]
