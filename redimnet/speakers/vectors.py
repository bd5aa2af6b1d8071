"""The vector indexes behind speaker identification and cohort top-k: exact while small, HNSW when large.

Two kinds of index hold unit-length vectors under integer keys and answer
"the ``k`` keys with the highest inner product":

* :class:`ExactIndex` -- every vector in one float32 matrix, scored by one
  matrix product.  Always available; exact by construction.
* :class:`HnswIndex` -- a hierarchical navigable small-world graph
  (`usearch <https://github.com/unum-cloud/usearch>`_, the optional extra
  ``redimnet[search]``), vectors quantised to 8 bits.  Approximate: callers
  ask it for a few more candidates than they need and score those exactly.

:func:`choose_kind` picks one from the number of vectors
(:data:`APPROXIMATE_FROM`): exact below it, HNSW from it when usearch is
installed (exact otherwise, with :data:`INSTALL_HINT` in the log).

The index kept in step with a speaker store is :class:`redimnet.speakers.index.SpeakerIndex`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np

__all__ = [
    "APPROXIMATE_FROM",
    "EXACT_BELOW",
    "INSTALL_HINT",
    "ExactIndex",
    "HNSW_EXPANSION_IDENTIFY",
    "HnswIndex",
    "VectorIndex",
    "choose_kind",
    "make_index",
    "as_keys",
    "usearch_available",
]

log = logging.getLogger("redimnet.speakers.index")

APPROXIMATE_FROM = 50_000
"""From this many speakers on, the index is an HNSW graph (when usearch is installed); below it, exact.

Below about this size one matrix product over all speakers is as fast as
a graph search (both well under a millisecond on one core) and needs no
graph build; above it the matrix product grows linearly (about 20 ms per
query at a million 192-dimensional speakers on one core) while the graph
search stays near a millisecond.  See ``docs/speaker_search.md``."""

EXACT_BELOW = APPROXIMATE_FROM // 2
"""An HNSW index whose store shrank below this many speakers goes back to exact (hysteresis)."""

INSTALL_HINT = (
    "exact search over every speaker costs time in proportion to their number; for large stores install the "
    'approximate index: pip install "redimnet[search]"'
)

HNSW_CONNECTIVITY = 16
"""Graph edges per node (usearch's ``connectivity``, HNSW's M)."""
HNSW_EXPANSION_ADD = 256
"""Candidates kept while inserting (HNSW's efConstruction).

A vector inserted into a large graph finds its neighbours by a search of this breadth; too narrow, and
speakers enrolled after many unrelated ones (a trained model's speakers after a million random vectors)
are linked to random vectors rather than to each other, and later searches miss them.  Chosen on 300,000
random vectors plus 194 real speakers inserted last (the tuning half of the queries, 21 candidates
rescored): recall@1 at search ef 64 / 128 / 256 was 0.887 / 0.950 / 0.985 with 64 (108 CPU-s to
build on one thread), 0.960 / 0.997 / 1.000 with 128 (206 CPU-s), 0.985 / 1.000 / 1.000 with 256
(356 CPU-s).  See ``docs/speaker_search.md``."""
HNSW_EXPANSION_SEARCH = 256
"""Candidates kept while searching (HNSW's ef) unless the caller asks for another breadth; searches keep
at least as many as they return.  AS-Norm's cohort top-k (a few hundred candidates whose mean and spread
are what counts) searches with this."""
HNSW_EXPANSION_IDENTIFY = 512
"""The breadth of an identification's search, which must find the one best speaker.

Four times the smallest ef that reached recall@1 0.99 on the 300,000-vector tuning store above (128):
a million random vectors need about four times the ef of 300,000 for the same recall (measured on
graphs built with efConstruction 64).  Reported on another store (a million: the real speakers plus
random vectors of another seed) and the other half of the queries: recall@1 0.994 at 4.4 ms of CPU per
identification (0.984 at ef 256); see ``docs/speaker_search.md``."""
HNSW_PARALLEL_FROM = 10_000
"""Vectors go into a graph one thread at a time until it holds this many.  Inserting several at once
leaves some nodes that no search reaches, most often in a small graph (with 8 threads, 26 of 40 graphs
of 200 nodes had one; none with one thread); after a parallel insertion into a larger graph, the few
unreachable ones (3 of 6,000 into a 10,000-node graph) are found by searching their own vectors and
inserted again one at a time."""
HNSW_PARALLEL_THREADS = 4
"""Fewer threads than this build one thread at a time.  A parallel insertion needs the reachability check
(:meth:`HnswIndex._reattach`: a search for every vector inserted), which costs more CPU than the insertion
itself: 1,000,000 speakers (random fill) on 2 threads took 518 CPU-s of insertion plus 695 CPU-s of check,
so at least 607 s of wall time; one thread builds 300,000 such speakers in 108 CPU-s and 1,000,000
speakers drawn like real ones in 290 CPU-s (no check needed; these with efConstruction 64, the current
256 costs about 3 to 4 times as much: 1,412 CPU-s for a million random vectors).  From about 4
threads the parallel build's wall time is the shorter."""
HNSW_PARALLEL_BATCH = 1_000
"""Smaller batches (an enrolment, the changes since the last sync) are always inserted one at a time."""
HNSW_DTYPE = "i8"
"""How the graph stores vectors: 8-bit quantised (results are rescored exactly by the caller)."""


def usearch_available() -> bool:
    """True when the optional ``usearch`` package (``redimnet[search]``) can be imported."""
    try:
        import usearch.index  # noqa: F401
    except ImportError:
        return False
    return True


KIND_VARIABLE = "REDIMNET_SPEAKER_INDEX"
"""``exact`` or ``hnsw`` forces that kind whatever the size (``auto``, the default, chooses by size)."""


def choose_kind(count: int, current: Optional[str] = None) -> str:
    """``"exact"`` or ``"hnsw"`` for an index of ``count`` vectors (``current``: the kind it has now).

    ``$REDIMNET_SPEAKER_INDEX`` (``exact`` / ``hnsw``) overrides the choice.
    """
    forced = os.environ.get(KIND_VARIABLE, "auto").strip().lower()
    if forced == "exact" or not usearch_available():
        return "exact"
    if forced == "hnsw":
        return "hnsw"
    if current == "hnsw":
        return "hnsw" if count >= EXACT_BELOW else "exact"
    return "hnsw" if count >= APPROXIMATE_FROM else "exact"


def as_keys(keys) -> np.ndarray:
    """Keys as a contiguous int64 vector."""
    return np.ascontiguousarray(np.asarray(keys, dtype=np.int64).reshape(-1))


def _rows(vectors, dim: int) -> np.ndarray:
    vectors = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if vectors.ndim == 1:
        vectors = vectors.reshape(1, -1)
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        raise ValueError(f"expected vectors of dimension {dim}, got shape {vectors.shape}")
    return vectors


_BLOCK_BYTES = 64 << 20
"""Largest score matrix an exact search makes at once (queries are processed in blocks below it)."""


class ExactIndex:
    """Unit vectors under int64 keys in one float32 matrix; search is one matrix product (exact)."""

    kind = "exact"

    def __init__(self, dim: int):
        self.dim = int(dim)
        self._keys = np.empty(0, dtype=np.int64)
        self._vectors = np.empty((0, self.dim), dtype=np.float32)
        self._size = 0
        self._row: Dict[int, int] = {}

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        return int(self._vectors.nbytes + self._keys.nbytes)

    def _reserve(self, size: int) -> None:
        if size <= self._keys.shape[0]:
            return
        capacity = max(size, int(self._keys.shape[0] * 1.5) + 1024)
        keys = np.empty(capacity, dtype=np.int64)
        vectors = np.empty((capacity, self.dim), dtype=np.float32)
        keys[: self._size] = self._keys[: self._size]
        vectors[: self._size] = self._vectors[: self._size]
        self._keys, self._vectors = keys, vectors

    def upsert(self, keys, vectors, threads: int = 1) -> None:
        """Add ``vectors`` under ``keys`` (unique), replacing the vectors of keys already present."""
        keys, vectors = as_keys(keys), _rows(vectors, self.dim)
        rows = np.fromiter((self._row.get(k, -1) for k in keys.tolist()), dtype=np.int64, count=keys.size)
        present = rows >= 0
        self._vectors[rows[present]] = vectors[present]
        new_keys = keys[~present]
        if new_keys.size:
            start = self._size
            self._reserve(start + new_keys.size)
            self._keys[start : start + new_keys.size] = new_keys
            self._vectors[start : start + new_keys.size] = vectors[~present]
            self._row.update(zip(new_keys.tolist(), range(start, start + new_keys.size)))
            self._size += new_keys.size

    def remove(self, keys) -> int:
        """Remove ``keys`` (absent ones are ignored); returns how many were present."""
        removed = 0
        for key in as_keys(keys).tolist():
            row = self._row.pop(key, None)
            if row is None:
                continue
            last = self._size - 1
            if row != last:  # the last row fills the hole
                moved = int(self._keys[last])
                self._keys[row] = moved
                self._vectors[row] = self._vectors[last]
                self._row[moved] = row
            self._size -= 1
            removed += 1
        return removed

    def contains(self, keys) -> np.ndarray:
        return np.array([k in self._row for k in as_keys(keys).tolist()], dtype=bool)

    def keys(self) -> np.ndarray:
        return self._keys[: self._size].copy()

    def get(self, keys) -> np.ndarray:
        """The vectors of ``keys`` (all must be present)."""
        return self._vectors[[self._row[k] for k in as_keys(keys).tolist()]]

    def items(self) -> Tuple[np.ndarray, np.ndarray]:
        """``(keys, vectors)`` of every entry (views, valid until the next change)."""
        return self._keys[: self._size], self._vectors[: self._size]

    def search(
        self, queries, k: int, threads: int = 1, expansion: Optional[int] = None
    ) -> Tuple[np.ndarray, np.ndarray]:
        """``(keys [Q, k], scores [Q, k])``, best first; rows are padded with key -1 when fewer exist
        (``expansion``: ignored, the search is exact)."""
        queries = _rows(queries, self.dim)
        count = min(int(k), self._size)
        keys = np.full((queries.shape[0], int(k)), -1, dtype=np.int64)
        scores = np.full((queries.shape[0], int(k)), -np.inf, dtype=np.float32)
        if count == 0:
            return keys, scores
        matrix = self._vectors[: self._size]
        block = max(1, _BLOCK_BYTES // (4 * self._size))
        for start in range(0, queries.shape[0], block):
            chunk = queries[start : start + block]
            # a few queries: numpy's own loop on this thread (BLAS would start threads that spin for each one)
            products = np.einsum("qd,nd->qn", chunk, matrix) if chunk.shape[0] <= 8 else chunk @ matrix.T
            if count < self._size:
                top = np.argpartition(-products, count - 1, axis=1)[:, :count]
            else:
                top = np.broadcast_to(np.arange(self._size), products.shape).copy()
            top_scores = np.take_along_axis(products, top, axis=1)
            order = np.argsort(-top_scores, axis=1, kind="stable")
            rows = np.take_along_axis(top, order, axis=1)
            keys[start : start + block, :count] = self._keys[rows]
            scores[start : start + block, :count] = np.take_along_axis(top_scores, order, axis=1)
        return keys, scores

    # --- persistence -----------------------------------------------------------------------------
    def write(self, stream) -> None:
        stream.write(np.ascontiguousarray(self._keys[: self._size]).tobytes())
        stream.write(np.ascontiguousarray(self._vectors[: self._size]).tobytes())

    @classmethod
    def read(cls, path: Path, dim: int, count: int) -> "ExactIndex":
        index = cls(dim)
        with open(path, "rb") as stream:
            keys = np.fromfile(stream, dtype=np.int64, count=count)
            vectors = np.fromfile(stream, dtype=np.float32, count=count * dim)
        if keys.size != count or vectors.size != count * dim:
            raise ValueError("the exact index file is shorter than its header says")
        index._keys, index._vectors, index._size = keys, vectors.reshape(count, dim), count
        index._row = dict(zip(keys.tolist(), range(count)))
        if len(index._row) != count:
            raise ValueError("the exact index file repeats keys")
        return index


class HnswIndex:
    """An HNSW graph of unit vectors under int64 keys (usearch, vectors quantised to 8 bits).

    Search is approximate: ask for more candidates than needed and score them
    exactly.  Removing a key leaves a tombstone in the graph; :attr:`removed`
    counts them so the owner can rebuild when too many accumulate.
    """

    kind = "hnsw"

    def __init__(self, dim: int, _index=None):
        from .._utils.optional import require

        require("usearch", "the approximate speaker index")
        from usearch.index import Index

        self.dim = int(dim)
        self._index = _index or Index(
            ndim=self.dim,
            metric="ip",
            dtype=HNSW_DTYPE,
            connectivity=HNSW_CONNECTIVITY,
            expansion_add=HNSW_EXPANSION_ADD,
            expansion_search=HNSW_EXPANSION_SEARCH,
        )
        self.removed = 0

    def __len__(self) -> int:
        return len(self._index)

    @property
    def nbytes(self) -> int:
        return int(self._index.memory_usage)

    def upsert(self, keys, vectors, threads: int = 1) -> None:
        keys, vectors = as_keys(keys), _rows(vectors, self.dim)
        if keys.size == 0:
            return
        if len(self._index):
            present = np.asarray(self._index.contains(keys), dtype=bool).reshape(-1)
            if present.any():
                self.removed += int(np.sum(self._index.remove(keys[present])))
        serial = keys.size
        if threads >= HNSW_PARALLEL_THREADS and keys.size >= HNSW_PARALLEL_BATCH:
            serial = max(0, min(keys.size, HNSW_PARALLEL_FROM - len(self._index)))
        if serial:
            self._index.add(keys[:serial], vectors[:serial], threads=1)
        if keys.size > serial:
            self._index.add(keys[serial:], vectors[serial:], threads=threads)
            self._reattach(keys[serial:], vectors[serial:], threads)

    def _reattach(self, keys: np.ndarray, vectors: np.ndarray, threads: int) -> int:
        """Insert again, one at a time, those of ``keys`` (just added in parallel) that their own vector misses."""
        self._index.expansion_search = 64  # type: ignore[misc]  # a quick first look
        found = np.asarray(self._index.search(vectors, 1, threads=threads).keys).reshape(-1)
        doubtful = np.flatnonzero(found.astype(np.int64) != keys)
        lost = 0
        if doubtful.size:
            self._index.expansion_search = HNSW_EXPANSION_SEARCH  # type: ignore[misc]  # as identify searches
            near = np.asarray(self._index.search(vectors[doubtful], 8, threads=threads).keys).reshape(doubtful.size, -1)
            missing = doubtful[~np.any(near.astype(np.int64) == keys[doubtful, None], axis=1)]
            lost = int(missing.size)
            if lost:
                self.removed += int(np.sum(self._index.remove(keys[missing])))
                self._index.add(keys[missing], vectors[missing], threads=1)
        self._index.expansion_search = HNSW_EXPANSION_SEARCH  # type: ignore[misc]
        if lost:
            log.info(
                "speaker index: %d of %d vectors inserted in parallel were unreachable; inserted again", lost, len(keys)
            )
        return lost

    def remove(self, keys) -> int:
        keys = as_keys(keys)
        if keys.size == 0 or not len(self._index):
            return 0
        present = np.asarray(self._index.contains(keys), dtype=bool).reshape(-1)
        if not present.any():
            return 0
        gone = int(np.sum(self._index.remove(keys[present])))
        self.removed += gone
        return gone

    def contains(self, keys) -> np.ndarray:
        return np.asarray(self._index.contains(as_keys(keys)), dtype=bool).reshape(-1)

    def keys(self) -> np.ndarray:
        return np.asarray(self._index.keys, dtype=np.int64).reshape(-1)

    def get(self, keys) -> np.ndarray:
        found = self._index.get(as_keys(keys), dtype="f32")
        rows = found if isinstance(found, tuple) else [found]
        return np.stack([np.asarray(r, dtype=np.float32).reshape(-1) for r in rows])

    def search(
        self, queries, k: int, threads: int = 1, expansion: Optional[int] = None
    ) -> Tuple[np.ndarray, np.ndarray]:
        """``(keys [Q, k], scores [Q, k])``, best first by the quantised inner product; key -1 pads.

        ``expansion``: the search's breadth (ef; default :data:`HNSW_EXPANSION_SEARCH`, at least ``k``)."""
        queries = _rows(queries, self.dim)
        k = int(k)
        keys = np.full((queries.shape[0], k), -1, dtype=np.int64)
        scores = np.full((queries.shape[0], k), -np.inf, dtype=np.float32)
        if not len(self._index):
            return keys, scores
        breadth = HNSW_EXPANSION_SEARCH if expansion is None else int(expansion)
        self._index.expansion_search = max(breadth, k)  # type: ignore[misc]  # usearch's setter
        matches = self._index.search(queries, k, threads=max(1, threads))
        found_keys = np.asarray(matches.keys).reshape(queries.shape[0], -1)
        found = np.asarray(matches.distances, dtype=np.float32).reshape(queries.shape[0], -1)
        # one query gives usearch's Matches (no counts), several its BatchMatches
        counts = np.asarray(getattr(matches, "counts", [np.asarray(matches.keys).size])).reshape(-1)
        for row, count in enumerate(counts.tolist()):
            keys[row, :count] = found_keys[row, :count].astype(np.int64)
            scores[row, :count] = -found[row, :count]  # usearch reports a distance; higher score = closer
        return keys, scores

    def write_to(self, path: Path) -> None:
        self._index.save(str(path))

    @classmethod
    def read(cls, path: Path, dim: int, count: int) -> "HnswIndex":
        from .._utils.optional import require

        require("usearch", "the approximate speaker index")
        from usearch.index import Index

        index = Index(
            ndim=int(dim),
            metric="ip",
            dtype=HNSW_DTYPE,
            connectivity=HNSW_CONNECTIVITY,
            expansion_add=HNSW_EXPANSION_ADD,
            expansion_search=HNSW_EXPANSION_SEARCH,
        )
        index.load(str(path))
        if len(index) != count or index.ndim != dim:
            raise ValueError(f"the HNSW index file holds {len(index)} vectors of dimension {index.ndim}")
        return cls(dim, _index=index)


VectorIndex = Union[ExactIndex, HnswIndex]


def make_index(kind: str, dim: int, keys=None, vectors=None, threads: int = 1) -> VectorIndex:
    """A new index of ``kind`` (``"exact"`` or ``"hnsw"``), filled with ``keys``/``vectors`` when given."""
    index: VectorIndex = HnswIndex(dim) if kind == "hnsw" else ExactIndex(dim)
    if keys is not None:
        index.upsert(keys, vectors, threads=threads)
    return index
