"""What every SQL speaker store shares below its operations: the schema, its migrations, the naming policy.

:class:`SqlStoreBase` is the part of :class:`redimnet.speakers.sql.SqlSpeakerStore`
that talks to the database as a database: the hooks a dialect (SQLite,
PostgreSQL) fills in, one transaction per write, consistent read snapshots,
the ``meta`` table and its revision counter, creating the schema or migrating
it to :data:`SCHEMA_VERSION`, and bringing names stored before the naming
policy to their filed form (:func:`speaker_name`).  The operations (enrol,
remove, identify, bulk import) and the speaker index live in
:mod:`redimnet.speakers.sql`.
"""

from __future__ import annotations

import contextlib
import json
import uuid
import warnings
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .._utils.names import UnsafeNameError, check_speaker_name, spelled
from ..errors import STORE, UNKNOWN_SPEAKER, RedimnetError

__all__ = [
    "SpeakerDatabaseError",
    "EmptyStoreError",
    "UnknownSpeakerError",
    "SqlStoreBase",
    "SCHEMA_VERSION",
    "NAME_POLICY",
    "speaker_name",
]

SCHEMA_VERSION = 2
"""Version 1: speakers, utterances, meta.  Version 2 adds the revision counter, ``speakers.revision`` and
``removed`` (what the speaker index follows)."""

NAME_POLICY = "nfc-visible-1"
"""Recorded in ``meta`` once every stored name is in the form :func:`redimnet._utils.names.check_speaker_name`
gives (stores written before the policy are brought to it when opened)."""


class SpeakerDatabaseError(RedimnetError):
    """The speaker database cannot be opened or does not allow the operation."""

    category = STORE


class EmptyStoreError(SpeakerDatabaseError):
    """Identification in a store without speakers."""


class UnknownSpeakerError(SpeakerDatabaseError):
    """No speaker of that name is enrolled (``name`` says which; e.g. another client just removed it)."""

    category = UNKNOWN_SPEAKER

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name


def speaker_name(name: object) -> str:
    """The name a store files a speaker under: :func:`redimnet._utils.names.check_speaker_name` (surrounding spaces
    dropped, NFC, only visible characters), the one policy every store applies."""
    text = str(name).strip()
    if not text:
        raise SpeakerDatabaseError("a speaker name cannot be empty")
    return check_speaker_name(text)


def _by_name(name: str) -> Tuple[str, Tuple[str]]:
    """The query that finds a speaker row by its exact stored name."""
    return "SELECT 1 FROM speakers WHERE name=?", (name,)


class SqlStoreBase:
    """A speaker store's database below its operations; a dialect subclass connects and supplies what differs.

    Dialects set :attr:`label` (how messages name the store) and ``self.connection``;
    they implement :meth:`_begin_write`, :meth:`_begin_read`, :meth:`_sql`,
    :meth:`_create_schema_statements`, :meth:`_migrations`, :meth:`_new_ids`,
    :meth:`_stream` and :meth:`_table_exists`.
    """

    label: str
    connection: Any
    placeholder = "?"

    # --- dialect hooks ------------------------------------------------------------------------------
    def _begin_write(self, cursor) -> None:
        raise NotImplementedError

    def _begin_read(self, cursor) -> None:
        raise NotImplementedError

    def _sql(self, statement: str) -> str:
        """``statement`` (written with ``?`` placeholders) in the dialect's parameter style."""
        return statement if self.placeholder == "?" else statement.replace("?", self.placeholder)

    def _create_schema_statements(self) -> List[str]:
        raise NotImplementedError

    def _migrations(self) -> Dict[int, Callable[[Any], None]]:
        """``{version: migrate(cursor)}``: each brings the schema from ``version`` to ``version + 1``."""
        raise NotImplementedError

    def _new_ids(self, cursor, count: int) -> np.ndarray:
        """``count`` fresh speaker ids (inside a write transaction)."""
        raise NotImplementedError

    def _blob(self, data: bytes) -> Any:
        return data

    def _stream(self, statement: str, parameters: Sequence[Any], size: int) -> Iterator[List[tuple]]:
        """The rows of a query in blocks of ``size``, inside the current read transaction."""
        raise NotImplementedError

    # --- plumbing -----------------------------------------------------------------------------------
    def _execute(self, cursor, statement: str, parameters: Sequence[Any] = ()):
        return cursor.execute(self._sql(statement), tuple(parameters))

    def _executemany(self, cursor, statement: str, rows) -> None:
        cursor.executemany(self._sql(statement), rows)

    def _write(self, work):
        """Run ``work(cursor)`` in one write transaction; roll back on any error."""
        cursor = self.connection.cursor()
        self._begin_write(cursor)
        try:
            result = work(cursor)
        except BaseException:
            with contextlib.suppress(Exception):
                cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")
        return result

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Any]:
        """A cursor in one read transaction: a consistent snapshot while other processes write."""
        cursor = self.connection.cursor()
        self._begin_read(cursor)
        try:
            yield cursor
        finally:
            with contextlib.suppress(Exception):
                cursor.execute("COMMIT")

    def _create_or_migrate(self, cursor) -> None:
        exists = self._table_exists(cursor, "meta")
        if not exists:
            for statement in self._create_schema_statements():
                cursor.execute(statement)
            self._set_meta(cursor, "schema_version", str(SCHEMA_VERSION))
            self._set_meta(cursor, "revision", "0")
            self._set_meta(cursor, "store_id", uuid.uuid4().hex)
            self._set_meta(cursor, "names", NAME_POLICY)
            return
        version = int(self._meta_value(cursor, "schema_version") or 0)
        if version > SCHEMA_VERSION:
            raise SpeakerDatabaseError(
                f"{self.label} has schema version {version}, written by a newer redimnet; this one reads "
                f"versions up to {SCHEMA_VERSION}: upgrade redimnet"
            )
        migrations = self._migrations()
        while version < SCHEMA_VERSION:
            if version not in migrations:
                raise SpeakerDatabaseError(
                    f"{self.label} has schema version {version}, which this redimnet cannot read"
                )
            migrations[version](cursor)
            version += 1
            self._set_meta(cursor, "schema_version", str(version), replace=True)
        if self._meta_value(cursor, "store_id") is None:
            self._set_meta(cursor, "store_id", uuid.uuid4().hex)
        if self._meta_value(cursor, "revision") is None:
            self._set_meta(cursor, "revision", "0")
        self._normalise_names(cursor)

    def _normalise_names(self, cursor) -> None:
        """Bring names stored before the naming policy to their policy form, once; report those that cannot be.

        A name is renamed to its NFC form unless that form is already taken
        (a composed and a decomposed "José" enrolled separately) or the name
        holds characters the policy now refuses (invisible or formatting
        ones): those stay as stored, reachable by their exact name (to remove
        them), and are reported with a warning at every opening until they
        are gone.
        """
        if self._meta_value(cursor, "names") == NAME_POLICY:
            return
        pending = self._meta_value(cursor, "name_problems")
        if pending is None:
            names = [row[0] for row in self._execute(cursor, "SELECT name FROM speakers").fetchall()]
        else:
            names = [n for n in json.loads(pending) if self._execute(cursor, *_by_name(n)).fetchone() is not None]
        taken = set(names) if pending is None else None
        problems, revision = [], None
        for name in names:
            try:
                form = check_speaker_name(name)
            except UnsafeNameError as error:
                text = str(error).split("; ")[0]  # "speaker name 'NAME' contains ..." or another refusal
                problems.append((name, text[text.rfind(" contains ") + 1 :] if " contains " in text else text))
                continue
            if form == name:
                continue
            clash = form in taken if taken is not None else self._execute(cursor, *_by_name(form)).fetchone()
            if clash:
                problems.append((name, f"is the same name as {spelled(form)} once normalised (NFC)"))
                continue
            if revision is None:
                revision = self._next_revision(cursor)
            self._execute(cursor, "UPDATE speakers SET name=?, revision=? WHERE name=?", (form, revision, name))
            if taken is not None:
                taken.discard(name)
                taken.add(form)
        if not problems:
            self._set_meta(cursor, "names", NAME_POLICY, replace=True)
            self._execute(cursor, "DELETE FROM meta WHERE key='name_problems'")
            return
        self._set_meta(cursor, "name_problems", json.dumps([name for name, _ in problems]), replace=True)
        shown = "; ".join(f"{spelled(name)} {why}" for name, why in problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        warnings.warn(
            f"{self.label}: {len(problems)} speaker name(s) stored before names were normalised cannot be: "
            f"{shown}{more}. They stay reachable by their exact stored name: remove them (redimnet speakers "
            "remove NAME) and enrol the speaker again under a visible name",
            stacklevel=2,
        )

    def _stored_name(self, cursor, name: object) -> str:
        """The stored name ``name`` refers to: its policy form, or the exact name when only that is stored
        (a name kept from before the naming policy, see :meth:`_normalise_names`)."""
        text = str(name).strip()
        try:
            form = speaker_name(text)
        except (UnsafeNameError, SpeakerDatabaseError):
            return text
        if form != text and self._execute(cursor, *_by_name(text)).fetchone() is not None:
            return text
        return form

    def _table_exists(self, cursor, table: str) -> bool:
        raise NotImplementedError

    def _meta_value(self, cursor, key: str) -> Optional[str]:
        row = self._execute(cursor, "SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, cursor, key: str, value: str, replace: bool = False) -> None:
        action = "UPDATE SET value = excluded.value" if replace else "NOTHING"
        self._execute(cursor, f"INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT (key) DO {action}", (key, value))

    def _next_revision(self, cursor) -> int:
        """Increment the revision counter (the first statement of every write) and return the new value."""
        self._execute(cursor, "UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) WHERE key = 'revision'")
        return int(self._meta_value(cursor, "revision") or 0)
