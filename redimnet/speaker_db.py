"""An on-disk speaker database (SQLite): enrol speakers, identify who is talking.

Each speaker has a list of per-utterance embeddings and a running mean of
their L2-normalised versions (the speaker model).  Identification scores a
query embedding against every speaker model by cosine similarity.

Safety: the database runs in WAL mode, so readers never block on a writer
and never see half a write; every change is one ``BEGIN IMMEDIATE`` ...
``COMMIT`` transaction, so a process killed mid-write leaves the database as
it was before that write.  The database remembers which model made its
embeddings (a fingerprint of the weights) and refuses embeddings from
another model, whose scores would be meaningless.  Speaker names are at most
:data:`redimnet.names.MAX_NAME_LENGTH` (256) characters without control
characters (:func:`redimnet.names.check_speaker_name`).
"""

import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import RedimnetError
from .names import check_speaker_name, printable
from .similarity import ScoringError, l2_normalize

PathLike = Union[str, os.PathLike]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS speakers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    count INTEGER NOT NULL,
    mean BLOB NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS utterances (
    id INTEGER PRIMARY KEY,
    speaker_id INTEGER NOT NULL REFERENCES speakers(id) ON DELETE CASCADE,
    utterance TEXT NOT NULL,
    embedding BLOB NOT NULL,
    added REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS utterances_by_speaker ON utterances(speaker_id);
"""


class SpeakerDatabaseError(RedimnetError):
    """The speaker database cannot be opened or does not allow the operation."""


@dataclass(frozen=True)
class Speaker:
    """A row of ``speakers list``."""

    name: str
    utterances: int
    created: float
    updated: float


def model_fingerprint(model) -> str:
    """A short hash of a model's configuration and weights (embeddings of different models do not mix)."""
    digest = hashlib.sha256()
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        digest.update(json.dumps(config.to_dict(), sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return digest.hexdigest()[:16]


def _normalised(vector: np.ndarray, what: str) -> np.ndarray:
    try:
        return l2_normalize(np.asarray(vector).reshape(1, -1), dtype=np.float64)[0]
    except ScoringError as error:
        raise SpeakerDatabaseError(f"{what}: {error}") from None


class SpeakerDatabase:
    """A SQLite file of enrolled speakers.  Use as a context manager or call :meth:`close`."""

    def __init__(self, path: PathLike, create: bool = True, timeout: float = 30.0):
        self.path = Path(path)
        if not create and not self.path.exists():
            raise SpeakerDatabaseError(
                f"speaker database {self.path} does not exist; enrol a speaker first "
                "(redimnet enroll NAME FILE... --db PATH)"
            )
        if self.path.is_dir():
            raise SpeakerDatabaseError(f"{self.path} is a folder, not a speaker database file")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.connection = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None)
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.execute("PRAGMA synchronous=FULL")
            self.connection.execute("PRAGMA foreign_keys=ON")
            self._write(self._create_schema)
        except sqlite3.DatabaseError as error:
            raise SpeakerDatabaseError(f"{self.path} is not a usable speaker database: {error}") from None

    # --- plumbing --------------------------------------------------------------------------------
    def _create_schema(self, cursor) -> None:
        for statement in _SCHEMA.strip().split(";"):
            if statement.strip():
                cursor.execute(statement)
        cursor.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        version = cursor.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
        if int(version) != SCHEMA_VERSION:
            raise SpeakerDatabaseError(
                f"{self.path} has schema version {version}; this redimnet reads {SCHEMA_VERSION}"
            )

    def _write(self, work):
        """Run ``work(cursor)`` in one immediate transaction; roll back on any error."""
        cursor = self.connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            result = work(cursor)
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")
        return result

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> "SpeakerDatabase":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _meta(self, key: str) -> Optional[str]:
        row = self.connection.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def built_with(self) -> Optional[str]:
        """The fingerprint of the model whose embeddings the database holds (``None`` while it is empty)."""
        return self._meta("model")

    def _check_model(self, cursor, fingerprint: Optional[str], dim: int) -> None:
        rows = dict(cursor.execute("SELECT key, value FROM meta WHERE key IN ('model', 'dim')").fetchall())
        if "dim" in rows and int(rows["dim"]) != dim:
            raise SpeakerDatabaseError(
                f"{self.path} holds {rows['dim']}-dimensional embeddings; got {dim}. "
                "Use the model the database was built with, or another --db"
            )
        if fingerprint and rows.get("model") and rows["model"] != fingerprint:
            raise SpeakerDatabaseError(
                f"{self.path} was built with another model (fingerprint {rows['model']}, "
                f"this one is {fingerprint}); scores across models are meaningless. "
                "Use the same model, or another --db"
            )
        cursor.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('dim', ?)", (str(dim),))
        if fingerprint:
            cursor.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('model', ?)", (fingerprint,))

    # --- operations ------------------------------------------------------------------------------
    def enroll(
        self, name: str, embeddings: np.ndarray, utterances: Sequence[str], fingerprint: Optional[str] = None
    ) -> int:
        """Add utterance embeddings ``[N, D]`` to speaker ``name`` (created if new); returns its utterance count."""
        name = str(name).strip()
        if not name:
            raise SpeakerDatabaseError("a speaker name cannot be empty")
        check_speaker_name(name)  # at most MAX_NAME_LENGTH printable characters
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[0] != len(utterances) or embeddings.shape[0] == 0:
            raise SpeakerDatabaseError(
                f"need one embedding per utterance: {len(utterances)} utterances, "
                f"embeddings of shape {embeddings.shape}"
            )
        units = np.stack([_normalised(e, f"utterance {u}") for e, u in zip(embeddings, utterances)])
        now = time.time()

        def work(cursor):
            self._check_model(cursor, fingerprint, embeddings.shape[1])
            row = cursor.execute("SELECT id, count, mean FROM speakers WHERE name=?", (name,)).fetchone()
            if row is None:
                count, mean = 0, np.zeros(embeddings.shape[1])
                cursor.execute(
                    "INSERT INTO speakers(name, count, mean, created, updated) VALUES (?, 0, ?, ?, ?)",
                    (name, mean.astype(np.float64).tobytes(), now, now),
                )
                speaker_id = cursor.lastrowid
            else:
                speaker_id, count = row[0], row[1]
                mean = np.frombuffer(row[2], dtype=np.float64).copy()
            for embedding, unit, utterance in zip(embeddings, units, utterances):
                count += 1
                mean += (unit - mean) / count
                cursor.execute(
                    "INSERT INTO utterances(speaker_id, utterance, embedding, added) VALUES (?, ?, ?, ?)",
                    (speaker_id, str(utterance), embedding.astype(np.float32).tobytes(), now),
                )
            cursor.execute(
                "UPDATE speakers SET count=?, mean=?, updated=? WHERE id=?", (count, mean.tobytes(), now, speaker_id)
            )
            return count

        return self._write(work)

    def remove(self, name: str) -> int:
        """Delete speaker ``name`` and its utterances; returns how many utterances went."""

        def work(cursor):
            row = cursor.execute("SELECT id, count FROM speakers WHERE name=?", (name,)).fetchone()
            if row is None:
                raise SpeakerDatabaseError(f"no speaker named {name!r} in {self.path}{self._known_hint(cursor)}")
            cursor.execute("DELETE FROM utterances WHERE speaker_id=?", (row[0],))
            cursor.execute("DELETE FROM speakers WHERE id=?", (row[0],))
            return int(row[1])

        return self._write(work)

    def _known_hint(self, cursor) -> str:
        names = [r[0] for r in cursor.execute("SELECT name FROM speakers ORDER BY name LIMIT 10")]
        return f"; enrolled: {', '.join(map(printable, names))}" if names else "; the database has no speakers"

    def speakers(self) -> List[Speaker]:
        """Enrolled speakers, by name."""
        rows = self.connection.execute("SELECT name, count, created, updated FROM speakers ORDER BY name")
        return [Speaker(*row) for row in rows.fetchall()]

    def utterances(self, name: str) -> Tuple[List[str], np.ndarray]:
        """``(utterance ids, embeddings [N, D])`` enrolled for ``name``."""
        rows = self.connection.execute(
            "SELECT u.utterance, u.embedding FROM utterances u JOIN speakers s ON s.id = u.speaker_id "
            "WHERE s.name=? ORDER BY u.id",
            (name,),
        ).fetchall()
        if not rows:
            raise SpeakerDatabaseError(f"no speaker named {name!r} in {self.path}")
        return [r[0] for r in rows], np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])

    def speaker_model(self, name: str) -> np.ndarray:
        """The stored running mean of ``name``'s normalised utterance embeddings."""
        row = self.connection.execute("SELECT mean FROM speakers WHERE name=?", (name,)).fetchone()
        if row is None:
            raise SpeakerDatabaseError(f"no speaker named {name!r} in {self.path}")
        return np.frombuffer(row[0], dtype=np.float64).copy()

    def identify(
        self, embedding: np.ndarray, top: int = 5, fingerprint: Optional[str] = None
    ) -> List[Tuple[str, float]]:
        """The ``top`` best-matching speakers as ``(name, cosine score)``, best first."""
        if top < 1:
            raise SpeakerDatabaseError(f"--top must be at least 1, got {top}")
        query = _normalised(embedding, "query")
        # one read transaction: a consistent snapshot even while another process writes
        cursor = self.connection.cursor()
        cursor.execute("BEGIN")
        try:
            meta: Dict[str, str] = dict(cursor.execute("SELECT key, value FROM meta").fetchall())
            rows = cursor.execute("SELECT name, mean FROM speakers").fetchall()
        finally:
            cursor.execute("COMMIT")
        if not rows:
            raise SpeakerDatabaseError(f"{self.path} has no enrolled speakers; use redimnet enroll first")
        if "dim" in meta and int(meta["dim"]) != query.shape[0]:
            raise SpeakerDatabaseError(
                f"{self.path} holds {meta['dim']}-dimensional embeddings, the query has "
                f"{query.shape[0]}; use the model the database was built with"
            )
        if fingerprint and meta.get("model") and meta["model"] != fingerprint:
            raise SpeakerDatabaseError(
                f"{self.path} was built with another model (fingerprint {meta['model']}, "
                f"this one is {fingerprint}); use the same model"
            )
        names = [r[0] for r in rows]
        means = np.stack([np.frombuffer(r[1], dtype=np.float64) for r in rows])
        try:
            scores = l2_normalize(means, "speaker model", dtype=np.float64) @ query
        except ScoringError as error:
            raise SpeakerDatabaseError(f"{self.path}: {error}") from None
        order = np.argsort(-scores, kind="stable")[:top]
        return [(names[i], float(scores[i])) for i in order]

    def check(self) -> bool:
        """True when SQLite's integrity check passes and every speaker's count matches its utterances."""
        if self.connection.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            return False
        mismatched = self.connection.execute(
            "SELECT COUNT(*) FROM speakers s WHERE s.count != "
            "(SELECT COUNT(*) FROM utterances u WHERE u.speaker_id = s.id)"
        ).fetchone()[0]
        return mismatched == 0
