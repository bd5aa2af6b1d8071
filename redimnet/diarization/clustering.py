"""Grouping window embeddings by speaker, with the number of speakers estimated or given.

Two methods, both on L2-normalised embeddings and cosine similarity:

:class:`SpectralClustering` (the default)
    Affinity = cosine similarity, each row pruned to its strongest fraction
    ``p`` (at least 10 neighbours; p chosen per recording from a small grid by the normalised
    maximum eigengap criterion of Park et al., 2019), symmetrised; the
    number of speakers is where the gap between consecutive eigenvalues of
    the normalised Laplacian is largest (within the allowed range); k-means
    (scipy, best of 10 k-means++ starts) on the first eigenvectors.  Needs no model-dependent
    threshold.

:class:`AgglomerativeClustering`
    Average-linkage hierarchical clustering (scipy) cut where the cosine
    similarity between clusters falls below ``threshold``; clusters of fewer
    than ``min_cluster_size`` windows are then merged into the nearest large one.

Scaling.  A dense affinity matrix of ``n`` windows costs ``8 n^2`` bytes
(10 hours at a 0.75 s hop: 48,000 windows, 18 GB).  Neither method ever
builds one larger than ``max_direct`` windows (default 1,000 for spectral,
2,000 for agglomerative, i.e. 8 and 32 MB): above that the windows are cut
into consecutive chunks of ``max_direct``, each chunk is clustered on its own,
and the chunk clusters are linked into speakers (:func:`chunk_and_link`).
Memory is therefore ``O(max_direct^2)`` plus the embeddings themselves
(``n * 192 * 4`` bytes: 37 MB for 10 h).
"""

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple, Union, cast

import numpy as np

from ..errors import InvalidArgumentError

DEFAULT_MAX_SPEAKERS = 20


def _one_blas_thread():
    """BLAS on one thread while clustering (when threadpoolctl is installed).

    The matrices are small (at most ``max_direct`` squared); several BLAS
    threads gain little there and, on a machine busy with other work, wait
    on each other for up to ten times longer.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def normalise(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float64; :func:`redimnet.embedding.similarity.l2_normalize`'s policy)."""
    from ..embedding.similarity import l2_normalize

    return l2_normalize(embeddings, "window embedding", dtype=np.float64)


def _average_linkage(x: np.ndarray):
    from scipy.cluster.hierarchy import linkage

    return linkage(x, method="average", metric="cosine")


def _cut(tree, count: int) -> np.ndarray:
    from scipy.cluster.hierarchy import fcluster

    return fcluster(tree, t=count, criterion="maxclust") - 1


def relabel_by_appearance(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0, 1, ... in order of first appearance."""
    labels = np.asarray(labels)
    _, first = np.unique(labels, return_index=True)
    order = labels[np.sort(first)]
    mapping = {old: new for new, old in enumerate(order)}
    return np.array([mapping[v] for v in labels], dtype=np.int64)


def with_context(x: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """Each unit row of ``x`` plus its neighbours in the same region (the previous and next rows
    when ``regions`` gives them the same number), normalised.

    Overlapping windows of one stretch of speech are almost always one speaker; summing them
    gives each window about three windows of context, so a voice that drifts within a turn (pitch
    falling towards its end, say) stays one cluster instead of splitting into parts of turns.
    """
    regions = np.asarray(regions)
    if regions.shape != (len(x),):
        raise InvalidArgumentError(f"need one region number per window: {len(x)} windows, {regions.shape} numbers")
    same = regions[1:] == regions[:-1]
    context = x.copy()
    context[1:][same] += x[:-1][same]
    context[:-1][same] += x[1:][same]
    lengths = np.linalg.norm(context, axis=1, keepdims=True)
    return np.where(lengths > 1e-6, context / np.maximum(lengths, 1e-6), x)  # neighbours that cancel: the row alone


def centroids(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``[clusters, dim]``: the normalised sum of the unit rows of ``x`` with each label ``0..labels.max()``."""
    labels = np.asarray(labels, dtype=np.int64)
    sums = np.zeros((int(labels.max()) + 1 if len(labels) else 0, x.shape[1]))
    np.add.at(sums, labels, x)
    return normalise(sums)


@dataclass
class Clusters:
    """What a clustering decided about one recording.

    ``labels``: one per row, ``0..count-1`` in order of first appearance; ``count``: the number of
    speakers; ``uncertain``: the evidence for this count was close to that for another one (see the
    method); ``evidence``: the method's numbers behind the count, for reports (JSON-ready).
    """

    labels: np.ndarray
    count: int
    uncertain: bool = False
    evidence: Dict[str, Any] = field(default_factory=dict)


class Clustering:
    """Base class: :meth:`fit` maps ``[n, dim]`` embeddings to :class:`Clusters` (:meth:`cluster`: the labels only)."""

    name = "clustering"
    max_direct = 1000
    standardise = False

    def fit(
        self,
        embeddings: np.ndarray,
        num_speakers: Optional[int] = None,
        min_speakers: int = 1,
        max_speakers: Optional[int] = None,
        regions: Optional[np.ndarray] = None,
    ) -> Clusters:
        """Speaker labels of the rows of ``embeddings`` (in time order), their count and how sure it is.

        With ``standardise`` set (an attribute), every dimension is first
        scaled to zero mean and unit variance over the recording (for
        hand-made features such as the MFCC baseline, whose dimensions have
        unrelated scales; not needed for speaker embeddings).

        ``regions`` (optional, one number per row): rows are windows, and neighbouring rows with
        the same number overlap in time (windows of one speech region).  Each row is then clustered
        by its point plus its neighbours' (:func:`with_context`); one label per row is returned.

        ``num_speakers`` fixes the count; otherwise it is estimated between ``min_speakers`` and
        ``max_speakers`` (default :data:`DEFAULT_MAX_SPEAKERS`), both capped at the number of rows.
        """
        n = len(embeddings)
        low, high = speaker_bounds(n, num_speakers, min_speakers, max_speakers)
        if n <= 1:
            return Clusters(np.zeros(n, dtype=np.int64), n)
        with _one_blas_thread():
            found = self._fit(embeddings, low, high, regions)
        labels = relabel_by_appearance(found.labels)
        return Clusters(labels, int(labels.max()) + 1, found.uncertain, found.evidence)

    def cluster(
        self,
        embeddings: np.ndarray,
        num_speakers: Optional[int] = None,
        min_speakers: int = 1,
        max_speakers: Optional[int] = None,
        regions: Optional[np.ndarray] = None,
    ) -> np.ndarray:
        """The labels of :meth:`fit`."""
        return self.fit(embeddings, num_speakers, min_speakers, max_speakers, regions).labels

    def _fit(self, embeddings: np.ndarray, low: int, high: int, regions: Optional[np.ndarray]) -> Clusters:
        """Cluster at least two rows into ``low..high`` clusters (bounds already checked and capped).

        The default: :meth:`cluster_points` on the unit points (with window context when ``regions``
        is given); longer recordings than ``max_direct`` windows go through :func:`chunk_and_link`.
        """
        x = self.points(embeddings)
        if regions is not None:
            x = with_context(x, regions)
        if len(x) > self.max_direct:
            return chunk_and_link(self, x, low, high)
        return as_clusters(self.cluster_points(x, low, min(high, len(x))))

    def points(self, embeddings: np.ndarray) -> np.ndarray:
        """The unit vectors the clustering works on: ``embeddings`` (standardised first when
        ``standardise`` is set), scaled to unit length, float64."""
        embeddings = np.asarray(embeddings, dtype=np.float64)
        if self.standardise and len(embeddings) > 1:
            embeddings = (embeddings - embeddings.mean(axis=0)) / np.maximum(embeddings.std(axis=0), 1e-8)
        return normalise(embeddings)

    def centroid_scores(self, embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """``[n, clusters]``: cosine similarity of every row of ``embeddings`` to every cluster's
        centroid (the normalised mean of its members' :meth:`points`); clusters are ``0..labels.max()``."""
        x = self.points(embeddings)
        return x @ centroids(x, labels).T

    def cluster_points(self, x: np.ndarray, min_speakers: int, max_speakers: int) -> Union[np.ndarray, Clusters]:
        """Labels (or :class:`Clusters`) of at most ``max_direct`` unit vectors, between ``min_speakers``
        and ``max_speakers`` clusters."""
        raise NotImplementedError


def speaker_bounds(
    rows: int, num_speakers: Optional[int] = None, min_speakers: int = 1, max_speakers: Optional[int] = None
) -> Tuple[int, int]:
    """``(low, high)``: the range of speaker counts to consider for ``rows`` windows, capped at ``rows``.

    Raises :class:`InvalidArgumentError` for a count below 1, more speakers than windows, or
    ``max_speakers < min_speakers``.
    """
    if num_speakers is not None:
        if num_speakers < 1:
            raise InvalidArgumentError(f"the number of speakers must be at least 1, got {num_speakers}")
        if num_speakers > rows > 0:
            raise InvalidArgumentError(
                f"{num_speakers} speakers asked for, but the speech gives only {rows} "
                "window(s) to cluster; give fewer speakers or shorter windows "
                "(--window/--hop)"
            )
        min_speakers = max_speakers = num_speakers
    max_speakers = DEFAULT_MAX_SPEAKERS if max_speakers is None else max_speakers
    if min_speakers < 1 or max_speakers < min_speakers:
        raise InvalidArgumentError(f"need 1 <= min speakers <= max speakers, got {min_speakers} and {max_speakers}")
    return min(min_speakers, max(rows, 1)), min(max_speakers, max(rows, 1))


def as_clusters(found: Union[np.ndarray, Clusters]) -> Clusters:
    """``found`` (labels or :class:`Clusters`) as :class:`Clusters`."""
    if isinstance(found, Clusters):
        return found
    labels = np.asarray(found, dtype=np.int64)
    return Clusters(labels, int(labels.max()) + 1 if len(labels) else 0)


def chunk_and_link(method: Clustering, x: np.ndarray, low: int, high: int) -> Clusters:
    """``method``'s clustering of more unit rows than its ``max_direct``, without a matrix over all of them.

    The rows (windows in time order) are cut into consecutive chunks of ``max_direct``; each chunk is
    clustered on its own (its count estimated, up to ``high``); the chunk clusters' normalised mean
    vectors are clustered together (a speaker recurs in many chunks; this step repeats while there
    are more than ``max_direct`` of them); and every row finally goes to the nearest of the resulting
    speakers' centroids, which mends a chunk cluster that held two speakers.  Memory: one chunk's
    matrix (``8 max_direct^2`` bytes) plus ``rows x speakers`` scores.
    """
    size = max(2, method.max_direct)
    points, owner = x, np.arange(len(x))
    while len(points) > size:
        groups = np.empty(len(points), dtype=np.int64)
        offset = 0
        for first in range(0, len(points), size):
            chunk = points[first : first + size]
            labels = as_clusters(method.cluster_points(chunk, 1, min(high, len(chunk)))).labels
            _, labels = np.unique(labels, return_inverse=True)
            groups[first : first + len(chunk)] = labels + offset
            offset += int(labels.max()) + 1
        points = centroids(points, groups)
        owner = groups[owner]
    found = as_clusters(method.cluster_points(points, min(low, len(points)), min(high, len(points))))
    labels = found.labels[owner]
    nearest = np.argmax(x @ centroids(x, labels).T, axis=1)
    if len(np.unique(nearest)) >= low:
        labels = nearest
    labels = np.unique(labels, return_inverse=True)[1]
    return Clusters(labels, int(labels.max()) + 1, found.uncertain, found.evidence)


class AgglomerativeClustering(Clustering):
    """Average-linkage clustering cut at a cosine-similarity ``threshold`` (default 0.5)."""

    name = "ahc"

    def __init__(self, threshold: float = 0.5, min_cluster_size: int = 3, max_direct: int = 2000):
        if not -1 <= threshold <= 1:
            raise InvalidArgumentError(f"the clustering threshold is a cosine similarity in [-1, 1], got {threshold}")
        self.threshold, self.min_cluster_size, self.max_direct = float(threshold), int(min_cluster_size), max_direct

    def cluster_points(self, x, min_speakers, max_speakers):
        from scipy.cluster.hierarchy import fcluster

        tree = _average_linkage(x)
        labels = fcluster(tree, t=1.0 - self.threshold, criterion="distance") - 1
        labels = self._absorb_small(x, labels, min_speakers)
        count = len(np.unique(labels))
        if count < min_speakers or count > max_speakers:
            labels = _cut(tree, min(max(count, min_speakers), max_speakers))
        return labels

    def _absorb_small(self, x, labels, min_speakers):
        names, sizes = np.unique(labels, return_counts=True)
        big = names[sizes >= self.min_cluster_size]
        if len(big) < max(1, min_speakers) or len(big) == len(names):
            return labels
        centroids = normalise(np.stack([x[labels == b].sum(axis=0) for b in big]))
        small = ~np.isin(labels, big)
        labels = labels.copy()
        labels[small] = big[np.argmax(x[small] @ centroids.T, axis=1)]
        return labels


class SpectralClustering(Clustering):
    """Spectral clustering with eigengap speaker counting (see the module documentation)."""

    name = "spectral"
    p_grid = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3)
    min_neighbours = 10  # fewer leaves small recordings' graphs in pieces (spurious zero eigenvalues)
    uncertain_ratio = 0.75  # the count is uncertain when another eigengap is at least this fraction of the chosen one

    def __init__(self, p: Optional[float] = None, max_direct: int = 1000, seed: int = 0):
        if p is not None and not 0 < p <= 1:
            raise InvalidArgumentError(f"the pruning fraction p must be in (0, 1], got {p}")
        self.p, self.max_direct, self.seed = p, int(max_direct), seed

    @staticmethod
    def _laplacian_spectrum(similarity: np.ndarray, p: float, count: int) -> Tuple[np.ndarray, np.ndarray]:
        """The ``count`` smallest eigenvalues (ascending) and eigenvectors of the pruned graph's
        normalised Laplacian."""
        from scipy.linalg import eigh

        n = len(similarity)
        keep = min(n, max(SpectralClustering.min_neighbours, int(np.ceil(p * n))))
        affinity = similarity.copy()
        if keep < n:
            weakest = np.argpartition(affinity, n - keep, axis=1)[:, : n - keep]
            np.put_along_axis(affinity, weakest, 0.0, axis=1)
        affinity = 0.5 * (affinity + affinity.T)
        np.fill_diagonal(affinity, 0.0)
        degree = np.maximum(affinity.sum(axis=1), 1e-10)
        scale = 1.0 / np.sqrt(degree)
        laplacian = -(scale[:, None] * affinity * scale[None, :])
        laplacian[np.diag_indices(n)] += 1.0
        return eigh(laplacian, subset_by_index=[0, min(n, count) - 1], overwrite_a=True, check_finite=False)

    def cluster_points(self, x, min_speakers, max_speakers):
        n = len(x)
        if n <= 2:
            return np.arange(n) if min_speakers >= n else np.zeros(n, dtype=np.int64)
        similarity = np.clip(x @ x.T, 0.0, 1.0)  # negative similarity carries no affinity
        best: Optional[Tuple[float, int, np.ndarray, float]] = None
        tried = set()
        for p in [self.p] if self.p else self.p_grid:
            keep = min(n, max(self.min_neighbours, int(np.ceil(p * n))))
            if keep in tried:
                continue
            tried.add(keep)
            upper = min(max_speakers, n - 1)
            values, vectors = self._laplacian_spectrum(similarity, p, upper + 1)
            gaps = np.diff(values[: upper + 1])  # gaps[k-1] = lambda_k - lambda_{k-1}: k clusters
            candidates = np.arange(min_speakers, upper + 1)
            k = int(candidates[np.argmax(gaps[candidates - 1])]) if len(candidates) else min_speakers
            ratio = p / max(gaps[k - 1], 1e-10) if k - 1 < len(gaps) else np.inf
            others = np.sort(gaps[candidates - 1])[::-1] if len(candidates) > 1 else np.zeros(1)
            runner_up = float(others[1] / max(others[0], 1e-10)) if len(others) > 1 else 0.0
            if best is None or ratio < best[0]:
                best = (ratio, k, vectors, runner_up)
        _, k, vectors, runner_up = cast(Tuple[float, int, np.ndarray, float], best)  # the grid has at least one value
        evidence = {"second_eigengap_ratio": round(runner_up, 3)}
        uncertain = runner_up >= self.uncertain_ratio
        if k <= 1:
            return Clusters(np.zeros(n, dtype=np.int64), 1, uncertain, evidence)
        return Clusters(_kmeans(normalise(vectors[:, :k]), k, self.seed), k, uncertain, evidence)


def _kmeans(points: np.ndarray, k: int, seed: int, restarts: int = 10) -> np.ndarray:
    """k-means (scipy's, k-means++ starts): the labels of the best of ``restarts`` runs."""
    from scipy.cluster.vq import kmeans2

    rng = np.random.default_rng(seed)
    best, best_cost = None, np.inf
    for _ in range(restarts):
        centres, labels = kmeans2(points, k, minit="++", seed=rng)
        cost = float(np.sum((points - centres[labels]) ** 2))
        if cost < best_cost and len(np.unique(labels)) == k:
            best, best_cost = labels, cost
    if best is None:  # every run lost a cluster: keep the last
        best = labels
    return best
