"""An embedder that remembers each window's embedding, for tests and benchmarks that diarize one
recording several times (count estimated, then given; several clustering methods)."""

import hashlib
from pathlib import Path

import numpy as np

__all__ = ["CachedEmbedder"]


class CachedEmbedder:
    """Wraps an :class:`redimnet.Embedder`: each window's embedding is kept, keyed by the window's samples,
    so a recording diarized again is not embedded again. Everything else is the wrapped embedder's.

    :meth:`save` and :meth:`load` keep the embeddings of one recording in a file between runs.
    """

    def __init__(self, embedder):
        self.embedder = embedder
        self.cache: dict = {}

    def __getattr__(self, name):
        return getattr(self.embedder, name)

    def load(self, path: Path) -> None:
        """Start from the embeddings kept in ``path`` (by :meth:`save`), if it exists."""
        self.cache.clear()
        if path.exists():
            with np.load(path) as kept:
                self.cache.update(zip(kept["keys"].tolist(), kept["rows"]))

    def save(self, path: Path) -> None:
        if self.cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, keys=np.array(list(self.cache)), rows=np.stack(list(self.cache.values())))

    def embed_prepared(self, waves):
        keys = [hashlib.sha1(np.ascontiguousarray(w).tobytes()).hexdigest() for w in waves]
        missing = [i for i, k in enumerate(keys) if k not in self.cache]
        if missing:
            fresh = self.embedder.embed_prepared([waves[i] for i in missing])
            for i, row in zip(missing, fresh):
                self.cache[keys[i]] = row
        return np.stack([self.cache[k] for k in keys])
