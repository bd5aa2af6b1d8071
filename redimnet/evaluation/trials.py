"""Trial lists and the lookup of their utterances among embeddings.

Two formats are read, line by line (blank lines and ``#`` comments skipped):

* VoxCeleb: ``1 id10270/5r0dWxy17C8/00001.wav id10270/x6uYqmx31kE/00001.wav``
  (label first: 1 target, 0 non-target);
* Kaldi ``trials``: ``enroll_utt test_utt target`` (or ``nontarget``).

Utterance ids are looked up the way ``redimnet embed`` keys them (path
relative to the audio directory, '/' separators, extension kept); an id that
is not found exactly is also tried with its extension removed or swapped, so
lists written with or without ``.wav`` both work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import RedimnetError

__all__ = ["TrialsError", "TrialList", "read_trials", "EmbeddingIndex", "IndexedTrials", "index_trials", "read_utt2spk"]

PathLike = Union[str, os.PathLike]

_KALDI_LABELS = {"target": True, "nontarget": False}
_VOX_LABELS = {"1": True, "0": False}
_MAX_REPORTED = 5


class TrialsError(RedimnetError):
    """A trial list (or utt2spk file) that cannot be read, or trials that cannot be scored."""


@dataclass
class TrialList:
    """The trials of one file: ``enroll[i]`` against ``test[i]``, ``labels[i]`` True for a target trial."""

    name: str
    path: Optional[Path]
    enroll: List[str]
    test: List[str]
    labels: np.ndarray  # bool
    line_numbers: List[int]  # 1-based line of each trial in its file

    def __len__(self) -> int:
        return len(self.enroll)

    @property
    def n_targets(self) -> int:
        return int(np.count_nonzero(self.labels))

    def utterances(self) -> List[str]:
        """Every utterance id the list mentions, each once, in order of first appearance."""
        return list(dict.fromkeys(self.enroll + self.test))


def _parse_line(fields: List[str]) -> Optional[Tuple[str, str, bool]]:
    if len(fields) != 3:
        return None
    if fields[2].lower() in _KALDI_LABELS:
        return fields[0], fields[1], _KALDI_LABELS[fields[2].lower()]
    if fields[0] in _VOX_LABELS:
        return fields[1], fields[2], _VOX_LABELS[fields[0]]
    return None


def parse_trials(lines: Iterable[str], source: str = "<trials>", name: Optional[str] = None) -> TrialList:
    """Parse trial lines (either format, see the module docstring); ``source`` names them in errors."""
    enroll: List[str] = []
    test: List[str] = []
    labels: List[bool] = []
    numbers: List[int] = []
    bad: List[str] = []
    n_bad = 0
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parsed = _parse_line(stripped.split())
        if parsed is None:
            n_bad += 1
            if len(bad) < _MAX_REPORTED:
                bad.append(f"  {source}:{number}: {stripped[:120]!r}")
            continue
        enroll.append(parsed[0])
        test.append(parsed[1])
        labels.append(parsed[2])
        numbers.append(number)
    if n_bad:
        more = f"\n  ... and {n_bad - len(bad)} more" if n_bad > len(bad) else ""
        raise TrialsError(
            f"{n_bad} malformed line(s) in trial list {source}:\n"
            + "\n".join(bad)
            + more
            + "\nexpected 'LABEL ENROLL TEST' with LABEL 1 (target) or 0 (non-target), as in VoxCeleb lists, "
            "or 'ENROLL TEST target|nontarget', as in Kaldi trials files"
        )
    if not enroll:
        raise TrialsError(f"trial list {source} contains no trials")
    return TrialList(name or Path(source).stem, None, enroll, test, np.asarray(labels, dtype=bool), numbers)


def read_trials(path: PathLike, name: Optional[str] = None) -> TrialList:
    """Read a VoxCeleb-style or Kaldi-style trial list (format detected per line)."""
    path = Path(path)
    if not path.is_file():
        raise TrialsError(f"trial list not found: {path}")
    try:
        with open(path, encoding="utf-8") as stream:
            trials = parse_trials(stream, str(path), name or path.stem)
    except UnicodeDecodeError as error:
        raise TrialsError(f"trial list {path} is not UTF-8 text ({error}); is it the right file?") from None
    trials.path = path
    return trials


def _normalise_id(utt: str) -> str:
    utt = utt.replace("\\", "/")
    while utt.startswith("./"):
        utt = utt[2:]
    return utt


def _strip_extension(utt: str) -> str:
    head, _, last = utt.rpartition("/")
    stem, dot, ext = last.rpartition(".")
    if not dot or not stem or not ext or len(ext) > 5 or not ext.isalnum():
        return utt
    return f"{head}/{stem}" if head else stem


class EmbeddingIndex:
    """Finds the row of an utterance id among embedding ids, tolerating a missing or different extension."""

    def __init__(self, ids: Iterable[str]):
        self.ids = [str(i) for i in ids]
        self._exact: Dict[str, int] = {}
        self._stems: Dict[str, int] = {}
        for row, utt in enumerate(self.ids):
            self._exact.setdefault(utt, row)
            normal = _normalise_id(utt)
            self._exact.setdefault(normal, row)
            stem = _strip_extension(normal)
            # -1 marks a stem shared by two ids (a.wav and a.flac): too ambiguous to guess
            self._stems[stem] = -1 if stem in self._stems and self._stems[stem] != row else row

    def __len__(self) -> int:
        return len(self.ids)

    def find(self, utt: str) -> Optional[int]:
        """The row of ``utt``, or None when it (or an unambiguous variant of its extension) is absent."""
        row = self._exact.get(utt)
        if row is not None:
            return row
        normal = _normalise_id(utt)
        row = self._exact.get(normal)
        if row is not None:
            return row
        row = self._stems.get(_strip_extension(normal))
        return row if row is not None and row >= 0 else None

    def rows(self, utts: Sequence[str]) -> np.ndarray:
        """Rows of ``utts``; -1 where an id is not found."""
        cache: Dict[str, int] = {}
        out = np.empty(len(utts), dtype=np.int64)
        for i, utt in enumerate(utts):
            row = cache.get(utt)
            if row is None:
                found = self.find(utt)
                row = cache[utt] = -1 if found is None else found
            out[i] = row
        return out


@dataclass
class IndexedTrials:
    """A trial list with each side resolved to an embedding row; missing trials removed."""

    trials: TrialList
    enroll_rows: np.ndarray
    test_rows: np.ndarray
    kept: np.ndarray  # bool mask over the original trials
    missing_utterances: List[str]

    @property
    def n_missing_trials(self) -> int:
        return int(np.count_nonzero(~self.kept))

    @property
    def labels(self) -> np.ndarray:
        return self.trials.labels[self.kept]

    def kept_pairs(self) -> Tuple[List[str], List[str]]:
        keep = np.flatnonzero(self.kept)
        return [self.trials.enroll[i] for i in keep], [self.trials.test[i] for i in keep]


def index_trials(
    trials: TrialList, index: EmbeddingIndex, skip_missing: bool = False, embeddings_name: str = "the embeddings"
) -> IndexedTrials:
    """Resolve both sides of every trial; missing utterances are an error unless ``skip_missing``."""
    enroll_rows = index.rows(trials.enroll)
    test_rows = index.rows(trials.test)
    kept = (enroll_rows >= 0) & (test_rows >= 0)
    missing = sorted(
        {u for u, r in zip(trials.enroll, enroll_rows) if r < 0} | {u for u, r in zip(trials.test, test_rows) if r < 0}
    )
    n_missing_trials = int(np.count_nonzero(~kept))
    where = trials.path or trials.name
    if n_missing_trials and not skip_missing:
        first = int(np.flatnonzero(~kept)[0])
        examples = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        available = ", ".join(index.ids[:2]) if len(index) else "none"
        raise TrialsError(
            f"{n_missing_trials} of {len(trials)} trials in {where} reference {len(missing)} utterance(s) "
            f"missing from {embeddings_name} (first at line {trials.line_numbers[first]}): {examples}. "
            f"Ids there look like: {available}. Extract embeddings with the audio directory the trial paths "
            "are relative to, or pass --skip-missing to score only the trials that are present"
        )
    if not kept.any():
        raise TrialsError(
            f"none of the {len(trials)} trials in {where} can be scored: every one references an "
            f"utterance missing from {embeddings_name}"
        )
    result = IndexedTrials(trials, enroll_rows[kept], test_rows[kept], kept, missing)
    labels = result.labels
    if not labels.any():
        left = " left after skipping missing ones" if n_missing_trials else ""
        raise TrialsError(
            f"{where} has no target trials{left}: the EER and minDCF need both target and non-target trials"
        )
    if labels.all():
        raise TrialsError(
            f"{where} has no non-target trials"
            f"{' left after skipping missing ones' if n_missing_trials else ''}:"
            " the EER and minDCF need both target and non-target trials"
        )
    return result


def read_utt2spk(path: PathLike) -> Dict[str, str]:
    """``{utterance: speaker}`` from a Kaldi ``utt2spk`` file (``UTT SPEAKER`` per line)."""
    path = Path(path)
    if not path.is_file():
        raise TrialsError(f"utt2spk file not found: {path}")
    mapping: Dict[str, str] = {}
    with open(path, encoding="utf-8") as stream:
        for number, line in enumerate(stream, start=1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if len(fields) != 2:
                raise TrialsError(f"{path}:{number}: expected 'UTTERANCE SPEAKER', got {line.strip()[:120]!r}")
            if mapping.get(fields[0], fields[1]) != fields[1]:
                raise TrialsError(
                    f"{path}:{number}: utterance {fields[0]} is given two speakers "
                    f"({mapping[fields[0]]} and {fields[1]})"
                )
            mapping[fields[0]] = fields[1]
    if not mapping:
        raise TrialsError(f"utt2spk file {path} is empty")
    return mapping
