"""A speaker store in a SQL database: the schema, the operations and the index, for every dialect.

:class:`SqlSpeakerStore` holds everything the SQLite file
(:class:`redimnet.speakers.sqlite.SpeakerDatabase`) and the PostgreSQL store
(:class:`redimnet.speakers.postgres.PostgresSpeakerStore`) share; a dialect
supplies the connection, its transactions and the few statements that differ.

The data: ``speakers`` (name, recording count, the running mean of the
recordings' L2-normalised embeddings, stored as float32, times, and the revision that
last wrote the row), ``utterances`` (every enrolled embedding, float32),
``removed`` (deleted speakers' ids with the revision that deleted them) and
``meta`` (schema version, embedding dimension, model fingerprint, the store's
random identity and its revision counter).

Every change is one transaction that first increments the revision counter
(which also serialises writers: in PostgreSQL the counter's row lock, in
SQLite ``BEGIN IMMEDIATE``), so revisions are committed in order and a reader
that sees revision ``r`` sees every change up to ``r``.  That is what keeps the
speaker index (:mod:`redimnet.speakers.index`) exact about the store: before a
search it applies the speakers written and removed since its own revision,
read in the same snapshot as the search's other reads.  Identification asks
the index for a few more candidates than requested and scores them against
the stored means, so scores are exact and a speaker missing from the
snapshot is never returned.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, cast

import numpy as np

from .._utils.names import printable
from ..embedding.similarity import ScoringError, l2_normalize
from .index import IndexFile, SpeakerIndex, StoreState, release_index, shared_index
from .schema import (
    SCHEMA_VERSION,
    EmptyStoreError,
    SpeakerDatabaseError,
    SqlStoreBase,
    UnknownSpeakerError,
    _by_name,
    speaker_name,
)
from .store import check_page
from .vectors import HNSW_EXPANSION_IDENTIFY

__all__ = [
    "SpeakerDatabaseError",
    "EmptyStoreError",
    "UnknownSpeakerError",
    "Speaker",
    "SqlSpeakerStore",
    "SCHEMA_VERSION",
    "speaker_name",
]

READ_BLOCK = 20_000
"""Speakers read per block when the index is built (memory stays bounded)."""


@dataclass(frozen=True)
class Speaker:
    """A row of ``speakers list``."""

    name: str
    utterances: int
    created: float
    updated: float


def normalised(vector: np.ndarray, what: str) -> np.ndarray:
    """``vector`` as a float64 unit vector, or :class:`SpeakerDatabaseError` naming ``what``."""
    try:
        return l2_normalize(np.asarray(vector).reshape(1, -1), dtype=np.float64)[0]
    except ScoringError as error:
        raise SpeakerDatabaseError(f"{what}: {error}") from None


MEAN_DTYPE = np.float32
"""How a speaker's mean is stored (computed in float64, stored in float32: half the bytes to write and read
for a million speakers, and cosine scores that differ by less than 1e-6)."""


def mean_of(blob) -> np.ndarray:
    """A stored mean as float64."""
    return np.frombuffer(bytes(blob), dtype=MEAN_DTYPE).astype(np.float64)


def mean_bytes(mean: np.ndarray) -> bytes:
    """A mean as it is stored."""
    return np.asarray(mean, dtype=MEAN_DTYPE).tobytes()


def row_bytes(matrix: np.ndarray) -> List[bytes]:
    """Each row of a 2-D array as its bytes (as ``row.tobytes()`` gives them), made in one pass."""
    matrix = np.ascontiguousarray(matrix)
    if matrix.shape[0] == 0 or matrix.shape[1] == 0:
        return [b""] * matrix.shape[0]
    rows = matrix.view(np.dtype((np.void, matrix.shape[1] * matrix.itemsize))).reshape(-1)
    return cast(List[bytes], rows.tolist())  # a void array's items are bytes


def _unit_rows(means: np.ndarray) -> np.ndarray:
    """Float32 unit rows of stored means (a mean of unit vectors is never zero unless they cancel)."""
    norms = np.linalg.norm(means, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (means / norms).astype(np.float32)


class SqlSpeakerStore(SqlStoreBase):
    """Enrolled speakers in a SQL database; a dialect subclass connects and supplies what differs.

    Subclasses open ``self.connection`` and call :meth:`_open`; besides the
    database hooks of :class:`redimnet.speakers.schema.SqlStoreBase` they
    implement :meth:`_index_location`.
    """

    def _index_location(self, store_id: str) -> Tuple[str, Optional[IndexFile]]:
        """``(key naming this store in the process, where its index is saved or None)``."""
        raise NotImplementedError

    def _open(self) -> None:
        """Create the schema or migrate it to :data:`SCHEMA_VERSION` (one transaction)."""
        self._index: Optional[SpeakerIndex] = None
        self._index_key: Optional[str] = None
        self._write(self._create_or_migrate)

    def close(self) -> None:
        if self._index_key is not None:
            key, self._index_key, self._index = self._index_key, None, None
            release_index(key)
        self.connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def built_with(self) -> Optional[str]:
        """The fingerprint of the model whose embeddings the database holds (``None`` while it is empty)."""
        with self._reading() as cursor:
            return self._meta_value(cursor, "model")

    def revision(self) -> int:
        """The store's revision: how many changes were committed to it (the speaker index follows it)."""
        with self._reading() as cursor:
            return int(self._meta_value(cursor, "revision") or 0)

    def _check_model(self, cursor, fingerprint: Optional[str], dim: int) -> None:
        rows = dict(self._execute(cursor, "SELECT key, value FROM meta WHERE key IN ('model', 'dim')").fetchall())
        if "dim" in rows and int(rows["dim"]) != dim:
            raise SpeakerDatabaseError(
                f"{self.label} holds {rows['dim']}-dimensional embeddings; got {dim}. "
                "Use the model the database was built with, or another --db"
            )
        if fingerprint and rows.get("model") and rows["model"] != fingerprint:
            raise SpeakerDatabaseError(
                f"{self.label} was built with another model (fingerprint {rows['model']}, "
                f"this one is {fingerprint}); scores across models are meaningless. "
                "Use the same model, or another --db"
            )
        self._set_meta(cursor, "dim", str(dim))
        if fingerprint:
            self._set_meta(cursor, "model", fingerprint)

    # --- operations ---------------------------------------------------------------------------------
    def enroll(
        self, name: str, embeddings: np.ndarray, utterances: Sequence[str], fingerprint: Optional[str] = None
    ) -> int:
        """Add utterance embeddings ``[N, D]`` to speaker ``name`` (created if new); returns its utterance count."""
        name = speaker_name(name)
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[0] != len(utterances) or embeddings.shape[0] == 0:
            raise SpeakerDatabaseError(
                f"need one embedding per utterance: {len(utterances)} utterances, "
                f"embeddings of shape {embeddings.shape}"
            )
        units = np.stack([normalised(e, f"utterance {u}") for e, u in zip(embeddings, utterances)])
        now = time.time()

        def work(cursor):
            revision = self._next_revision(cursor)
            self._check_model(cursor, fingerprint, embeddings.shape[1])
            row = self._execute(cursor, "SELECT id, count, mean FROM speakers WHERE name=?", (name,)).fetchone()
            if row is None:
                count, mean = 0, np.zeros(embeddings.shape[1])
                speaker_id = int(self._new_ids(cursor, 1)[0])
                self._execute(
                    cursor,
                    "INSERT INTO speakers(id, name, count, mean, created, updated, revision) "
                    "VALUES (?, ?, 0, ?, ?, ?, ?)",
                    (speaker_id, name, self._blob(mean_bytes(mean)), now, now, revision),
                )
            else:
                speaker_id, count = int(row[0]), int(row[1])
                mean = mean_of(row[2])
            for unit in units:
                count += 1
                mean += (unit - mean) / count
            self._executemany(
                cursor,
                "INSERT INTO utterances(speaker_id, utterance, embedding, added) VALUES (?, ?, ?, ?)",
                [(speaker_id, str(u), self._blob(e.tobytes()), now) for e, u in zip(embeddings, utterances)],
            )
            self._execute(
                cursor,
                "UPDATE speakers SET count=?, mean=?, updated=?, revision=? WHERE id=?",
                (count, self._blob(mean_bytes(mean)), now, revision, speaker_id),
            )
            return count

        return self._write(work)

    def remove(self, name: str) -> int:
        """Delete speaker ``name`` and its utterances; returns how many utterances went."""
        given = str(name).strip()

        def work(cursor):
            revision = self._next_revision(cursor)
            name = self._stored_name(cursor, given)
            row = self._execute(cursor, "SELECT id, count FROM speakers WHERE name=?", (name,)).fetchone()
            if row is None:
                raise UnknownSpeakerError(
                    given, f"no speaker named {given!r} in {self.label}{self._known_hint(cursor)}"
                )
            self._execute(cursor, "DELETE FROM utterances WHERE speaker_id=?", (row[0],))
            self._execute(cursor, "DELETE FROM speakers WHERE id=?", (row[0],))
            self._execute(
                cursor,
                "INSERT INTO removed(speaker_id, revision) VALUES (?, ?) "
                "ON CONFLICT (speaker_id) DO UPDATE SET revision = excluded.revision",
                (row[0], revision),
            )
            return int(row[1])

        return self._write(work)

    def _known_hint(self, cursor) -> str:
        names = [r[0] for r in self._execute(cursor, "SELECT name FROM speakers ORDER BY name LIMIT 10")]
        return f"; enrolled: {', '.join(map(printable, names))}" if names else "; the database has no speakers"

    def speakers(self, limit: Optional[int] = None, after: Optional[str] = None) -> List[Speaker]:
        """Enrolled speakers, by name: every one, or a page (see :func:`redimnet.speakers.store.check_page`).

        ``limit``: at most this many; ``after``: only names that sort after this
        one (the last name of the previous page), so a million speakers are
        read a page at a time, each page one indexed range scan.
        """
        check_page(limit, after)
        statement = "SELECT name, count, created, updated FROM speakers"
        parameters: List[Any] = []
        if after is not None:
            statement += " WHERE name > ?"
            parameters.append(str(after))
        statement += " ORDER BY name"
        if limit is not None:
            statement += " LIMIT ?"
            parameters.append(int(limit))
        with self._reading() as cursor:
            rows = self._execute(cursor, statement, parameters).fetchall()
        return [Speaker(r[0], int(r[1]), float(r[2]), float(r[3])) for r in rows]

    def count(self) -> Tuple[int, int]:
        """``(speakers, recordings)`` enrolled."""
        with self._reading() as cursor:
            row = self._execute(cursor, "SELECT COUNT(*), COALESCE(SUM(count), 0) FROM speakers").fetchone()
        return int(row[0]), int(row[1])

    def has_speaker(self, name: str) -> bool:
        """Whether ``name`` is enrolled."""
        with self._reading() as cursor:
            return self._execute(cursor, *_by_name(self._stored_name(cursor, name))).fetchone() is not None

    def utterances(self, name: str) -> Tuple[List[str], np.ndarray]:
        """``(utterance ids, embeddings [N, D])`` enrolled for ``name``."""
        with self._reading() as cursor:
            rows = self._execute(
                cursor,
                "SELECT u.utterance, u.embedding FROM utterances u JOIN speakers s ON s.id = u.speaker_id "
                "WHERE s.name=? ORDER BY u.id",
                (self._stored_name(cursor, name),),
            ).fetchall()
        if not rows:
            raise UnknownSpeakerError(name, f"no speaker named {name!r} in {self.label}")
        return [r[0] for r in rows], np.stack([np.frombuffer(bytes(r[1]), dtype=np.float32) for r in rows])

    def utterance_embeddings(self, names: Sequence[str]) -> Dict[str, np.ndarray]:
        """The enrolled embeddings ``[N, D]`` of each of ``names`` that is enrolled, read in one snapshot with
        one query per 500 names (a back-end's shortlist costs one round trip to a database server, not one
        per speaker); names not enrolled (e.g. removed by another client a moment before) are left out."""
        found: Dict[str, List[np.ndarray]] = {}
        with self._reading() as cursor:
            asked = {self._stored_name(cursor, name): name for name in names}
            stored = list(asked)
            for start in range(0, len(stored), 500):
                chunk = stored[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                rows = self._execute(
                    cursor,
                    "SELECT s.name, u.embedding FROM utterances u JOIN speakers s ON s.id = u.speaker_id "
                    f"WHERE s.name IN ({marks}) ORDER BY s.name, u.id",
                    chunk,
                ).fetchall()
                for name, blob in rows:
                    found.setdefault(asked[name], []).append(np.frombuffer(bytes(blob), dtype=np.float32))
        return {name: np.stack(rows) for name, rows in found.items()}

    def speaker_model(self, name: str) -> np.ndarray:
        """The stored running mean of ``name``'s normalised utterance embeddings."""
        with self._reading() as cursor:
            row = self._execute(
                cursor, "SELECT mean FROM speakers WHERE name=?", (self._stored_name(cursor, name),)
            ).fetchone()
        if row is None:
            raise UnknownSpeakerError(name, f"no speaker named {name!r} in {self.label}")
        return mean_of(row[0])

    # --- identification -----------------------------------------------------------------------------
    def _speaker_index(self, store_id: str) -> SpeakerIndex:
        if self._index is None or self._index.store_id not in (None, store_id):
            if self._index_key is not None:
                release_index(self._index_key)
            key, file = self._index_location(store_id)
            self._index_key, self._index = key, shared_index(key, file)
        return self._index

    def _checked_meta(self, cursor, dim: int, fingerprint: Optional[str]) -> Dict[str, str]:
        return self._check_query(
            dict(self._execute(cursor, "SELECT key, value FROM meta").fetchall()), dim, fingerprint
        )

    def _check_query(self, given: Dict[str, Optional[str]], dim: int, fingerprint: Optional[str]) -> Dict[str, str]:
        """The store's settings ``given`` (without unset ones) when a query of ``dim`` dimensions and model
        ``fingerprint`` may be scored against the store, else :class:`SpeakerDatabaseError` saying why."""
        meta = {key: value for key, value in given.items() if value is not None}
        if "dim" in meta and int(meta["dim"]) != dim:
            raise SpeakerDatabaseError(
                f"{self.label} holds {meta['dim']}-dimensional embeddings, the query has "
                f"{dim}; use the model the database was built with"
            )
        if fingerprint and meta.get("model") and meta["model"] != fingerprint:
            raise SpeakerDatabaseError(
                f"{self.label} was built with another model (fingerprint {meta['model']}, "
                f"this one is {fingerprint}); use the same model"
            )
        return meta

    def identify(
        self, embedding: np.ndarray, top: int = 5, fingerprint: Optional[str] = None
    ) -> List[Tuple[str, float]]:
        """The ``top`` best-matching speakers as ``(name, cosine score)``, best first.

        Candidates come from the speaker index (exact below
        :data:`redimnet.speakers.vectors.APPROXIMATE_FROM` speakers, HNSW above
        it with ``redimnet[search]``); their scores are computed from the stored
        means, in the same snapshot of the store.
        """
        if top < 1:
            raise SpeakerDatabaseError(f"--top must be at least 1, got {top}")
        query = normalised(embedding, "query")
        answer = self._identify_in_one_read(query, top, fingerprint)
        if answer is not None:
            return answer
        with self._reading() as cursor:
            meta = self._checked_meta(cursor, query.shape[0], fingerprint)
            state = StoreState(meta.get("store_id", ""), int(meta.get("revision", 0)))
            index = self._speaker_index(state.store_id)
            source = _Source(self, cursor)
            with index.lock:
                index.sync(source, state)
                size = len(index)
                if size == 0:
                    raise EmptyStoreError(f"{self.label} has no enrolled speakers; use redimnet enroll first")
                want = min(top, size)
                k = _candidates(want, size)
                while True:
                    keys, _ = index.search(query[None, :].astype(np.float32), k, expansion=HNSW_EXPANSION_IDENTIFY)
                    found = self._score(cursor, keys[0][keys[0] >= 0], query)
                    if len(found) >= want or k >= size:
                        break
                    k = min(size, 4 * k)
        return _best(found, top)

    def _identify_in_one_read(
        self, query: np.ndarray, top: int, fingerprint: Optional[str]
    ) -> Optional[List[Tuple[str, float]]]:
        """Identification with one read of the store, when the dialect can read the store's state and the
        candidates' rows in one snapshot (:meth:`_state_and_rows`) and the index is already up to date: the
        index is searched first, then the store's revision and the candidates' rows are read together; the
        answer stands only if that snapshot's revision is the one the index held (so the candidates were
        the snapshot's speakers) and the search found as many speakers as wanted.  None: take the full path."""
        index = self._index
        if index is None or not self.reads_state_with_rows:
            return None
        searched = index.search_as_is(
            query[None, :].astype(np.float32),
            lambda size: _candidates(min(top, size), size),
            expansion=HNSW_EXPANSION_IDENTIFY,
        )
        if searched is None:
            return None
        keys, store_id, revision, size = searched
        read = self._state_and_rows(keys[keys >= 0])
        if read is None:
            return None
        meta, rows = read
        if meta.get("store_id") != store_id or int(meta.get("revision") or 0) != revision:
            return None  # the store moved on (or is another one): sync first
        self._check_query(meta, query.shape[0], fingerprint)
        found = self._scored(rows, query)
        if len(found) < min(top, size):
            return None  # the search found fewer than wanted: the full path widens it
        return _best(found, top)

    reads_state_with_rows = False
    """Whether the dialect implements :meth:`_state_and_rows` (else identification takes the full path: a read
    transaction, cheap where the database is a file in the process)."""

    def _state_and_rows(self, keys: np.ndarray) -> Optional[Tuple[Dict[str, Optional[str]], List[tuple]]]:
        """``(meta, rows (id, name, mean) of keys)`` read in ONE snapshot with one statement, or None when it
        cannot be read so (then the full path answers)."""
        return None

    def _score(self, cursor, keys: np.ndarray, query: np.ndarray) -> List[Tuple[str, float, int]]:
        """``(name, exact cosine, id)`` of those ``keys`` that exist in this snapshot."""
        return self._scored(self._rows_by_id(cursor, "id, name, mean", keys), query)

    def _scored(self, rows: Sequence[tuple], query: np.ndarray) -> List[Tuple[str, float, int]]:
        """``(name, exact cosine, id)`` of rows ``(id, name, mean)``."""
        if not rows:
            return []
        means = np.frombuffer(b"".join(bytes(r[2]) for r in rows), dtype=MEAN_DTYPE)
        means = means.reshape(len(rows), -1).astype(np.float64)
        try:
            scores = l2_normalize(means, "speaker model", dtype=np.float64) @ query
        except ScoringError as error:
            raise SpeakerDatabaseError(f"{self.label}: {error}") from None
        return [(r[1], float(s), int(r[0])) for r, s in zip(rows, scores)]

    def _rows_by_id(self, cursor, columns: str, keys: np.ndarray) -> List[tuple]:
        rows: List[tuple] = []
        ids = [int(k) for k in np.asarray(keys).reshape(-1).tolist()]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows += self._execute(cursor, f"SELECT {columns} FROM speakers WHERE id IN ({marks})", chunk).fetchall()
        return rows

    def prepare_index(self) -> Optional[str]:
        """Load, check and bring the speaker index up to date now (a server calls it before serving);
        returns its kind (``"exact"``/``"hnsw"``), or None while the store is empty."""
        with self._reading() as cursor:
            meta: Dict[str, str] = dict(self._execute(cursor, "SELECT key, value FROM meta").fetchall())
            if "dim" not in meta:
                return None
            state = StoreState(meta.get("store_id", ""), int(meta.get("revision", 0)))
            index = self._speaker_index(state.store_id)
            index.sync(_Source(self, cursor), state, wait=True)
            return index.kind

    def save_index(self) -> None:
        """Save the speaker index now (when it is large enough to be worth saving)."""
        if self._index is not None:
            self._index.save()

    def check(self) -> bool:
        """True when every speaker's count matches its utterances (and the dialect's own check passes)."""
        with self._reading() as cursor:
            mismatched = self._execute(
                cursor,
                "SELECT COUNT(*) FROM speakers s WHERE s.count != "
                "(SELECT COUNT(*) FROM utterances u WHERE u.speaker_id = s.id)",
            ).fetchone()[0]
        return int(mismatched) == 0

    # --- bulk ---------------------------------------------------------------------------------------
    def add_speakers(
        self,
        names: Sequence[str],
        sums: np.ndarray,
        counts: np.ndarray,
        speaker_of: np.ndarray,
        utterances: Sequence[str],
        embeddings: np.ndarray,
        fingerprint: Optional[str] = None,
        none_stored_at: Optional[int] = None,
    ) -> Tuple[int, int, Optional[int]]:
        """Add many speakers' recordings in one transaction (see :mod:`redimnet.speakers.bulk`).

        ``names`` (unique, already checked with :func:`speaker_name`), ``sums``
        ``[S, D]`` of their recordings' unit vectors and ``counts`` ``[S]`` of
        recordings; recording ``j`` (id ``utterances[j]``, ``embeddings[j]``)
        belongs to speaker ``speaker_of[j]``.  A name already enrolled gets the
        recordings added, as :meth:`enroll` would.

        Names are looked up in the store unless it holds nobody, or
        ``none_stored_at`` is the revision it had just before this transaction
        (the caller knows that none of ``names`` was stored at that revision:
        the previous batch of one import into an empty store; any other write
        in between moves the revision on, and then they are looked up).

        Returns ``(new speakers, updated speakers, revision)``: ``revision`` is
        this transaction's when the store held nobody before it (or the chain
        of ``none_stored_at`` held), so that the next batch of names distinct
        from all earlier ones can pass it as ``none_stored_at``; else None.
        """
        sums = np.asarray(sums, dtype=np.float64)
        counts = np.asarray(counts, dtype=np.int64)
        embeddings = np.asarray(embeddings, dtype=np.float32)
        now = time.time()

        def work(cursor):
            revision = self._next_revision(cursor)
            self._check_model(cursor, fingerprint, sums.shape[1])
            known_absent = (none_stored_at is not None and none_stored_at == revision - 1) or (
                self._execute(cursor, "SELECT 1 FROM speakers LIMIT 1").fetchone() is None
            )
            existing = {}
            for start in range(0, 0 if known_absent else len(names), 500):
                chunk = list(names[start : start + 500])
                marks = ", ".join("?" * len(chunk))
                for row in self._execute(
                    cursor, f"SELECT name, id, count, mean FROM speakers WHERE name IN ({marks})", chunk
                ).fetchall():
                    existing[row[0]] = row
            ids = np.empty(len(names), dtype=np.int64)
            new = [i for i, name in enumerate(names) if name not in existing] if existing else list(range(len(names)))
            ids[new] = self._new_ids(cursor, len(new))
            updated_rows = []
            position = {name: i for i, name in enumerate(names)} if existing else {}
            for name, row in existing.items():
                i = position[name]
                ids[i] = int(row[1])
                old_count = int(row[2])
                total = old_count + int(counts[i])
                mean = (mean_of(row[3]) * old_count + sums[i]) / total
                updated_rows.append((total, self._blob(mean_bytes(mean)), now, revision, int(ids[i])))
            means = (sums[new] / counts[new, None]).astype(MEAN_DTYPE)
            blob = self._blob
            self._insert_speakers(
                cursor,
                [
                    (key, names[i], count, blob(mean), now, now, revision)
                    for key, i, count, mean in zip(ids[new].tolist(), new, counts[new].tolist(), row_bytes(means))
                ],
            )
            if updated_rows:
                self._executemany(
                    cursor, "UPDATE speakers SET count=?, mean=?, updated=?, revision=? WHERE id=?", updated_rows
                )
            owners = ids[np.asarray(speaker_of, dtype=np.int64)].tolist()
            self._insert_utterances(
                cursor,
                [
                    (owner, utt, blob(vector), now)
                    for owner, utt, vector in zip(owners, utterances, row_bytes(embeddings))
                ],
            )
            return len(new), len(updated_rows), (revision if known_absent else None)

        return self._write(work)

    def _insert_speakers(self, cursor, rows: List[tuple]) -> None:
        self._executemany(
            cursor,
            "INSERT INTO speakers(id, name, count, mean, created, updated, revision) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    def _insert_utterances(self, cursor, rows: List[tuple]) -> None:
        self._executemany(
            cursor, "INSERT INTO utterances(speaker_id, utterance, embedding, added) VALUES (?, ?, ?, ?)", rows
        )


def _candidates(want: int, size: int) -> int:
    """How many candidates the index is asked for when ``want`` speakers are (their exact scores decide)."""
    return min(size, max(4 * want, want + 16))


def _best(found: List[Tuple[str, float, int]], top: int) -> List[Tuple[str, float]]:
    """The ``top`` best ``(name, score)``, ties by id."""
    found.sort(key=lambda row: (-row[1], row[2]))
    return [(name, score) for name, score, _ in found[:top]]


class _Source:
    """The store as the speaker index sees it, inside one read transaction (:class:`~.index.ChangeSource`)."""

    def __init__(self, store: SqlSpeakerStore, cursor):
        self.store, self.cursor = store, cursor

    def _query(self, statement: str, parameters: Sequence[Any] = ()):
        return self.store._execute(self.cursor, statement, parameters)

    def state(self, count: bool = False) -> StoreState:
        meta = dict(self._query("SELECT key, value FROM meta").fetchall())
        speakers = int(self._query("SELECT COUNT(*) FROM speakers").fetchone()[0]) if count else None
        dim = int(meta["dim"]) if "dim" in meta else None
        return StoreState(meta.get("store_id", ""), int(meta.get("revision", 0)), speakers, dim)

    def removed_since(self, revision: int) -> np.ndarray:
        rows = self._query("SELECT speaker_id FROM removed WHERE revision > ?", (int(revision),)).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def changed_since(self, revision: int) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
        for rows in self.store._stream(
            # in id order (the order speakers were first enrolled): a graph is built in the same order from every
            # store and every read (PostgreSQL's sequential scans may start mid-table, where another scan is)
            "SELECT id, mean FROM speakers WHERE revision > ? ORDER BY id",
            (int(revision),),
            READ_BLOCK,
        ):
            keys = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            means = np.frombuffer(b"".join(bytes(r[1]) for r in rows), dtype=MEAN_DTYPE).reshape(len(rows), -1)
            yield keys, _unit_rows(means)

    def vectors_of(self, keys: np.ndarray) -> Dict[int, np.ndarray]:
        rows = self.store._rows_by_id(self.cursor, "id, mean", keys)
        return {int(r[0]): _unit_rows(mean_of(r[1])[None, :])[0] for r in rows}

    def all_keys(self) -> np.ndarray:
        rows = self._query("SELECT id FROM speakers").fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)
