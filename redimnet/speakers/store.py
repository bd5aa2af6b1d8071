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

from typing import List, Optional, Protocol, Sequence, Tuple

import numpy as np

__all__ = ["SpeakerStore"]


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

    def speakers(self) -> list:
        """Enrolled speakers by name (objects with ``name``, ``utterances``, ``created``, ``updated``)."""

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
