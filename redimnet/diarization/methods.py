"""The clustering methods by name: what ``Diarizer(clustering=...)`` and ``redimnet diarize --clustering`` take.

A new method is a :class:`~redimnet.diarization.clustering.Clustering` subclass, named here.
"""

from typing import Optional

from ..errors import InvalidArgumentError
from .clustering import AgglomerativeClustering, Clustering, SpectralClustering
from .vbx import VBxClustering

__all__ = ["CLUSTERING_NAMES", "make_clustering"]

CLUSTERING_NAMES = ("spectral", "ahc", "vbx")


def make_clustering(name: str = "spectral", threshold: Optional[float] = None, backend=None) -> Clustering:
    """A clustering method by name (``spectral``, ``ahc`` or ``vbx``).

    ``threshold`` applies to ``ahc``; ``backend`` (a PLDA :class:`redimnet.evaluation.backend.Backend`,
    or the path of one) is what ``vbx`` needs.
    """
    if name == "spectral":
        return SpectralClustering()
    if name == "ahc":
        return AgglomerativeClustering() if threshold is None else AgglomerativeClustering(threshold)
    if name == "vbx":
        if backend is None:
            raise InvalidArgumentError(
                "--clustering vbx needs a PLDA back-end of the model (--backend B.npz, or a "
                "<weights>.diarization.npz next to the weights); see docs/diarization.md for how to make one"
            )
        if not hasattr(backend, "plda"):
            from ..evaluation.backend import Backend

            backend = Backend.load(backend)
        return VBxClustering(backend)
    raise InvalidArgumentError(f"unknown clustering {name!r}; choose one of {', '.join(CLUSTERING_NAMES)}")
