"""Keeping a vector index in step with a speaker store: exact after every change, saved beside the store.

The indexes themselves (exact, HNSW) and the choice between them are in
:mod:`redimnet.speakers.vectors`.

:class:`SpeakerIndex` keeps an index in step with a speaker store.  The index
is derived data: the store is the truth, and every change to the store bumps
its *revision* (a counter in the store, incremented by each write
transaction), marks the speakers it wrote with that revision and records
deleted speakers with theirs (:class:`ChangeSource`).  Before every search the
index reads the store's revision in the same read snapshot as the search's
other reads and applies the changes since its own revision, so an
acknowledged enrolment is always found and a deleted speaker never returned.
The index is saved next to the store (:class:`IndexFile`: a small JSON header
naming the store, its revision and a checksum of the data file, both written
atomically); on open it is loaded, checked (store identity, revision not
ahead of the store, checksum, size equal to the store's speaker count,
sampled vectors equal to the store's) and brought up to date -- or rebuilt
from the store when any check fails.  A process killed at any moment
therefore leaves either the previous index file or the new one, and the next
open repairs whatever the store changed meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Protocol, Tuple

import numpy as np

from .._utils.fileio import atomic_write, exclusive_lock
from .vectors import (  # noqa: F401 (APPROXIMATE_FROM, ExactIndex, HnswIndex, ...: also exported here)
    APPROXIMATE_FROM,
    EXACT_BELOW,
    INSTALL_HINT,
    KIND_VARIABLE,
    ExactIndex,
    HnswIndex,
    VectorIndex,
    as_keys,
    choose_kind,
    make_index,
    usearch_available,
)

__all__ = [
    "APPROXIMATE_FROM",
    "INSTALL_HINT",
    "ExactIndex",
    "HnswIndex",
    "choose_kind",
    "make_index",
    "usearch_available",
    "ChangeSource",
    "StoreState",
    "IndexFile",
    "SpeakerIndex",
    "shared_index",
    "release_index",
]

log = logging.getLogger("redimnet.speakers.index")

SAVE_FROM = 20_000
"""Indexes of fewer speakers are not saved: rebuilding them from the store is as fast as loading them."""

SAVE_EVERY = 1000
"""A saved index is saved again once at least this many changes (and 2 % of its size) were applied to it;
in between, opening it applies the changes since the saved revision from the store."""


# --- keeping an index in step with a store ------------------------------------------------------------------
@dataclass(frozen=True)
class StoreState:
    """What an index is checked against: the store's identity, revision, speaker count and dimension."""

    store_id: str
    revision: int
    count: Optional[int] = None
    dim: Optional[int] = None


class ChangeSource(Protocol):
    """A store's view for its index, all read in one snapshot (one read transaction)."""

    def state(self, count: bool = False) -> StoreState:
        """The store's identity and revision (and speaker count and dimension when ``count``)."""

    def removed_since(self, revision: int) -> np.ndarray:
        """Keys of speakers deleted after ``revision``."""

    def changed_since(self, revision: int) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
        """``(keys, unit vectors)`` blocks of the speakers written after ``revision`` (all for -1)."""

    def vectors_of(self, keys: np.ndarray) -> Dict[int, np.ndarray]:
        """The unit vectors of those ``keys`` that exist."""

    def all_keys(self) -> np.ndarray:
        """The keys of every speaker."""


@dataclass
class IndexFile:
    """Where an index is saved: ``PATH`` (a JSON header) and data files ``PATH.<random>.<kind>`` beside it.

    The header names the store (``store_id``), the revision the index holds,
    its kind, size and dimension, and the data file with its size and CRC-32.
    The data file is written first, then the header replaces the old one
    atomically, then older data files are removed: a reader sees a whole old
    index or a whole new one.
    """

    path: Path

    def read_header(self) -> Optional[Dict[str, Any]]:
        try:
            header = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            log.warning("speaker index header %s is unreadable (%s); rebuilding", self.path, error)
            return None
        return header if isinstance(header, dict) and header.get("format") == 1 else None

    def load(self, dim: int) -> Optional[Tuple[VectorIndex, Dict[str, Any]]]:
        """``(index, header)`` from disk, or ``None`` when absent or not intact."""
        header = self.read_header()
        if header is None:
            return None
        try:
            data = self.path.parent / str(header["data"])
            if data.parent != self.path.parent or not data.name.startswith(self.path.name + "."):
                raise ValueError("the header names a data file elsewhere")
            if int(header["dim"]) != dim:
                raise ValueError(f"dimension {header['dim']}, the store holds {dim}")
            if data.stat().st_size != int(header["size"]) or _crc32(data) != int(header["crc32"]):
                raise ValueError("the data file does not match its checksum")
            count = int(header["count"])
            index: VectorIndex
            if header["kind"] == "hnsw":
                if not usearch_available():
                    return None
                index = HnswIndex.read(data, dim, count)
            else:
                index = ExactIndex.read(data, dim, count)
        except Exception as error:  # anything wrong with a derived file means: rebuild it
            log.warning("speaker index %s cannot be used (%s); rebuilding", self.path, error)
            return None
        return index, header

    def save(self, index: VectorIndex, store_id: str, revision: int) -> None:
        """Write ``index`` (at ``revision`` of store ``store_id``) and make it the current one.

        Processes sharing the folder (several servers of one PostgreSQL store on one machine) save one
        at a time, under ``PATH.lock``: two saves at once could each remove the other's data file, and
        leave a header that names a removed one.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(self.path.with_name(self.path.name + ".lock")):
            self._write(index, store_id, revision)

    def _write(self, index: VectorIndex, store_id: str, revision: int) -> None:
        data = self.path.parent / f"{self.path.name}.{secrets.token_hex(6)}.{index.kind}"
        try:
            if isinstance(index, HnswIndex):
                index.write_to(data)
                with open(data, "rb+") as stream:
                    os.fsync(stream.fileno())
            else:
                with atomic_write(data) as stream:
                    index.write(stream)
            header = {
                "format": 1,
                "store_id": store_id,
                "revision": int(revision),
                "kind": index.kind,
                "count": len(index),
                "dim": index.dim,
                "data": data.name,
                "size": data.stat().st_size,
                "crc32": _crc32(data),
            }
            with atomic_write(self.path, "w") as stream:
                json.dump(header, stream)
        except BaseException:
            with contextlib.suppress(OSError):
                data.unlink()
            raise
        self._remove_other_data(keep=data.name)

    def _remove_other_data(self, keep: str) -> None:
        for other in self.path.parent.glob(f"{self.path.name}.*"):
            if other.name != keep and other.suffix in (".exact", ".hnsw"):
                with contextlib.suppress(OSError):
                    other.unlink()

    def remove(self) -> None:
        """Remove the header, the data files and the lock file (nothing of the index is left)."""
        lock = self.path.with_name(self.path.name + ".lock")
        with exclusive_lock(lock):
            with contextlib.suppress(OSError):
                self.path.unlink()
            self._remove_other_data(keep="")
            with contextlib.suppress(OSError):
                lock.unlink()


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 22), b""):
            crc = zlib.crc32(block, crc)
    return crc


SPOT_CHECKS = 32
"""Entries of a loaded index compared with the store's vectors on open."""


class SpeakerIndex:
    """An index kept in step with one store, shared by every connection of a process to that store.

    Call :meth:`sync` with the store's :class:`ChangeSource` (inside the
    store's read snapshot) before :meth:`search`; both hold the index's lock.
    ``file`` (optional) is where it is saved and loaded.
    """

    def __init__(self, file: Optional[IndexFile] = None, threads: Optional[int] = None):
        self.file = file
        self.threads = threads or os.cpu_count() or 1
        self.lock = threading.RLock()
        self.index: Optional[VectorIndex] = None
        self.store_id: Optional[str] = None
        self.revision = -1
        self.saved_revision = -1
        self.unsaved_changes = 0
        self.users = 0
        self.builds = 0
        """How often the index was built from the whole store (first use, or a repair)."""
        self.loads = 0
        """How often it was loaded from its file (and found in agreement with the store)."""
        self.switches = 0
        """How often a background build replaced the index (growth past the threshold, tombstones)."""
        self._builder: Optional[threading.Thread] = None
        self._pending: Optional[Tuple[VectorIndex, int]] = None
        self._pending_lock = threading.Lock()

    # --- bringing it up to date ------------------------------------------------------------------
    def sync(self, source: ChangeSource, state: Optional[StoreState] = None, wait: bool = False) -> VectorIndex:
        """The index at (at least) the revision of ``source``'s snapshot; loads, repairs or rebuilds as needed.

        A graph that must be built because the store grew past :data:`APPROXIMATE_FROM` (or rebuilt
        because of tombstones) is built in a background thread from the index's own vectors while the
        current index keeps answering; a later call puts it in place and applies the changes made
        meanwhile.  ``wait``: finish such a build first (a server before its first request).
        """
        if wait and self._builder is not None:
            self._builder.join()
        with self.lock:
            state = state or source.state()
            if self.index is None or state.store_id != self.store_id:
                self._drop_background()
                self._open(source)
            else:
                self._adopt_background(source, state)
                if state.revision > self.revision:
                    self._apply(source, self.revision, state.revision)
            assert self.index is not None
            self._maybe_switch_kind(source)
            if wait and self._builder is not None:
                self._builder.join()
                self._adopt_background(source, state)
            self._maybe_save()
            return self.index

    def _start_background(self, kind: str, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Build an index of ``kind`` from copies of ``keys``/``vectors`` (at the current revision) in a thread."""
        if self._builder is not None:
            return
        revision, store_id, dim = self.revision, self.store_id, vectors.shape[1]

        def work():
            built = make_index(kind, dim, keys, vectors, threads=self.threads)
            with self._pending_lock:  # not self.lock: a caller may hold it while it waits for this thread
                if self.store_id == store_id:
                    self._pending = (built, revision)

        self._builder = threading.Thread(target=work, name="speaker-index-build", daemon=True)
        self._builder.start()

    def _adopt_background(self, source: ChangeSource, state: StoreState) -> None:
        """Put a finished background build in place and bring it up to the store's revision."""
        with self._pending_lock:
            if self._pending is None:
                return
            built, revision = self._pending
            self._pending, self._builder = None, None
        self.index, self.revision = built, revision
        self._apply(source, revision, max(state.revision, revision))
        self.unsaved_changes += len(built)
        self.switches += 1

    def _drop_background(self) -> None:
        with self._pending_lock:
            self._pending = None
        self._builder = None  # a running thread finishes and finds another store: its result is dropped

    def _open(self, source: ChangeSource) -> None:
        state = source.state(count=True)
        dim = int(state.dim or 0)
        loaded = self.file.load(dim) if self.file is not None and dim else None
        where = self.file.path if self.file is not None else "(in memory)"
        if loaded is not None:
            index, header = loaded
            if header.get("store_id") == state.store_id and int(header["revision"]) <= state.revision:
                self.index, self.store_id = index, state.store_id
                self.revision = self.saved_revision = int(header["revision"])
                self._apply(source, self.revision, state.revision)
                if self._agrees(source, state):
                    self.loads += 1
                    return
                log.warning("speaker index %s disagrees with the store; rebuilding", where)
            else:
                log.warning("speaker index %s belongs to another state of the store; rebuilding", where)
        self._build(source, state)

    def _build(self, source: ChangeSource, state: StoreState) -> None:
        """A new index of every speaker in ``source``, read in blocks (memory stays bounded)."""
        dim, count = int(state.dim or 0), int(state.count or 0)
        kind = choose_kind(count)
        if kind == "exact" and count >= APPROXIMATE_FROM:
            log.warning("%d speakers: %s", count, INSTALL_HINT)
        index = make_index(kind, max(dim, 1))
        if isinstance(index, ExactIndex):
            index._reserve(count)
        if dim:
            for keys, vectors in source.changed_since(-1):
                index.upsert(keys, vectors, threads=self.threads)
        self.index, self.store_id, self.revision = index, state.store_id, state.revision
        self.saved_revision, self.unsaved_changes = -1, len(index)
        self.builds += 1

    def _apply(self, source: ChangeSource, since: int, revision: int) -> None:
        assert self.index is not None
        removed = source.removed_since(since)
        changes = int(removed.size)
        if removed.size:
            self.index.remove(removed)
        for keys, vectors in source.changed_since(since):
            if keys.size:
                if self.index.dim != vectors.shape[1]:  # the first speaker of an empty store sets the dimension
                    self.index = make_index("exact", vectors.shape[1])
                self.index.upsert(keys, vectors, threads=self.threads)
                changes += int(keys.size)
        self.revision = max(self.revision, revision)
        self.unsaved_changes += changes

    def _agrees(self, source: ChangeSource, state: StoreState) -> bool:
        """The same keys as the store, and sampled entries equal to the store's vectors."""
        assert self.index is not None
        if len(self.index) != int(state.count or 0):
            return False
        if not len(self.index):
            return True
        stored_keys = np.sort(as_keys(source.all_keys()))
        if not np.array_equal(np.sort(self.index.keys()), stored_keys):
            return False
        rng = np.random.default_rng()
        sample = stored_keys[rng.choice(stored_keys.size, min(SPOT_CHECKS, stored_keys.size), replace=False)]
        stored = source.vectors_of(sample)
        if len(stored) != sample.size:
            return False
        tolerance = 1e-5 if isinstance(self.index, ExactIndex) else 0.05
        mine = self.index.get(sample)
        theirs = np.stack([stored[int(k)] for k in sample.tolist()]).astype(np.float32)
        return bool(np.all(np.abs(mine - theirs) <= tolerance))

    def _maybe_switch_kind(self, source: ChangeSource) -> None:
        index = self.index
        assert index is not None
        kind = choose_kind(len(index), index.kind)
        if kind == index.kind:
            if isinstance(index, HnswIndex) and index.removed > max(1000, len(index) // 5):
                keys = index.keys()  # too many tombstones slow the graph down: a new graph, in the background
                self._start_background(kind, keys, index.get(keys))
            return
        if isinstance(index, ExactIndex):  # grew past the threshold: a graph of our own vectors, in the background
            keys, vectors = index.items()
            self._start_background(kind, keys.copy(), vectors.copy())
        else:  # shrank below the hysteresis line: few speakers, rebuilt from the store at once
            self._rebuild_from_store(source)
            self.unsaved_changes += len(self)

    def _rebuild_from_store(self, source: ChangeSource) -> None:
        state = source.state(count=True)
        self._build(source, state)

    def _maybe_save(self, force: bool = False) -> None:
        index = self.index
        if self.file is None or index is None or self.store_id is None or self.revision == self.saved_revision:
            return
        if len(index) < SAVE_FROM and not force:
            return
        if not force and self.unsaved_changes < max(SAVE_EVERY, len(index) // 50):
            return
        try:
            self.file.save(index, self.store_id, self.revision)
        except OSError as error:  # a cache that cannot be written is slower, not wrong
            log.warning("cannot save the speaker index to %s: %s", self.file.path, error)
            return
        self.saved_revision, self.unsaved_changes = self.revision, 0

    def save(self) -> None:
        """Save now if anything changed since the last save (and the index is worth saving)."""
        with self.lock:
            if self.index is not None and len(self.index) >= SAVE_FROM:
                self._maybe_save(force=True)

    # --- searching -------------------------------------------------------------------------------
    def search(
        self, queries, k: int, threads: int = 1, expansion: Optional[int] = None
    ) -> Tuple[np.ndarray, np.ndarray]:
        """``(keys, scores)`` of the ``k`` nearest entries of each query (see the index kinds; ``expansion``:
        an HNSW search's breadth)."""
        with self.lock:
            if self.index is None or not len(self.index):
                rows = np.asarray(queries).reshape(-1, np.asarray(queries).shape[-1]).shape[0]
                return np.full((rows, k), -1, dtype=np.int64), np.full((rows, k), -np.inf, dtype=np.float32)
            return self.index.search(queries, k, threads=threads, expansion=expansion)

    def search_as_is(
        self, query: np.ndarray, k_for: Callable[[int], int], expansion: Optional[int] = None
    ) -> Optional[Tuple[np.ndarray, str, int, int]]:
        """Search without asking the store first: ``(keys of the k_for(size) nearest, store id, revision the
        index holds, the number of speakers it holds)``, or None when it must be brought up to date by
        :meth:`sync` first (not loaded yet, empty, or a background build running or waiting to be put in place).

        The caller then reads its store's revision in the same snapshot as the candidates' rows, and uses
        the keys only when that revision is the one returned here (the index was then exactly that
        snapshot's speakers); otherwise it syncs and searches again.
        """
        with self.lock:
            index = self.index
            if index is None or self.store_id is None or self._builder is not None or not len(index):
                return None
            if index.dim != np.asarray(query).shape[-1]:
                return None  # the full path says what is wrong
            size = len(index)
            keys, _ = index.search(query, k_for(size), expansion=expansion)
            return keys[0], self.store_id, self.revision, size

    @property
    def kind(self) -> Optional[str]:
        return self.index.kind if self.index is not None else None

    def __len__(self) -> int:
        return len(self.index) if self.index is not None else 0


# --- one index per store per process ---------------------------------------------------------------------------
_SHARED: Dict[str, SpeakerIndex] = {}
_SHARED_LOCK = threading.Lock()


def shared_index(key: str, file: Optional[IndexFile], threads: Optional[int] = None) -> SpeakerIndex:
    """The process's :class:`SpeakerIndex` for the store named ``key`` (created on first use)."""
    with _SHARED_LOCK:
        index = _SHARED.get(key)
        if index is None:
            index = _SHARED[key] = SpeakerIndex(file, threads=threads)
        index.users += 1
        return index


def release_index(key: str) -> None:
    """One user of ``key``'s index is done; the last one saves it (when worth it) and drops it from memory."""
    with _SHARED_LOCK:
        index = _SHARED.get(key)
        if index is None:
            return
        index.users -= 1
        if index.users > 0:
            return
        del _SHARED[key]
    index.save()
