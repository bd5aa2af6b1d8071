"""An on-disk speaker database (SQLite): enrol speakers, identify who is talking.

Each speaker has a list of per-utterance embeddings and a running mean of
their L2-normalised versions (the speaker model).  Identification scores a
query embedding against the speaker models by cosine similarity, through the
speaker index (:mod:`redimnet.speakers.index`: exact while small, HNSW for
large stores with ``redimnet[search]``); the operations and the schema are
those of every SQL store (:mod:`redimnet.speakers.sql`), this module is the
SQLite dialect.

Safety: the database runs in WAL mode, so readers never block on a writer
and never see half a write; every change is one ``BEGIN IMMEDIATE`` ...
``COMMIT`` transaction, so a process killed mid-write leaves the database as
it was before that write.  The database remembers which model made its
embeddings (a fingerprint of the weights) and refuses embeddings from
another model, whose scores would be meaningless.  Speaker names follow the
one naming policy (:func:`redimnet._utils.names.check_speaker_name`: NFC, at most
:data:`redimnet._utils.names.MAX_NAME_LENGTH` (256) visible characters).
"""

import os
import sqlite3
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from .index import IndexFile
from .sql import SCHEMA_VERSION, Speaker, SpeakerDatabaseError, SqlSpeakerStore, UnknownSpeakerError

__all__ = ["SpeakerDatabase", "SpeakerDatabaseError", "UnknownSpeakerError", "Speaker", "SCHEMA_VERSION"]

PathLike = Union[str, os.PathLike]

PAGE_SIZE = 16384
"""Bytes per database page of a new store (SQLite's default is 4096).  A speaker's row (its mean) and a
recording's (its embedding) are each about 800 bytes for 192 dimensions; larger pages cut the CPU of a bulk
import by about a fifth (fewer pages to link, write to the log and copy back).  An existing store keeps its
page size."""

_SCHEMA = [
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE speakers (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        count INTEGER NOT NULL,
        mean BLOB NOT NULL,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        revision INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE utterances (
        id INTEGER PRIMARY KEY,
        speaker_id INTEGER NOT NULL REFERENCES speakers(id) ON DELETE CASCADE,
        utterance TEXT NOT NULL,
        embedding BLOB NOT NULL,
        added REAL NOT NULL
    )""",
    "CREATE INDEX utterances_by_speaker ON utterances(speaker_id)",
    "CREATE INDEX speakers_by_revision ON speakers(revision)",
    "CREATE TABLE removed (speaker_id INTEGER PRIMARY KEY, revision INTEGER NOT NULL)",
    "CREATE INDEX removed_by_revision ON removed(revision)",
]


def _float32(blob: bytes) -> bytes:
    return np.frombuffer(blob, dtype=np.float64).astype(np.float32).tobytes()


def _migrate_1_to_2(cursor) -> None:
    """Version 2: the revision counter, ``speakers.revision`` and ``removed`` (what the speaker index follows);
    means stored in float32."""
    cursor.connection.create_function("redimnet_float32", 1, _float32, deterministic=True)
    cursor.execute("UPDATE speakers SET mean = redimnet_float32(mean)")
    cursor.execute("ALTER TABLE speakers ADD COLUMN revision INTEGER NOT NULL DEFAULT 0")
    cursor.execute("CREATE INDEX speakers_by_revision ON speakers(revision)")
    cursor.execute("CREATE TABLE removed (speaker_id INTEGER PRIMARY KEY, revision INTEGER NOT NULL)")
    cursor.execute("CREATE INDEX removed_by_revision ON removed(revision)")


class SpeakerDatabase(SqlSpeakerStore):
    """A SQLite file of enrolled speakers.  Use as a context manager or call :meth:`close`.

    The speaker index is saved beside it as ``PATH.index`` (a header) and
    ``PATH.index.*`` (its data), once the store holds enough speakers for
    that to pay (:data:`redimnet.speakers.index.SAVE_FROM`).
    """

    def __init__(self, path: PathLike, create: bool = True, timeout: float = 30.0):
        self.path = Path(path)
        self.label = str(self.path)
        if not create and not self.path.exists():
            raise SpeakerDatabaseError(
                f"speaker database {self.path} does not exist; enrol a speaker first "
                "(redimnet enroll NAME FILE... --db PATH)"
            )
        if self.path.is_dir():
            raise SpeakerDatabaseError(f"{self.path} is a folder, not a speaker database file")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        new_file = not self.path.exists() or self.path.stat().st_size == 0
        try:
            self.connection = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None)
            if new_file:  # fixed when the file is created: before the first table, and before WAL mode
                self.connection.execute(f"PRAGMA page_size={PAGE_SIZE}")
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.execute("PRAGMA synchronous=FULL")
            self.connection.execute("PRAGMA foreign_keys=ON")
            self.connection.execute("PRAGMA cache_size=-65536")  # 64 MB: bulk imports touch many pages
            self._open()
        except sqlite3.DatabaseError as error:
            raise SpeakerDatabaseError(f"{self.path} is not a usable speaker database: {error}") from None

    # --- the SQLite dialect --------------------------------------------------------------------------
    def _begin_write(self, cursor) -> None:
        cursor.execute("BEGIN IMMEDIATE")

    def _begin_read(self, cursor) -> None:
        cursor.execute("BEGIN")

    def _create_schema_statements(self) -> List[str]:
        return list(_SCHEMA)

    def _migrations(self) -> Dict[int, Callable[[Any], None]]:
        return {1: _migrate_1_to_2}

    def _table_exists(self, cursor, table: str) -> bool:
        return (
            cursor.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)).fetchone() is not None
        )

    def _new_ids(self, cursor, count: int) -> np.ndarray:
        start = int(cursor.execute("SELECT COALESCE(MAX(id), 0) FROM speakers").fetchone()[0]) + 1
        return np.arange(start, start + count, dtype=np.int64)

    def _index_location(self, store_id: str) -> Tuple[str, Optional[IndexFile]]:
        path = self.path.resolve()
        return f"sqlite:{path}", IndexFile(path.with_name(path.name + ".index"))

    def _stream(self, statement: str, parameters, size: int) -> Iterator[List[tuple]]:
        cursor = self.connection.cursor()
        cursor.execute(self._sql(statement), tuple(parameters))
        while True:
            rows = cursor.fetchmany(size)
            if not rows:
                return
            yield rows

    def check(self) -> bool:
        """True when SQLite's integrity check passes and every speaker's count matches its utterances."""
        if self.connection.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            return False
        return super().check()
