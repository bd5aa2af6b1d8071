"""Labelled time segments and the RTTM format they are read from and written to.

An RTTM line describing speech of one speaker has ten space-separated fields::

    SPEAKER <file> <channel> <start> <duration> <NA> <NA> <label> <NA> <NA>

Times are in seconds.  :func:`read_rttm` is strict: every non-blank line that
is not a ``#`` comment must be a ``SPEAKER`` line with at least eight fields, a
finite non-negative start, a finite non-negative duration (zero-length
segments are read, and ignored by the scorer), an end no later than
:data:`MAX_SECONDS` and a speaker label (not ``<NA>``); anything else raises
:class:`RTTMError` naming ``file:line`` and what to fix.
"""

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

import numpy as np

from .._utils.fileio import atomic_write
from ..errors import RedimnetError

PathLike = Union[str, os.PathLike]


#: Latest time an RTTM segment may end at (about 116 days): later ones are typing errors, and seconds that
#: large lose the millisecond precision the scorer needs.
MAX_SECONDS = 10_000_000.0


class RTTMError(RedimnetError):
    """An RTTM file cannot be read (with ``file:line`` and the reason)."""


@dataclass(frozen=True, order=True)
class Segment:
    """``label`` speaks from ``start`` to ``end`` (seconds)."""

    start: float
    end: float
    label: str

    @property
    def duration(self) -> float:
        return self.end - self.start


def check_recording_id(recording: str) -> str:
    """An RTTM file field cannot contain white space or be empty."""
    if not recording or any(c.isspace() for c in recording):
        raise RTTMError(f"recording id {recording!r} cannot be used in RTTM (empty or contains white space)")
    return recording


def format_rttm(segments: Iterable[Segment], recording: str, channel: int = 1) -> str:
    """RTTM text for ``segments`` of one recording (times with millisecond precision)."""
    check_recording_id(recording)
    lines = []
    for segment in sorted(segments):
        label = segment.label
        if not label or any(c.isspace() for c in label):
            raise RTTMError(f"speaker label {label!r} cannot be written to RTTM (empty or contains white space)")
        lines.append(
            f"SPEAKER {recording} {channel} {segment.start:.3f} {segment.duration:.3f} <NA> <NA> {label} <NA> <NA>\n"
        )
    return "".join(lines)


def write_rttm(path: PathLike, segments: Iterable[Segment], recording: str) -> Path:
    """Write one recording's segments to ``path`` atomically (an empty file when there are none)."""
    text = format_rttm(segments, recording)
    with atomic_write(Path(path), mode="w") as stream:
        stream.write(text)
    return Path(path)


def read_rttm(path: PathLike) -> Dict[str, List[Segment]]:
    """Segments by recording id from an RTTM file (strict; see the module documentation)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RTTMError(f"{path}: no such file") from None
    except UnicodeDecodeError as error:
        raise RTTMError(f"{path}: not a text file (byte {error.start} is not UTF-8)") from None
    except OSError as error:
        raise RTTMError(f"{path}: cannot read: {error.strerror or error}") from None
    return parse_rttm(text, str(path))


def parse_rttm(text: str, where: str = "<rttm>") -> Dict[str, List[Segment]]:
    """Like :func:`read_rttm`, from text; ``where`` names the source in errors."""
    recordings: Dict[str, List[Segment]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        fields = stripped.split()
        at = f"{where}:{number}"
        if fields[0] != "SPEAKER":
            raise RTTMError(
                f"{at}: expected a SPEAKER line, got type {fields[0]!r} (only SPEAKER lines, blank "
                "lines and # comments are accepted)"
            )
        if len(fields) < 8:
            raise RTTMError(
                f"{at}: a SPEAKER line needs at least 8 fields (SPEAKER file channel start duration "
                f"<NA> <NA> label ...), got {len(fields)}"
            )
        start = _number(fields[3], "start", at)
        duration = _number(fields[4], "duration", at)
        if start < 0:
            raise RTTMError(f"{at}: negative start time {fields[3]}")
        if duration < 0:
            raise RTTMError(f"{at}: negative duration {fields[4]}")
        if start + duration > MAX_SECONDS:
            raise RTTMError(
                f"{at}: the segment ends at {start + duration:.6g} s, later than the {MAX_SECONDS:.0f} s "
                "(about 116 days) an RTTM time may reach; check the start and duration fields"
            )
        if fields[7] == "<NA>":
            raise RTTMError(f"{at}: the speaker label (the 8th field) is <NA>; every SPEAKER line needs a speaker")
        recordings.setdefault(fields[1], []).append(Segment(start, start + duration, fields[7]))
    for segments in recordings.values():
        segments.sort()
    return recordings


def _number(text: str, what: str, at: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise RTTMError(f"{at}: the {what} {text!r} is not a number of seconds") from None
    if not math.isfinite(value):
        raise RTTMError(f"{at}: the {what} {text!r} is not finite")
    return value


def merge_regions(regions: Sequence[Sequence[float]], gap: float = 0.0) -> List[List[float]]:
    """Sorted ``[start, end]`` regions with overlaps (and gaps up to ``gap`` seconds) joined."""
    merged: List[List[float]] = []
    for start, end in sorted((float(s), float(e)) for s, e in regions):
        if merged and start <= merged[-1][1] + gap:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def speaker_totals(segments: Iterable[Segment]) -> Dict[str, float]:
    """Seconds spoken per label, largest first."""
    totals: Dict[str, float] = {}
    for segment in segments:
        totals[segment.label] = totals.get(segment.label, 0.0) + segment.duration
    return dict(sorted(totals.items(), key=lambda item: (-item[1], item[0])))


def label_spans(
    reference: Sequence[Segment], starts: np.ndarray, ends: np.ndarray, purity: float = 0.9
) -> List[Optional[str]]:
    """The reference speaker of each span ``[starts[i], ends[i])``, or None where no single speaker
    speaks alone for at least ``purity`` of it (turn changes, overlap, pauses).

    Used to label the windows of recordings with a known reference, e.g. to fit a PLDA back-end.
    """
    starts, ends = np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64)
    speakers = sorted({s.label for s in reference})
    cover = np.zeros((len(starts), len(speakers)))
    for segment in reference:
        column = speakers.index(segment.label)
        cover[:, column] += np.clip(np.minimum(ends, segment.end) - np.maximum(starts, segment.start), 0.0, None)
    lengths = np.maximum(ends - starts, 1e-9)
    labels: List[Optional[str]] = []
    for row, length in zip(cover, lengths):
        best = int(np.argmax(row)) if len(row) else -1
        alone = best >= 0 and row[best] >= purity * length and row.sum() - row[best] <= (1 - purity) * length
        labels.append(speakers[best] if alone else None)
    return labels


def overlap_regions(segments: Iterable[Segment], at_least: int = 2) -> List[List[float]]:
    """Sorted ``[start, end]`` regions where ``at_least`` different labels speak at once
    (``at_least=1``: speech of anyone); each label's own segments are merged first."""
    by_label: Dict[str, List[List[float]]] = {}
    for segment in segments:
        if segment.end > segment.start:
            by_label.setdefault(segment.label, []).append([segment.start, segment.end])
    events = sorted(
        (time, step)
        for regions in by_label.values()
        for start, end in merge_regions(regions)
        for time, step in ((start, 1), (end, -1))
    )
    found: List[List[float]] = []
    active, opened = 0, 0.0
    for time, step in events:  # ends sort before starts at the same time: touching turns do not overlap
        if active < at_least <= active + step:
            opened = time
        elif active >= at_least > active + step and time > opened:
            found.append([opened, time])
        active += step
    return merge_regions(found)


def intersection_seconds(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> float:
    """Seconds two lists of sorted, disjoint ``[start, end]`` regions share."""
    total, i, j = 0.0, 0, 0
    while i < len(a) and j < len(b):
        total += max(0.0, min(a[i][1], b[j][1]) - max(a[i][0], b[j][0]))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total
