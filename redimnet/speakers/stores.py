"""Opening a speaker store from what the user wrote after ``--db``: a file path or a database URL.

``speakers.db`` (any path) is the SQLite file of :mod:`redimnet.speakers.sqlite`;
``postgresql://user@host:port/dbname`` (or ``postgres://``) is the PostgreSQL
store of :mod:`redimnet.speakers.postgres` (needs ``redimnet[postgres]``).  Any
other ``scheme://`` is refused rather than taken as a file name.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional, Union

from .postgres import is_postgres_url, redacted_url
from .sql import SpeakerDatabaseError, SqlSpeakerStore

__all__ = ["open_store", "store_label", "is_url"]

Location = Union[str, "os.PathLike[str]"]

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def is_url(location: Location) -> bool:
    """True when ``location`` looks like ``scheme://...`` (not a file path)."""
    return isinstance(location, str) and _URL.match(location) is not None


def store_label(location: Location) -> str:
    """How messages name the store at ``location`` (a URL without its password, or the path)."""
    text = str(location) if isinstance(location, str) else os.fspath(location)
    return redacted_url(text) if is_url(text) else text


def open_store(location: Location, create: bool = True, index_dir: Optional[Location] = None) -> SqlSpeakerStore:
    """The speaker store at ``location``: a SQLite file, or a PostgreSQL database by URL.

    ``create=False`` refuses a store that does not exist yet (a missing file, a
    database without the speaker tables).  ``index_dir`` (PostgreSQL only):
    where the speaker index is cached.
    """
    if isinstance(location, str) and is_url(location):
        if is_postgres_url(location):
            from .postgres import PostgresSpeakerStore

            return PostgresSpeakerStore(location, create=create, index_dir=Path(index_dir) if index_dir else None)
        scheme = _URL.match(location).group(1)  # type: ignore[union-attr]
        raise SpeakerDatabaseError(
            f"--db {redacted_url(location)}: {scheme}:// databases are not supported; give a SQLite file path "
            "or a postgresql://user@host:port/dbname URL"
        )
    from .sqlite import SpeakerDatabase

    return SpeakerDatabase(location, create=create)
