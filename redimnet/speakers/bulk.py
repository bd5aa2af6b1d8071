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

The file is read in blocks and written in the order of its rows, so memory
stays bounded whatever its size: a batch holds up to ``batch`` speakers (runs
of one speaker's consecutive rows) and up to ``max(4 x batch, READ_ROWS)``
rows.  New speakers get their ids in that order (by name within a batch).
Recordings of one speaker that lie apart in the file can fall into two
batches: the second adds them to the speaker the first created, as an
enrolment would, and the report counts that speaker in both.  A file grouped
by speaker in name order (what ``redimnet embed`` writes for a folder tree)
is imported fastest: into an empty store its names need no lookups.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union, cast

import numpy as np

from .._utils.names import UnsafeNameError, plain_names, printable
from ..embedding.io import embeddings_blocks, embeddings_model
from ..embedding.similarity import ScoringError, l2_normalize
from .sql import SpeakerDatabaseError, SqlSpeakerStore, speaker_name

__all__ = ["SPEAKER_RULES", "ImportReport", "speaker_names", "import_embeddings", "import_arrays"]

SPEAKER_RULES = ("first-component", "id")
"""How a speaker is found from an embedding's id without ``utt2spk``: its first path component, or the
whole id (each embedding its own speaker, e.g. a cohort file)."""

DEFAULT_BATCH = 20_000
"""Speakers per transaction."""

READ_ROWS = 65_536
"""Rows read from an embeddings file at a time."""


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
    return _speaker_rule(utt2spk, rule)(ids)


def _speaker_rule(utt2spk: Optional[Mapping[str, str]], rule: str) -> Callable[[Sequence[str]], List[str]]:
    """:func:`speaker_names` for one ``utt2spk`` / ``rule``, ready for many parts of the ids (a ``utt2spk``
    mapping is indexed once)."""
    if utt2spk is None and rule not in SPEAKER_RULES:
        raise SpeakerDatabaseError(f"unknown speaker rule {rule!r}; choose one of {', '.join(SPEAKER_RULES)}")
    if utt2spk is None and rule == "id":
        return lambda ids: [str(i) for i in ids]
    from ..evaluation.score_norm import ScoreNormError, SpeakerLookup, speakers_of

    lookup = SpeakerLookup(utt2spk) if utt2spk is not None else None

    def names(ids: Sequence[str]) -> List[str]:
        if lookup is None:
            fast = _first_components(ids)
            if fast is not None:
                return fast
        try:
            return lookup(ids) if lookup is not None else speakers_of(ids)
        except ScoreNormError as error:
            raise SpeakerDatabaseError(str(error)) from None

    return names


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

    The file is read :data:`READ_ROWS` rows at a time, twice (checked, then
    imported), so memory does not grow with its size.  ``progress(recordings
    written, recordings in all)`` is called after each batch.  ``fingerprint``:
    the model the embeddings came from (default: the one the file records, if
    any); the store refuses embeddings of another model.
    """
    recorded = embeddings_model(path)
    if fingerprint and recorded and fingerprint != recorded:
        raise SpeakerDatabaseError(
            f"{path} was written by model {recorded}, not {fingerprint}; use the embeddings of the store's model"
        )
    if batch < 1:
        raise SpeakerDatabaseError(f"the batch size must be at least 1, got {batch}")

    names_of = _speaker_rule(utt2spk, rule)

    def blocks() -> Iterator[Block]:
        for ids, embeddings in embeddings_blocks(path, READ_ROWS):
            yield ids, embeddings, names_of(cast(Sequence[str], ids))

    return _import_blocks(store, blocks, batch, fingerprint or recorded, progress)


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
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(ids) or len(speakers) != len(ids):
        raise SpeakerDatabaseError(
            f"need one id and one speaker per embedding: {len(ids)} ids, {len(speakers)} speakers, "
            f"embeddings of shape {embeddings.shape}"
        )
    if batch < 1:
        raise SpeakerDatabaseError(f"the batch size must be at least 1, got {batch}")

    def blocks() -> Iterator[Block]:
        for start in range(0, len(ids), READ_ROWS):
            end = start + READ_ROWS
            yield ids[start:end], embeddings[start:end], speakers[start:end]

    return _import_blocks(store, blocks, batch, fingerprint, progress)


Block = Tuple[Union[Sequence[str], np.ndarray], np.ndarray, Union[Sequence[str], np.ndarray]]
"""Rows of an import: utterance ids, embeddings ``[n, D]``, the speaker of each."""


def _import_blocks(
    store: SqlSpeakerStore,
    blocks: Callable[[], Iterator[Block]],
    batch: int,
    fingerprint: Optional[str],
    progress: Optional[Callable[[int, int], None]],
) -> ImportReport:
    """Check every row of ``blocks()``, then write them in transactions of :func:`batches`.

    Names are looked up in the store unless it held nobody when the import
    began and each batch's names all sort after every earlier batch's (a file
    grouped by speaker in name order, as ``redimnet embed`` writes a folder
    tree); then no name can have been stored before (see
    :meth:`~redimnet.speakers.sql.SqlSpeakerStore.add_speakers`).
    """
    started = time.perf_counter()
    total = 0
    for ids, embeddings, speakers in blocks():  # everything checked before the first write
        _checked_names(np.unique(np.asarray(speakers, dtype=str)).tolist())
        _check_vectors(embeddings, ids)
        total += len(ids)
    if not total:
        return ImportReport(0, 0, 0, 0, 0, time.perf_counter() - started)
    new = updated = batches = done = 0
    none_stored_at: Optional[int] = None  # the revision after our last batch, while no imported name was stored
    highest: Optional[str] = None  # the last name of the batches so far, while they come in name order
    in_order = True
    for ids, embeddings, speakers in _batches(blocks(), batch, max(4 * batch, READ_ROWS)):
        raw, raw_inverse = np.unique(np.asarray(speakers, dtype=str), return_inverse=True)
        names = _checked_names(raw.tolist())
        # speakers whose names become equal once normalised are one speaker
        unique_names, name_inverse = np.unique(np.asarray(names, dtype=str), return_inverse=True)
        speaker_of_row = name_inverse.reshape(-1)[raw_inverse.reshape(-1)]
        order = np.argsort(speaker_of_row, kind="stable")
        counts = np.bincount(speaker_of_row, minlength=unique_names.size)
        batch_names = unique_names.tolist()
        in_order = in_order and (highest is None or batch_names[0] > highest)
        highest = batch_names[-1]
        added, changed, none_stored_at = store.add_speakers(
            batch_names,
            _group_sums(l2_normalize(embeddings[order], dtype=np.float64), counts),
            counts,
            speaker_of_row[order],
            [str(ids[r]) for r in order.tolist()],
            embeddings[order],
            fingerprint=fingerprint,
            none_stored_at=none_stored_at if in_order else None,
        )
        new, updated, batches, done = new + added, updated + changed, batches + 1, done + len(ids)
        if progress is not None:
            progress(done, total)
    return ImportReport(new + updated, new, updated, total, batches, time.perf_counter() - started)


def _batches(blocks: Iterable[Block], speakers: int, rows: int) -> Iterator[Block]:
    """The rows of ``blocks`` again, in the same order, cut into batches of at most ``speakers`` runs of one
    speaker's consecutive rows and at most ``rows`` rows (a cut falls between two speakers' rows, unless one
    speaker alone has more than ``rows``).  Memory: one batch and one block."""
    held: List[Block] = []
    held_rows = held_runs = 0
    last: Optional[str] = None
    for ids, embeddings, speakers_of_rows in blocks:
        names = np.asarray(speakers_of_rows, dtype=str)
        at = 0
        while at < len(names):
            part = names[at:]
            starts = np.empty(len(part), dtype=bool)
            starts[0] = last is None or part[0] != last
            starts[1:] = part[1:] != part[:-1]
            runs = held_runs + np.cumsum(starts)
            over = np.flatnonzero(runs > speakers)
            cut = min(int(over[0]) if over.size else len(part), rows - held_rows)
            if cut:
                held.append((ids[at : at + cut], embeddings[at : at + cut], part[:cut]))
                held_rows, held_runs, last = held_rows + cut, int(runs[cut - 1]), str(part[cut - 1])
                at += cut
            if at < len(names):  # the batch is full
                yield _joined(held)
                held, held_rows, held_runs, last = [], 0, 0, None
    if held:
        yield _joined(held)


def _joined(pieces: List[Block]) -> Block:
    ids: List[str] = []
    for piece in pieces:
        ids.extend(str(i) for i in piece[0])
    names = np.concatenate([np.asarray(piece[2], dtype=str) for piece in pieces])
    return ids, np.concatenate([piece[1] for piece in pieces]), names.tolist()


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


def _check_vectors(embeddings: np.ndarray, ids: Union[Sequence[str], np.ndarray]) -> None:
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
