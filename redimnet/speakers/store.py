"""What the service needs from speaker storage: :class:`SpeakerStore`.

The service reaches its speakers only through these methods, on one store
object per worker thread (:meth:`redimnet.service.Service.db`).  redimnet
ships two stores, both opened by :func:`redimnet.speakers.stores.open_store`:
:class:`redimnet.speakers.sqlite.SpeakerDatabase` (a WAL-mode SQLite file) and
:class:`redimnet.speakers.postgres.PostgresSpeakerStore` (a PostgreSQL
database shared by many hosts).  Another one is a class with these methods,
handed to the service as ``Service(..., store=factory)`` where ``factory()``
opens one connection.
Names, embeddings and the model fingerprint mean what they mean in
:mod:`redimnet.speakers.sqlite`; errors the user can fix raise
:class:`redimnet.speakers.sqlite.SpeakerDatabaseError`.
"""

from __future__ import annotations

from typing import Dict, Iterator, List, Optional, Protocol, Sequence, Tuple

import numpy as np

from ..errors import InvalidArgumentError
from .schema import UnknownSpeakerError

__all__ = ["SpeakerStore", "PAGE_SIZE", "check_page", "speaker_pages", "utterance_embeddings"]

PAGE_SIZE = 10_000
"""Speakers read per page by :func:`speaker_pages` (what the command line lists at a time)."""


class SpeakerStore(Protocol):
    """Speaker storage as the service uses it (the methods of :class:`redimnet.speakers.sqlite.SpeakerDatabase`)."""

    def enroll(
        self, name: str, embeddings: np.ndarray, utterances: Sequence[str], fingerprint: Optional[str] = None
    ) -> int:
        """Add ``[N, D]`` embeddings to ``name`` in one transaction; returns the speaker's recording count."""

    def remove(self, name: str) -> int:
        """Delete a speaker; returns how many recordings went.

        A name that is not enrolled (e.g. removed by another client a moment
        before) raises :class:`redimnet.speaker_db.UnknownSpeakerError`, as
        :meth:`utterances` and :meth:`speaker_model` do; the service answers 404.
        """

    def speakers(self, limit: Optional[int] = None, after: Optional[str] = None) -> list:
        """Enrolled speakers by name (objects with ``name``, ``utterances``, ``created``, ``updated``): all, or
        at most ``limit`` of those whose names sort after ``after`` (a page; :func:`check_page`)."""

    def count(self) -> Tuple[int, int]:
        """``(speakers, recordings)`` enrolled."""

    def has_speaker(self, name: str) -> bool:
        """Whether ``name`` is enrolled."""

    def utterances(self, name: str) -> Tuple[List[str], np.ndarray]:
        """A speaker's recording ids and embeddings ``[N, D]``."""

    def speaker_model(self, name: str) -> np.ndarray:
        """The mean of a speaker's normalised embeddings."""

    def identify(
        self, embedding: np.ndarray, top: int = 5, fingerprint: Optional[str] = None
    ) -> List[Tuple[str, float]]:
        """The ``top`` closest speakers by cosine, best first (refuses another model's fingerprint; raises
        :class:`redimnet.speakers.sql.EmptyStoreError` when nobody is enrolled)."""

    def built_with(self) -> Optional[str]:
        """The fingerprint of the model whose embeddings are stored (``None`` while empty)."""

    def close(self) -> None:
        """Close the connection."""


def check_page(limit: Optional[int], after: Optional[str]) -> None:
    """Refuse a page that cannot be read: ``limit`` below 1, or ``after`` that is not a string."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidArgumentError(f"a page holds at least 1 speaker; got limit={limit!r}")
    if after is not None and not isinstance(after, str):
        raise InvalidArgumentError(f"'after' is the last speaker name of the previous page; got {type(after).__name__}")


def speaker_pages(store: SpeakerStore, after: Optional[str] = None, page: int = PAGE_SIZE) -> Iterator[list]:
    """Every enrolled speaker whose name sorts after ``after`` (all when None), by name, in lists of at most
    ``page`` (memory does not grow with the store)."""
    while True:
        rows = store.speakers(limit=page, after=after)
        if rows:
            yield rows
        if len(rows) < page:
            return
        after = rows[-1].name


def utterance_embeddings(store: SpeakerStore, names: Sequence[str]) -> Dict[str, np.ndarray]:
    """The enrolled embeddings ``[N, D]`` of each of ``names`` that is enrolled; names not enrolled (removed by
    another client a moment before) are left out.

    A store may read them all at once with a method of the same name (the SQL stores do: one query for a
    back-end's whole shortlist); otherwise :meth:`SpeakerStore.utterances` is asked once per name.
    """
    batched = getattr(store, "utterance_embeddings", None)
    if batched is not None:
        return dict(batched(list(names)))
    found: Dict[str, np.ndarray] = {}
    for name in names:
        try:
            found[name] = store.utterances(name)[1]
        except UnknownSpeakerError:
            continue
    return found
