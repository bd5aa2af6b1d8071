"""Enrolled speakers: where they are stored, how they are searched, how decisions about them are made.

* :mod:`.store` -- :class:`~.store.SpeakerStore`, what the rest of the package needs from speaker storage;
* :mod:`.sql` -- the operations and schema every SQL store shares; :mod:`.sqlite` (the SQLite file,
  :class:`~.sqlite.SpeakerDatabase`) and :mod:`.postgres` (PostgreSQL) are its dialects, and
  :mod:`.stores` opens the one ``--db`` names;
* :mod:`.index` -- the speaker index (exact, or HNSW for large stores);
* :mod:`.bulk` -- bulk import of enrolments.
"""
