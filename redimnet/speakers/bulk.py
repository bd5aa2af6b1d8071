"""Bulk import: many speakers from an embeddings file into a speaker store, one transaction per batch.

``redimnet speakers import E.npz --db ...`` reads an embeddings file written
by ``redimnet embed`` (or ``redimnet cohort``), finds each embedding's
speaker -- from a Kaldi ``utt2spk`` file, from the first path component of
its id (``alice/2024/call1.wav`` -> ``alice``), or the id itself -- and adds
every speaker's recordings as :meth:`~redimnet.speakers.sql.SqlSpeakerStore.enroll`
would (a speaker already enrolled gets them added), ``batch`` speakers per
transaction.  Names and vectors are all checked before the first write; a
failure after that (the database going away) leaves the batches before it
imported and nothing of the failing one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, List, Mapping, Optional, Sequence

import numpy as np

from .._utils.names import UnsafeNameError, plain_names, printable
from ..embedding.io import embeddings_model, load_embeddings
from ..embedding.similarity import ScoringError, l2_normalize
from .sql import SpeakerDatabaseError, SqlSpeakerStore, speaker_name

__all__ = ["SPEAKER_RULES", "ImportReport", "speaker_names", "import_embeddings", "import_arrays"]

SPEAKER_RULES = ("first-component", "id")
"""How a speaker is found from an embedding's id without ``utt2spk``: its first path component, or the
whole id (each embedding its own speaker, e.g. a cohort file)."""

DEFAULT_BATCH = 20_000
"""Speakers per transaction."""


@dataclass
class ImportReport:
    """What an import did."""

    speakers: int
    new: int
    updated: int
    recordings: int
    batches: int
    seconds: float

    @property
    def speakers_per_second(self) -> float:
        return self.speakers / self.seconds if self.seconds > 0 else float("inf")


def speaker_names(
    ids: Sequence[str], utt2spk: Optional[Mapping[str, str]] = None, rule: str = "first-component"
) -> List[str]:
    """The speaker of every embedding id: from ``utt2spk`` when given, else by ``rule`` (:data:`SPEAKER_RULES`)."""
    if utt2spk is None and rule not in SPEAKER_RULES:
        raise SpeakerDatabaseError(f"unknown speaker rule {rule!r}; choose one of {', '.join(SPEAKER_RULES)}")
    if utt2spk is None and rule == "id":
        return [str(i) for i in ids]
    if utt2spk is None:
        fast = _first_components(ids)
        if fast is not None:
            return fast
    from ..evaluation.score_norm import ScoreNormError, speakers_of

    try:
        return speakers_of(ids, utt2spk)
    except ScoreNormError as error:
        raise SpeakerDatabaseError(str(error)) from None


def _first_components(ids: Sequence[str]) -> Optional[List[str]]:
    """The first path component of every id, all at once, when each is a plain ``SPEAKER/REST`` (no
    backslash, no leading ``/`` or ``./``); else None (then :func:`~redimnet.evaluation.score_norm.speaker_of`
    reads each id, with its messages)."""
    array = np.asarray(ids, dtype=str)
    if not array.size:
        return []
    odd = np.strings.find(array, "\\") >= 0
    odd |= np.strings.startswith(array, "/") | np.strings.startswith(array, "./")
    if odd.any():
        return None
    first, separator, _ = np.strings.partition(array, "/")
    if np.any(np.strings.str_len(separator) == 0) or np.any(np.strings.str_len(first) == 0):
        return None
    return first.tolist()


def import_embeddings(
    store: SqlSpeakerStore,
    path,
    utt2spk: Optional[Mapping[str, str]] = None,
    rule: str = "first-component",
    batch: int = DEFAULT_BATCH,
    fingerprint: Optional[str] = None,
    progress: Optional[Callable[[int, int], None]] = None,
) -> ImportReport:
    """Import the embeddings file ``path`` into ``store``; see the module's description.

    ``fingerprint``: the model the embeddings came from (default: the one the
    file records, if any); the store refuses embeddings of another model.
    """
    ids, embeddings = load_embeddings(path)
    recorded = embeddings_model(path)
    if fingerprint and recorded and fingerprint != recorded:
        raise SpeakerDatabaseError(
            f"{path} was written by model {recorded}, not {fingerprint}; use the embeddings of the store's model"
        )
    return import_arrays(
        store,
        ids.tolist(),
        embeddings,
        speaker_names(ids.tolist(), utt2spk, rule),
        batch,
        fingerprint or recorded,
        progress,
    )


def import_arrays(
    store: SqlSpeakerStore,
    ids: Sequence[str],
    embeddings: np.ndarray,
    speakers: Sequence[str],
    batch: int = DEFAULT_BATCH,
    fingerprint: Optional[str] = None,
    progress: Optional[Callable[[int, int], None]] = None,
) -> ImportReport:
    """Import ``embeddings`` ``[N, D]`` with utterance ``ids`` of ``speakers`` (one per row) into ``store``."""
    started = time.perf_counter()
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(ids) or len(speakers) != len(ids):
        raise SpeakerDatabaseError(
            f"need one id and one speaker per embedding: {len(ids)} ids, {len(speakers)} speakers, "
            f"embeddings of shape {embeddings.shape}"
        )
    if batch < 1:
        raise SpeakerDatabaseError(f"the batch size must be at least 1, got {batch}")
    if not len(ids):
        return ImportReport(0, 0, 0, 0, 0, time.perf_counter() - started)
    raw, raw_inverse = np.unique(np.asarray(speakers, dtype=str), return_inverse=True)
    names = _checked_names(raw.tolist())
    # speakers whose names become equal once normalised are one speaker
    unique_names, name_inverse = np.unique(np.asarray(names, dtype=str), return_inverse=True)
    speaker_of_row = name_inverse.reshape(-1)[raw_inverse.reshape(-1)]
    order = np.argsort(speaker_of_row, kind="stable")
    counts = np.bincount(speaker_of_row, minlength=unique_names.size)
    starts = np.concatenate([[0], np.cumsum(counts)])
    _check_vectors(embeddings, ids)
    new = updated = batches = 0
    none_stored_at: Optional[int] = None  # the revision after our last batch, while no imported name was stored
    total = int(unique_names.size)
    for first in range(0, total, batch):
        last = min(total, first + batch)
        rows = order[starts[first] : starts[last]]
        units = l2_normalize(embeddings[rows], dtype=np.float64)
        local = speaker_of_row[rows] - first
        sums = _group_sums(units, counts[first:last])
        added, changed, none_stored_at = store.add_speakers(
            unique_names[first:last].tolist(),
            sums,
            counts[first:last],
            local,
            [str(ids[r]) for r in rows.tolist()],
            embeddings[rows],
            fingerprint=fingerprint,
            none_stored_at=none_stored_at,
        )
        new, updated, batches = new + added, updated + changed, batches + 1
        if progress is not None:
            progress(last, total)
    return ImportReport(total, new, updated, len(ids), batches, time.perf_counter() - started)


def _group_sums(rows: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The sum of each group of ``counts[k]`` consecutive ``rows`` (rows are grouped by speaker).

    One-row groups are copied: ``np.add.reduceat`` costs about 2 us per group, a tenth of the whole
    import's CPU per speaker when most speakers bring one recording.  Same sums, bit for bit.
    """
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    several = counts > 1
    if several.all():
        return np.add.reduceat(rows, starts, axis=0)
    sums = rows[starts]
    if several.any():
        members = np.repeat(several, counts)
        sums[several] = np.add.reduceat(rows[members], np.concatenate([[0], np.cumsum(counts[several])[:-1]]), axis=0)
    return sums


def _checked_names(raw: List[str]) -> List[str]:
    if plain_names(raw):  # the usual case, checked at once: every name is already its filed form
        return raw
    names, bad = [], []
    for name in raw:
        try:
            names.append(speaker_name(name))
        except (UnsafeNameError, SpeakerDatabaseError) as error:
            bad.append(f"'{printable(name[:60])}' ({error})")
    if bad:
        raise SpeakerDatabaseError(
            f"{len(bad)} speaker name(s) cannot be stored, e.g. {'; '.join(bad[:3])}; fix the ids or the "
            "utt2spk file (nothing was imported)"
        )
    return names


def _check_vectors(embeddings: np.ndarray, ids: Sequence[str]) -> None:
    """Every row finite and non-zero, before any write.

    The policy of :func:`redimnet.embedding.similarity.l2_normalize`.
    """
    for start in range(0, embeddings.shape[0], 100_000):
        block = embeddings[start : start + 100_000]
        bad = np.flatnonzero(~(np.isfinite(block).all(axis=1) & np.any(block != 0, axis=1)))
        if bad.size:
            try:
                l2_normalize(block[bad[:1]])
            except ScoringError as error:
                where = ids[start + int(bad[0])]
                raise SpeakerDatabaseError(
                    f"embedding of '{printable(where)}': {error}; nothing was imported"
                ) from None
