"""The diarization pipeline: who spoke when in one recording.

Stages (data flows one way)::

    audio blocks -> voice activity -> windows over speech -> embeddings (batched)
                 -> clustering -> frame scores -> segments -> names -> RTTM / JSON

The recording is read twice, block by block (once for voice activity, once
for the windows), so memory holds one block of audio, the window
embeddings (768 bytes each for 192 dimensions) and the clustering's working
set, not the recording.

Windows: every speech region is covered by windows of ``window`` seconds
every ``hop`` seconds, the last one ending at the region's end; a region
shorter than one window is one window of its own length.  A window
below the library's silence floor (:func:`redimnet.audio.check_signal_level`:
digital silence inside a speech region, say) carries no speaker and is not
embedded: its time goes to the overlapping neighbours, and a stretch only
such windows cover is left unlabelled; when every window is silent the
recording is treated as one without speech.

Clustering: each window is clustered by its embedding plus its neighbours'
in the same region (:func:`~redimnet.diarization.clustering.with_context`,
``context=True``), so that a voice drifting within a turn stays one speaker.

Segments: after clustering, every window is scored against every
speaker's centroid (cosine similarity); the speech is cut into frames of
``FRAME_STEP`` (0.05 s) and each frame goes to the speaker whose scores,
summed over the windows covering the frame with a Hann weight (largest at a
window's centre), are highest (:meth:`Diarizer.segments_from_scores`).  A
speaker change therefore falls where two neighbouring windows' weighted
scores cross, closer to the less certain one, and a window whose speaker
differs from both neighbours keeps the time around its centre.  Overlapping
speech is not detected: each moment has at most one speaker.
"""

import json
import os
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union, cast

import numpy as np

from .._utils.validation import positive_int
from ..audio.read import TARGET_SAMPLE_RATE, AudioError, SignalLevel
from ..audio.stream import AudioSource, spans_of_blocks
from ..errors import InvalidArgumentError
from .clustering import Clustering, centroids, normalise, with_context
from .methods import make_clustering
from .segmented import (
    ChunkTrack,
    Segmenter,
    as_segments,
    assign_local_speakers,
    embed_local_speakers,
    follow_neighbours,
    frame_labels,
    frame_segments,
    make_segmenter,
    map_by_agreement,
    neighbour_links,
    overlap_speakers,
    speech_and_overlap,
    subtract_regions,
    with_neighbours,
)
from .segments import Segment, format_rttm, merge_regions, speaker_totals
from .vad import VoiceActivityDetector, make_vad

DEFAULT_WINDOW = 1.5
DEFAULT_HOP = 0.75
# with a segmentation network, chosen on the tuning conversations of benchmarks/segmentation.py
DEFAULT_MIN_CLEAN = 1.0
DEFAULT_CLUSTER_SECONDS = 2.0
# with a segmentation network: who speaks comes from windows over its speech, as without one ("windows"), or
# from each local speaker's clean speech ("local"); "auto": windows when the number of speakers is given, local
# when it is estimated (chosen on the tuning conversations of benchmarks/segmentation.py, docs/diarization.md)
SPEAKER_EMBEDDINGS = ("auto", "windows", "local")
DEFAULT_SPEAKER_EMBEDDINGS = "auto"
FRAME_STEP = 0.05  # seconds: the resolution of the output's speaker changes
FRAME_CHUNK = 4096  # frames scored at a time


class Diarization(list):
    """The segments (:class:`Segment`, by start time) of one recording, plus what was measured on the way.

    ``recording`` (the RTTM file id), ``duration`` (s), ``speech`` (VAD
    regions), ``windows`` (count over the speech), ``silent_windows`` (how many
    of those were below the silence floor and not embedded), ``timings`` (seconds per stage),
    ``names`` (cluster label -> enrolled name and score, with ``--speakers-db``), ``speaker_count`` (how the
    number of speakers was decided: the clustering method, whether the count was given, the
    clusters found, whether the count is ``uncertain`` and the method's evidence).
    """

    def __init__(self, segments: Sequence[Segment] = (), recording: str = "recording", duration: float = 0.0):
        super().__init__(sorted(segments))
        self.recording = recording
        self.duration = duration
        self.speech: List[tuple] = []
        self.overlap: Optional[List[tuple]] = None  # overlapped speech, found with a segmentation network only
        self.windows = 0
        self.silent_windows = 0
        self.timings: Dict[str, float] = {}
        self.names: Dict[str, dict] = {}
        self.speaker_count: Dict[str, object] = {}
        self.window_spans: Optional[np.ndarray] = None  # [windows, 2] seconds, with keep_embeddings
        self.window_embeddings: Optional[np.ndarray] = None  # [windows, dim], with keep_embeddings

    @property
    def speakers(self) -> List[str]:
        """Labels, in order of first appearance."""
        return list(dict.fromkeys(s.label for s in self))

    def to_rttm(self) -> str:
        """The segments as RTTM text (see :mod:`redimnet.diarization.segments`)."""
        return format_rttm(self, self.recording)

    def to_dict(self) -> dict:
        """Segments, per-speaker totals and timings, for JSON."""
        totals = speaker_totals(self)
        return {
            "recording": self.recording,
            "duration": round(self.duration, 3),
            "speech": round(sum(e - s for s, e in self.speech), 3),
            **({"overlap": round(sum(e - s for s, e in self.overlap), 3)} if self.overlap is not None else {}),
            "windows": self.windows,
            "silent_windows": self.silent_windows,
            "speakers": [
                {
                    "label": label,
                    "seconds": round(seconds, 3),
                    "segments": sum(1 for s in self if s.label == label),
                    **({"match": self.names[label]} if label in self.names else {}),
                }
                for label, seconds in totals.items()
            ],
            "segments": [{"start": s.start, "end": s.end, "speaker": s.label} for s in self],
            **({"speaker_count": self.speaker_count} if self.speaker_count else {}),
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


@dataclass
class _Windows:
    starts: np.ndarray  # samples
    lengths: np.ndarray  # samples
    region: np.ndarray  # index of the speech region


def plan_windows(regions: Sequence[tuple], window: float, hop: float, min_samples: int = 1) -> _Windows:
    """Windows (start and length in 16 kHz samples) covering each region (see the module documentation)."""
    rate = TARGET_SAMPLE_RATE
    width, step = int(round(window * rate)), int(round(hop * rate))
    starts, lengths, owner = [], [], []
    for index, (begin, end) in enumerate(regions):
        first, last = int(round(begin * rate)), int(round(end * rate))
        span = last - first
        if span < max(min_samples, 1):
            continue
        if span <= width:
            starts.append(first)
            lengths.append(span)
            owner.append(index)
            continue
        here = list(range(first, last - width + 1, step))
        if here[-1] + width < last:
            here.append(last - width)
        starts += here
        lengths += [width] * len(here)
        owner += [index] * len(here)
    return _Windows(
        np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64), np.asarray(owner, dtype=np.int64)
    )


def keep_windows(regions: Sequence[tuple], windows: _Windows, kept: np.ndarray) -> Tuple[List[tuple], _Windows]:
    """The ``kept`` windows and the speech they cover: each region less the stretches only dropped windows covered.

    Windows overlap, so the time of one dropped window goes to its
    neighbours; a longer dropped stretch splits its region in two (or removes
    it) and is left unlabelled.  Region edges that kept windows reach stay
    exactly where the VAD put them.
    """
    kept = np.asarray(kept, dtype=bool)
    if kept.all():
        return list(regions), windows
    rate = TARGET_SAMPLE_RATE
    starts, lengths, owner = windows.starts[kept], windows.lengths[kept], windows.region[kept]
    new_owner = np.zeros(len(starts), dtype=np.int64)
    new_regions: List[tuple] = []
    for index, (begin, end) in enumerate(regions):
        lo, hi = np.searchsorted(owner, index, "left"), np.searchsorted(owner, index, "right")  # owner is sorted
        if lo == hi:
            continue
        first, last = int(round(begin * rate)), int(round(end * rate))
        spans = np.stack([starts[lo:hi], starts[lo:hi] + lengths[lo:hi]], axis=1)
        for span_start, span_end in merge_regions(spans.tolist()):
            inside = lo + np.flatnonzero((starts[lo:hi] >= span_start) & (starts[lo:hi] < span_end))
            new_owner[inside] = len(new_regions)
            new_regions.append(
                (begin if span_start <= first else span_start / rate, end if span_end >= last else span_end / rate)
            )
    return new_regions, _Windows(starts, lengths, new_owner)


def check_speaker_count(
    name: str, num_speakers: Optional[int], min_speakers: int, windows: int, silent: int = 0
) -> None:
    """Raise :class:`InvalidArgumentError` when more speakers are asked for than there are windows to cluster."""
    wanted = f"{num_speakers} speakers" if num_speakers is not None else f"at least {min_speakers} speakers"
    if 0 < windows < (num_speakers if num_speakers is not None else min_speakers):
        silence = f" ({silent} more were silent)" if silent else ""
        raise InvalidArgumentError(
            f"{name}: {wanted} asked for, but its speech gives only "
            f"{windows} window(s){silence}; give fewer speakers or a shorter --hop"
        )


def _finished(result: Diarization, timings: Dict[str, float], started: float) -> Diarization:
    """``result`` with ``timings`` and the total time since ``started`` recorded."""
    timings["total"] = time.perf_counter() - started
    result.timings = timings
    return result


class _TimedBlocks:
    """Iterate blocks while adding up the time spent decoding them."""

    def __init__(self, blocks):
        self.blocks, self.seconds = iter(blocks), 0.0

    def __iter__(self):
        return self

    def __next__(self):
        started = time.perf_counter()
        try:
            return next(self.blocks)
        finally:
            self.seconds += time.perf_counter() - started


class Diarizer:
    """Speaker diarization with a ReDimNet :class:`redimnet.Embedder`.

    >>> diarizer = redimnet.Diarizer(redimnet.Embedder(model))          # doctest: +SKIP
    >>> segments = diarizer.diarize("meeting.wav", max_speakers=6)      # doctest: +SKIP
    >>> print(segments.to_rttm())                                       # doctest: +SKIP

    Args:
        embedder: the :class:`redimnet.Embedder` that embeds the windows.
        vad: a :class:`~redimnet.diarization.vad.VoiceActivityDetector` or a name
            (``"auto"``: Silero when installed, else energy; ``"silero"``, ``"energy"``).
        clustering: a :class:`~redimnet.diarization.clustering.Clustering` or ``"spectral"`` / ``"ahc"``.
        window: length of the embedded windows, seconds.
        hop: step between windows, seconds.
        batch_windows: windows handed to the embedder at a time.
        context: cluster each window together with its neighbours in the same speech region
            (see :func:`~redimnet.diarization.clustering.with_context`); the segments still come
            from each window's own embedding.
        speakers_db: an open speaker store, or a SQLite file or ``postgresql://`` URL (optional): clusters
            whose mean embedding scores at least ``name_threshold`` (cosine) against an enrolled
            speaker are named after them.
        name_threshold: see ``speakers_db``.
        keep_embeddings: keep every window's span and the vector the clustering works on in the result
            (``window_spans``, ``window_embeddings``: the normalised embedding, with its context when
            ``context`` is on), e.g. to label them with a reference and fit a back-end.
        segmentation: a segmentation network (:class:`~redimnet.diarization.segmentation.SegmentationNet`,
            a :class:`~redimnet.diarization.segmented.Segmenter`, or the path of a saved one): speech
            and overlapped speech then come from it (``vad`` is unused), the speakers as
            ``speaker_embeddings`` says, and overlapped speech gets both speakers
            (:mod:`redimnet.diarization.segmented`).  None (the default): the embedding-only pipeline above.
        segmentation_step: seconds between segmentation chunks (default: half a chunk).
        min_clean: with ``segmentation``: the least speech (seconds) of a local speaker that is embedded.
        cluster_seconds: with ``segmentation``: local speakers with less embedded speech are not
            clustered, only assigned to the clusters (unless too few have more).
        embed_every: with ``segmentation``: embed the local speakers of every ``embed_every``-th chunk
            only (the first, then every ``embed_every``); the local speakers of the others take the
            speaker of the local speaker beside them that speaks in the same frames.  2 embeds each
            stretch of speech about once instead of about twice (chunks overlap by half).
        speaker_embeddings: with ``segmentation``, where the speakers come from.  ``"windows"``: the
            segmentation gives the speech and the overlapped speech; windows over the speech are embedded,
            clustered and turned into segments as without a segmentation network, and each overlapped frame
            goes to the two best-scoring of the chunk's local speakers (matched to the window speakers by
            the frames they share), a place left to the frame's window speaker, then to the nearest other
            speaker in time.  ``"local"``: the embeddings of each local speaker's clean speech (``min_clean``,
            ``cluster_seconds`` and ``embed_every`` apply to this one only).  ``"auto"`` (the default):
            ``"windows"`` when ``num_speakers`` is given, ``"local"`` when the number is estimated.
    """

    def __init__(
        self,
        embedder,
        vad: Union[str, VoiceActivityDetector] = "auto",
        clustering: Union[str, Clustering] = "spectral",
        window: float = DEFAULT_WINDOW,
        hop: float = DEFAULT_HOP,
        batch_windows: int = 32,
        context: bool = True,
        speakers_db=None,
        name_threshold: float = 0.5,
        keep_embeddings: bool = False,
        segmentation=None,
        segmentation_step: Optional[float] = None,
        min_clean: float = DEFAULT_MIN_CLEAN,
        cluster_seconds: float = DEFAULT_CLUSTER_SECONDS,
        embed_every: int = 1,
        speaker_embeddings: str = DEFAULT_SPEAKER_EMBEDDINGS,
    ):
        if not window > 0 or not 0 < hop <= window:
            raise InvalidArgumentError(f"need window > 0 and 0 < hop <= window, got window={window}, hop={hop}")
        self.embedder = embedder
        self.vad = make_vad(vad) if isinstance(vad, str) else vad
        self.clustering = make_clustering(clustering) if isinstance(clustering, str) else clustering
        self.window, self.hop = float(window), float(hop)
        self.batch_windows = max(1, int(batch_windows))
        self.context = bool(context)
        self.speakers_db = speakers_db
        self.name_threshold = float(name_threshold)
        self.keep_embeddings = bool(keep_embeddings)
        self.segmenter = None if segmentation is None else make_segmenter(segmentation, segmentation_step)
        if not min_clean > 0 or not cluster_seconds >= 0:
            raise InvalidArgumentError(
                f"need min_clean > 0 and cluster_seconds >= 0, got {min_clean}, {cluster_seconds}"
            )
        self.min_clean, self.cluster_seconds = float(min_clean), float(cluster_seconds)
        positive_int("embed_every", embed_every)
        self.embed_every = int(embed_every)
        if speaker_embeddings not in SPEAKER_EMBEDDINGS:
            raise InvalidArgumentError(
                f"speaker_embeddings must be one of {', '.join(SPEAKER_EMBEDDINGS)}, got {speaker_embeddings!r}"
            )
        self.speaker_embeddings = speaker_embeddings

    # --- stages ----------------------------------------------------------------------------------
    def embed_windows(
        self, source: AudioSource, windows: _Windows, timings: Dict[str, float]
    ) -> Tuple[np.ndarray, np.ndarray]:
        """Embeddings ``[kept windows, dim]`` read in one pass over ``source``'s blocks, and ``kept`` ``[windows]``.

        A window below the silence floor (see the module documentation) is
        not embedded; ``kept`` is False for it.
        """
        count = len(windows.starts)
        result = np.zeros((count, self.embedder.embed_dim or 1), dtype=np.float32)
        kept = np.zeros(count, dtype=bool)
        if count == 0:
            return result, kept
        blocks = _TimedBlocks(source.blocks())
        pending: List[int] = []
        network = 0.0

        def flush():
            nonlocal network, result
            started = time.perf_counter()
            try:
                output = self.embedder.embed_prepared([pieces[i] for i in pending])
            except AudioError as error:  # the embedder names the window "waveform": say where it is
                first, last = windows.starts[pending[0]], windows.starts[pending[-1]] + windows.lengths[pending[-1]]
                reason = str(error).removeprefix("waveform: ")
                raise AudioError(
                    f"{source.name}: a window between {first / TARGET_SAMPLE_RATE:.2f} and "
                    f"{last / TARGET_SAMPLE_RATE:.2f} s: {reason}"
                ) from None
            network += time.perf_counter() - started
            if output.shape[1] != result.shape[1]:
                result = np.zeros((count, output.shape[1]), dtype=np.float32)
            result[pending] = output
            pending.clear()
            pieces.clear()

        pieces: Dict[int, np.ndarray] = {}
        for index, piece in enumerate(spans_of_blocks(blocks, windows.starts, windows.lengths)):
            if len(piece) < self.embedder.min_samples:  # the file was shorter than its header said
                piece = np.pad(piece, (0, self.embedder.min_samples - len(piece)))
            if not SignalLevel.of(piece).silent:
                pieces[index] = piece.copy()
                pending.append(index)
                kept[index] = True
            if len(pending) >= self.batch_windows:
                flush()
        if pending:
            flush()
        for _ in blocks:  # the rest of the file is still decoded, to report damage at its end
            pass
        result = result[kept]
        if not np.all(np.isfinite(result)):
            raise InvalidArgumentError(
                f"{source.name}: the model produced non-finite embeddings (sample values "
                "far outside [-1, 1]?); check the audio's level"
            )
        timings["decode"] = timings.get("decode", 0.0) + blocks.seconds
        timings["embed"] = network
        return result, kept

    @staticmethod
    def segments_from_scores(
        regions: Sequence[tuple], windows: _Windows, scores: np.ndarray, names: Sequence[str], step: float = FRAME_STEP
    ) -> List[Segment]:
        """Segments from every window's ``scores`` (``[windows, speakers]``, e.g. cosine similarity to
        each speaker's centroid; speaker ``j`` is called ``names[j]``).

        Each region is cut into frames of ``step`` seconds; a frame's score for a speaker is the sum of
        the scores of the windows covering it, each weighted by a Hann window over its span (1 at its
        centre, 0 at its edges), and the frame goes to the best-scoring speaker.  Between two
        neighbouring windows the speaker therefore changes where their weighted scores cross: near
        the less certain window's centre, not halfway.  Equal neighbours are joined.
        """
        rate = TARGET_SAMPLE_RATE
        scores = np.asarray(scores, dtype=np.float64)
        window_start = windows.starts / rate
        window_end = (windows.starts + windows.lengths) / rate
        first = np.searchsorted(windows.region, np.arange(len(regions) + 1))  # windows are in region order
        segments: List[Segment] = []
        for index, (begin, end) in enumerate(regions):
            lo_member, hi_member = int(first[index]), int(first[index + 1])
            if lo_member == hi_member:
                continue
            frames = max(1, int(np.ceil((end - begin) / step - 0.1)))  # the last frame is 0.1 to 1.1 steps long
            for chunk in range(0, frames, FRAME_CHUNK):  # a long region in pieces: memory stays bounded
                count = min(FRAME_CHUNK, frames - chunk)
                edges = begin + np.arange(chunk, chunk + count + 1) * step
                if chunk + count == frames:
                    edges[-1] = end
                centres = (edges[:-1] + edges[1:]) / 2
                total = np.zeros((count, scores.shape[1]))
                covered = np.zeros(count, dtype=bool)
                # the region's windows that reach into this chunk (their starts and ends are both sorted)
                lo = lo_member + int(np.searchsorted(window_end[lo_member:hi_member], edges[0], "right"))
                hi = lo_member + int(np.searchsorted(window_start[lo_member:hi_member], edges[-1], "left"))
                for member in range(lo, hi):
                    start, length = window_start[member], window_end[member] - window_start[member]
                    a, b = np.searchsorted(centres, [start, start + length])
                    if b <= a:  # a window shorter than a frame weighs on the frame around its centre
                        a = int(np.clip(np.searchsorted(edges, start + length / 2, "right") - 1, 0, count - 1))
                        b = a + 1
                    weight = np.sin(np.pi * np.clip((centres[a:b] - start) / length, 0.0, 1.0)) ** 2 + 1e-6
                    total[a:b] += weight[:, None] * scores[member]
                    covered[a:b] = True
                best = np.argmax(total, axis=1)
                if not covered.all():  # not with plan_windows' windows; a frame without one keeps the one before
                    source = np.maximum.accumulate(np.where(covered, np.arange(count), -1))
                    source[source < 0] = int(np.argmax(covered))
                    best = best[source]
                cuts = np.flatnonzero(np.diff(best)) + 1
                for a, b in zip(np.r_[0, cuts], np.r_[cuts, count]):
                    start, stop, label = float(edges[a]), float(edges[b]), names[int(best[a])]
                    if segments and segments[-1].label == label and abs(segments[-1].end - start) < 1e-9:
                        segments[-1] = Segment(segments[-1].start, stop, label)
                    elif stop > start:
                        segments.append(Segment(start, stop, label))
        return [Segment(round(s.start, 3), round(s.end, 3), s.label) for s in segments]

    def _names(self, embeddings: np.ndarray, labels: np.ndarray) -> Dict[int, tuple]:
        """Cluster -> (name, score) for clusters matching an enrolled speaker (each name used once)."""
        from ..models.fingerprint import model_fingerprint
        from ..speakers.stores import open_store

        database = self.speakers_db
        opened = isinstance(database, (str, os.PathLike))  # a file or URL; else an open store
        if opened:
            database = open_store(database, create=False)
        try:
            fingerprint = model_fingerprint(self.embedder.model)
            means = centroids(normalise(embeddings), labels)
            proposals = []
            for cluster in np.unique(labels):
                name, score = database.identify(means[cluster], top=1, fingerprint=fingerprint)[0]
                if score >= self.name_threshold:
                    proposals.append((score, int(cluster), name))
        finally:
            if opened:
                database.close()
        named: Dict[int, tuple] = {}
        for score, cluster, name in sorted(proposals, reverse=True):
            if all(name != n for n, _ in named.values()):
                named[cluster] = (name, score)
        return named

    # --- the whole pipeline ----------------------------------------------------------------------
    def diarize(
        self,
        source,
        sample_rate: int = TARGET_SAMPLE_RATE,
        num_speakers: Optional[int] = None,
        min_speakers: int = 1,
        max_speakers: Optional[int] = None,
        recording: Optional[str] = None,
    ) -> Diarization:
        """Who speaks when in ``source`` (a path, or a waveform at ``sample_rate``).

        Returns a :class:`Diarization` (a list of :class:`Segment`); empty when
        no speech is found (or all of it is below the silence floor).  Raises :class:`redimnet.AudioError` for
        unreadable audio and :class:`redimnet.InvalidArgumentError` for impossible
        speaker counts.
        """
        started = time.perf_counter()
        if not isinstance(source, AudioSource):
            source = AudioSource(source, sample_rate, channel=getattr(self.embedder, "channel", None), name=recording)
        if self.segmenter is not None:
            return self._diarize_segmented(source, num_speakers, min_speakers, max_speakers, recording, started)
        timings: Dict[str, float] = {}
        blocks_time = time.perf_counter()
        regions = self.vad.regions(source)
        timings["vad"] = time.perf_counter() - blocks_time
        result = Diarization(recording=recording or source.name, duration=source.duration)
        result.speech = list(regions)
        found = self._windows_pipeline(source, regions, result, timings, num_speakers, min_speakers, max_speakers)
        if found is not None:
            self._label(result, *found)
        return _finished(result, timings, started)

    def _windows_pipeline(
        self,
        source: AudioSource,
        regions: Sequence[tuple],
        result: Diarization,
        timings: Dict[str, float],
        num_speakers: Optional[int],
        min_speakers: int,
        max_speakers: Optional[int],
    ) -> Optional[Tuple[List[Segment], np.ndarray, np.ndarray]]:
        """Windows over ``regions`` -> embeddings -> clustering -> segments: the segments (labelled with
        cluster numbers), the embeddings and their cluster labels; None when no window is left."""
        windows = plan_windows(regions, self.window, self.hop, self.embedder.min_samples)
        result.windows = len(windows.starts)
        check_speaker_count(source.name, num_speakers, min_speakers, result.windows)  # before the work
        if result.windows:
            embeddings, kept = self.embed_windows(source, windows, timings)
            result.silent_windows = int(np.count_nonzero(~kept))
            regions, windows = keep_windows(regions, windows, kept)
        if len(windows.starts) == 0:
            return None
        check_speaker_count(source.name, num_speakers, min_speakers, len(windows.starts), result.silent_windows)
        if self.keep_embeddings:  # what the clustering sees: each window with its context when context is on
            starts = windows.starts / TARGET_SAMPLE_RATE
            result.window_spans = np.stack([starts, starts + windows.lengths / TARGET_SAMPLE_RATE], axis=1)
            unit = normalise(embeddings)
            result.window_embeddings = with_context(unit, windows.region) if self.context else unit
        clock = time.perf_counter()
        context = windows.region if self.context else None
        found = self.clustering.fit(embeddings, num_speakers, min_speakers, max_speakers, regions=context)
        labels = found.labels
        timings["cluster"] = time.perf_counter() - clock
        result.speaker_count = {
            "method": getattr(self.clustering, "name", type(self.clustering).__name__),
            "given": num_speakers is not None,
            "clusters": found.count,
            "uncertain": found.uncertain,
            **({"evidence": found.evidence} if found.evidence else {}),
        }
        scores = self.clustering.centroid_scores(embeddings, labels)
        pieces = self.segments_from_scores(regions, windows, scores, [str(c) for c in range(scores.shape[1])])
        timings["segments"] = time.perf_counter() - clock - timings["cluster"]
        return pieces, embeddings, labels

    def _label(self, result: Diarization, pieces: Sequence[Segment], embeddings: np.ndarray, labels: np.ndarray):
        """Add ``pieces`` (labelled with cluster numbers) to ``result`` as ``SPEAKER_01``, ... in order of
        first appearance, or enrolled names (with ``speakers_db``)."""
        present = [int(c) for c in dict.fromkeys(s.label for s in sorted(pieces))]  # clusters by first appearance
        names = {cluster: f"SPEAKER_{number + 1:02d}" for number, cluster in enumerate(present)}
        if self.speakers_db is not None:
            for cluster, (name, score) in self._names(embeddings, labels).items():
                if cluster in names:
                    label = "_".join(name.split()) or names[cluster]
                    result.names[label] = {"enrolled": name, "score": round(float(score), 4)}
                    names[cluster] = label
        result.extend(Segment(s.start, s.end, names[int(s.label)]) for s in pieces)
        result.sort()

    def _diarize_segmented(
        self,
        source: AudioSource,
        num_speakers: Optional[int],
        min_speakers: int,
        max_speakers: Optional[int],
        recording: Optional[str],
        started: float,
    ) -> Diarization:
        """:meth:`diarize` with the segmentation network (see :mod:`redimnet.diarization.segmented`)."""
        segmenter = cast(Segmenter, self.segmenter)
        timings: Dict[str, float] = {}
        result = Diarization(recording=recording or source.name, duration=source.duration)
        track = segmenter.track(source.samples)
        if self.speaker_embeddings == "windows" or (self.speaker_embeddings == "auto" and num_speakers is not None):
            return self._diarize_resegmented(
                source, track, result, timings, num_speakers, min_speakers, max_speakers, started
            )
        local = embed_local_speakers(
            segmenter, self.embedder, source, track, self.min_clean, self.batch_windows, timings, self.embed_every
        )
        timings["decode"] = max(
            0.0, time.perf_counter() - started - timings.get("segmentation", 0.0) - timings["embed"]
        )
        result.windows = len(local.embeddings)
        frame = segmenter.frame_seconds
        result.speech, result.overlap = speech_and_overlap(track, frame)
        if not len(local.embeddings) or not result.speech:
            return _finished(result, timings, started)
        check_speaker_count(source.name, num_speakers, min_speakers, len(local.embeddings))
        clock = time.perf_counter()
        # each local speaker with the same voice in the chunks beside it (as windows with their neighbours)
        links = neighbour_links(track, local, segmenter.powerset) if self.context else np.zeros((0, 2), np.int64)
        points = with_neighbours(self.clustering.points(local.embeddings), links)
        long_enough = local.seconds >= self.cluster_seconds
        chosen = long_enough if long_enough.sum() >= max(num_speakers or min_speakers, 2) else np.ones_like(long_enough)
        labels = self.clustering.cluster(points[chosen], num_speakers, min_speakers, max_speakers)
        scores = points @ centroids(self.clustering.points(points[chosen]), labels).T
        mapping = assign_local_speakers(local, scores, len(track), segmenter.config.local_speakers)
        mapping = follow_neighbours(track, mapping, segmenter.powerset, self.embed_every)
        timings["cluster"] = time.perf_counter() - clock
        turns = frame_segments(track, mapping, scores.shape[1], frame)
        pieces = as_segments(turns, [str(c) for c in range(scores.shape[1])])
        timings["segments"] = time.perf_counter() - clock - timings["cluster"]
        every = np.full(len(local.embeddings), -1, dtype=np.int64)
        every[:] = np.argmax(scores, axis=1)
        self._label(result, pieces, local.embeddings, every)
        return _finished(result, timings, started)

    def _diarize_resegmented(
        self,
        source: AudioSource,
        track: ChunkTrack,
        result: Diarization,
        timings: Dict[str, float],
        num_speakers: Optional[int],
        min_speakers: int,
        max_speakers: Optional[int],
        started: float,
    ) -> Diarization:
        """:meth:`diarize` with the segmentation's speech and overlap and the speakers of windows (``"windows"``)."""
        segmenter = cast(Segmenter, self.segmenter)
        for chunk in segmenter.chunks(source, timings):
            track.add(chunk)
        frame = segmenter.frame_seconds
        result.speech, result.overlap = speech_and_overlap(track, frame)
        found = self._windows_pipeline(source, result.speech, result, timings, num_speakers, min_speakers, max_speakers)
        if found is not None:
            pieces, embeddings, labels = found
            clock = time.perf_counter()
            speakers = int(labels.max()) + 1
            first = frame_labels(pieces, track.frames, frame)
            mapping = map_by_agreement(track, first, segmenter.powerset, speakers)
            added, removed = overlap_speakers(track, first, mapping, speakers, frame)
            turns = [
                subtract_regions(
                    [
                        (r[0], r[1])
                        for r in merge_regions([(p.start, p.end) for p in pieces if p.label == str(speaker)])
                    ],
                    removed[speaker],
                )
                for speaker in range(speakers)
            ]
            pieces = [
                Segment(round(a, 3), round(b, 3), str(speaker))
                for speaker in range(speakers)
                for a, b in merge_regions(list(turns[speaker]) + list(added[speaker]))
                if b - a > 1e-3
            ]
            timings["overlap"] = time.perf_counter() - clock
            self._label(result, pieces, embeddings, labels)
        return _finished(result, timings, started)
