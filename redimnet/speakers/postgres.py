"""The speaker store in PostgreSQL (psycopg 3; the optional extra ``redimnet[postgres]``).

Selected by a ``postgresql://`` (or ``postgres://``) URL wherever ``--db``
takes a file (:func:`redimnet.speakers.stores.open_store`).  Several processes
on several machines can share one database: every write is one transaction
that first takes the row lock of the store's revision counter (so writes are
serialised and committed in revision order), and every read runs in one
``REPEATABLE READ`` snapshot.  Each process keeps its own speaker index in
memory and brings it up to date from the revision counter before each
search, so an enrolment or deletion acknowledged by any process is seen by
the next identification in every other one.  The index is saved in a local
cache folder (``index_dir``, default ``$REDIMNET_INDEX_DIR`` or
``~/.cache/redimnet/speaker-index``) under the store's random identity.

Passwords: put them in ``~/.pgpass`` or ``$PGPASSWORD`` (which libpq reads),
not in the URL, where other users of the machine can see the command line.
Messages name the store by its URL without the password.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .._utils.optional import require
from .index import IndexFile
from .sql import SpeakerDatabaseError, SqlSpeakerStore

__all__ = ["PostgresSpeakerStore", "is_postgres_url", "redacted_url", "default_index_dir"]

SCHEMES = ("postgresql://", "postgres://")

_SCHEMA = [
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE SEQUENCE speaker_ids",
    """CREATE TABLE speakers (
        id BIGINT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        count INTEGER NOT NULL,
        mean BYTEA NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        updated DOUBLE PRECISION NOT NULL,
        revision BIGINT NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE utterances (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        speaker_id BIGINT NOT NULL REFERENCES speakers(id) ON DELETE CASCADE,
        utterance TEXT NOT NULL,
        embedding BYTEA NOT NULL,
        added DOUBLE PRECISION NOT NULL
    )""",
    "CREATE INDEX utterances_by_speaker ON utterances(speaker_id)",
    "CREATE INDEX speakers_by_revision ON speakers(revision)",
    "CREATE TABLE removed (speaker_id BIGINT PRIMARY KEY, revision BIGINT NOT NULL)",
    "CREATE INDEX removed_by_revision ON removed(revision)",
]

_STATE_KEYS = ("store_id", "revision", "dim", "model")
_STATE_AND_ROWS = (
    "SELECT "
    + ", ".join(f"(SELECT value FROM meta WHERE key = '{key}')" for key in _STATE_KEYS)
    + ", s.id, s.name, s.mean FROM (SELECT 1) AS one LEFT JOIN speakers s ON s.id = ANY(%s::bigint[])"
)
"""The store's state and the rows of some speakers, in one statement (so in one snapshot, one round trip)."""

_SCHEMA_LOCK = 0x52444E53  # pg_advisory_xact_lock key: one process at a time creates or migrates the schema


def is_postgres_url(location: object) -> bool:
    """True when ``location`` is a ``postgresql://`` or ``postgres://`` URL."""
    return isinstance(location, str) and location.lower().startswith(SCHEMES)


def redacted_url(url: str) -> str:
    """``url`` without its password (for messages and logs)."""
    scheme, _, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        credentials, _, host = authority.rpartition("@")
        user = credentials.split(":", 1)[0]
        authority = f"{user}@{host}" if user else host
    return f"{scheme}://{authority}{slash}{path.split('?', 1)[0]}"


def default_index_dir() -> Path:
    """Where PostgreSQL stores' indexes are cached: ``$REDIMNET_INDEX_DIR``, else ``$XDG_CACHE_HOME`` or
    ``~/.cache``, then ``redimnet/speaker-index``."""
    chosen = os.environ.get("REDIMNET_INDEX_DIR")
    if chosen:
        return Path(chosen)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "redimnet" / "speaker-index"


class PostgresSpeakerStore(SqlSpeakerStore):
    """Enrolled speakers in a PostgreSQL database (one connection).  Use as a context manager or call
    :meth:`close`.

    ``create=False`` refuses a database without the speaker tables instead of
    creating them.  ``index_dir``: where the speaker index is cached (see the
    module's description).
    """

    placeholder = "%s"
    reads_state_with_rows = True

    def __init__(
        self,
        url: str,
        create: bool = True,
        index_dir: Optional[os.PathLike] = None,
        connect_timeout: float = 10.0,
    ):
        psycopg = require("psycopg", "a postgresql:// speaker database")
        self.url = url
        self.label = redacted_url(url)
        self.index_dir = Path(index_dir) if index_dir is not None else default_index_dir()
        self._create = create
        try:
            self.connection = psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(connect_timeout)))
        except psycopg.Error as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise SpeakerDatabaseError(f"cannot connect to the speaker database {self.label}: {reason}") from None
        try:
            self._open()
        except psycopg.Error as error:
            self.connection.close()
            raise SpeakerDatabaseError(f"{self.label} is not a usable speaker database: {error}") from None

    # --- the PostgreSQL dialect ---------------------------------------------------------------------
    def _begin_write(self, cursor) -> None:
        cursor.execute("BEGIN")

    def _begin_read(self, cursor) -> None:
        cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def _create_schema_statements(self) -> List[str]:
        return list(_SCHEMA)

    def _migrations(self) -> Dict[int, Callable[[Any], None]]:
        return {}  # the PostgreSQL store starts at schema version 2

    def _create_or_migrate(self, cursor) -> None:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        if not self._create and not self._table_exists(cursor, "meta"):
            raise SpeakerDatabaseError(
                f"{self.label} has no speaker tables; enrol a speaker first (redimnet enroll NAME FILE... --db URL)"
            )
        super()._create_or_migrate(cursor)

    def _table_exists(self, cursor, table: str) -> bool:
        return cursor.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is not None

    def _new_ids(self, cursor, count: int) -> np.ndarray:
        if count == 0:
            return np.empty(0, dtype=np.int64)
        rows = cursor.execute("SELECT nextval('speaker_ids') FROM generate_series(1, %s)", (int(count),)).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def _index_location(self, store_id: str) -> Tuple[str, Optional[IndexFile]]:
        return f"postgresql:{store_id}", IndexFile(self.index_dir / f"{store_id}.index")

    def _state_and_rows(self, keys: np.ndarray) -> Optional[Tuple[Dict[str, Optional[str]], List[tuple]]]:
        # one statement is one snapshot (also in autocommit): the store's state and the rows agree; the ids go
        # as one array literal (cheaper to send than a list adapted element by element)
        ids = "{" + ",".join(str(int(k)) for k in np.asarray(keys).reshape(-1).tolist()) + "}"
        with self.connection.cursor(binary=True) as cursor:
            rows = cursor.execute(_STATE_AND_ROWS, (ids,)).fetchall()
        first = rows[0]
        meta = dict(zip(_STATE_KEYS, first[: len(_STATE_KEYS)]))
        found = [row[len(_STATE_KEYS) :] for row in rows if row[len(_STATE_KEYS)] is not None]
        return meta, found

    def _stream(self, statement: str, parameters: Sequence[Any], size: int) -> Iterator[List[tuple]]:
        with self.connection.cursor(name=f"stream_{secrets.token_hex(4)}", binary=True) as cursor:
            cursor.itersize = size
            cursor.execute(self._sql(statement), tuple(parameters))
            while True:
                rows = cursor.fetchmany(size)
                if not rows:
                    return
                yield rows

    def _insert_speakers(self, cursor, rows: List[tuple]) -> None:
        with cursor.copy(
            "COPY speakers (id, name, count, mean, created, updated, revision) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int8", "text", "int4", "bytea", "float8", "float8", "int8"])
            for row in rows:
                copy.write_row(row)

    def _insert_utterances(self, cursor, rows: List[tuple]) -> None:
        with cursor.copy(
            "COPY utterances (speaker_id, utterance, embedding, added) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int8", "text", "bytea", "float8"])
            for row in rows:
                copy.write_row(row)
