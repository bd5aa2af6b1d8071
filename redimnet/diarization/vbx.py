"""VBx: Bayesian hidden-Markov-model clustering of window embeddings in a PLDA space.

The method of Landini, Profant, Diez and Burget, "Bayesian HMM clustering of x-vector sequences
(VBx) in speaker diarization" (Computer Speech & Language 71, 2022), written here from the
paper's equations.

The model.  Window embeddings (each with its neighbours in the same speech region, as every
method here clusters them, see :func:`~redimnet.diarization.clustering.with_context`) are first
mapped into the space of a two-covariance PLDA model
(:class:`redimnet.evaluation.backend.PLDA`), where the within-speaker covariance is the identity
and the between-speaker covariance is ``diag(phi)``; only the ``dims`` directions with the
largest ``phi`` are kept.  A speaker ``s`` has a latent variable ``y_s ~ N(0, I)`` and the
windows it speaks are ``x_t ~ N(sqrt(phi) * y_s, I)``.  Who speaks at window ``t`` is a hidden
Markov chain: the speaker stays with probability ``loop`` and otherwise jumps to speaker ``s``
with probability ``prior_s``.

Inference.  Variational Bayes alternates three updates until the evidence lower bound (ELBO)
stops rising: the posterior of every ``y_s`` given the soft assignments (Gaussian, diagonal);
the assignments given the speakers (forward-backward over the chain, ``O(windows x speakers)``);
and the speaker priors (the expected number of times each speaker is entered).  It starts from
more clusters than speakers; a speaker that explains nothing its neighbours do not loses its
prior and drops out, which is how the number of speakers is decided.

Two factors temper the model: ``fa`` scales the likelihood of the windows (neighbouring windows
overlap, so they are not independent observations), ``fb`` scales the prior's weight against
them (the cost of one more speaker).  The paper's defaults for 1.5 s windows every 0.25 s are
``fa = 0.3``, ``fb = 17``, ``loop = 0.99``; windows every 0.75 s change speaker more often per
step, so ``loop`` is lower here.
"""

from pathlib import Path
from typing import List, Tuple

import numpy as np

from ..errors import InvalidArgumentError
from .clustering import Clustering, Clusters, normalise, with_context


def forward_backward(log_emissions: np.ndarray, prior: np.ndarray, loop: float) -> Tuple[np.ndarray, np.ndarray, float]:
    """``(responsibilities [T, S], entries [S], log-likelihood)`` of a chain that stays with probability ``loop``
    and otherwise jumps to speaker ``s`` with probability ``prior[s]``.

    ``entries[s]`` is the expected number of jumps into ``s`` plus the probability of starting in it.
    Scaled forward-backward: the rank-one jump term makes each step ``O(S)``.
    """
    steps, speakers = log_emissions.shape
    shift = log_emissions.max(axis=1, keepdims=True)
    emissions = np.exp(log_emissions - shift)
    jump = (1.0 - loop) * prior
    forward = np.empty((steps, speakers))
    scale = np.empty(steps)
    current = prior * emissions[0]
    scale[0] = current.sum()
    forward[0] = current / scale[0]
    for t in range(1, steps):
        current = emissions[t] * (loop * forward[t - 1] + jump)
        scale[t] = current.sum()
        forward[t] = current / scale[t]
    backward = np.empty((steps, speakers))
    backward[-1] = 1.0
    for t in range(steps - 2, -1, -1):
        following = emissions[t + 1] * backward[t + 1]
        backward[t] = (loop * following + jump @ following) / scale[t + 1]
    responsibilities = forward * backward
    responsibilities /= responsibilities.sum(axis=1, keepdims=True)
    entries = responsibilities[0].copy()
    if steps > 1:
        entries += jump * np.sum(emissions[1:] * backward[1:] / scale[1:, None], axis=0)
    return responsibilities, entries, float(np.sum(np.log(scale)) + shift.sum())


def vbx(
    x: np.ndarray,
    phi: np.ndarray,
    responsibilities: np.ndarray,
    loop: float = 0.8,
    fa: float = 0.3,
    fb: float = 17.0,
    max_iterations: int = 40,
    tolerance: float = 1e-4,
) -> Tuple[np.ndarray, np.ndarray, List[float]]:
    """Run VBx on ``x`` ``[T, D]`` (PLDA space, between-speaker variances ``phi`` ``[D]``) from the initial
    soft assignments ``responsibilities`` ``[T, S]``.

    Returns the final responsibilities, the speaker priors ``[S]`` (a speaker whose prior falls to
    about zero has dropped out) and the ELBO after every iteration.
    """
    x = np.asarray(x, dtype=np.float64)
    phi = np.asarray(phi, dtype=np.float64)
    responsibilities = np.asarray(responsibilities, dtype=np.float64)
    speakers = responsibilities.shape[1]
    prior = np.full(speakers, 1.0 / speakers)
    root = np.sqrt(phi)
    constant = -0.5 * np.sum(x**2, axis=1, keepdims=True) - 0.5 * x.shape[1] * np.log(2 * np.pi)
    ratio = fa / fb
    history: List[float] = []
    for _ in range(max_iterations):
        counts = responsibilities.sum(axis=0)
        precision = 1.0 + ratio * counts[:, None] * phi[None, :]  # posterior precision of y_s (diagonal)
        mean = ratio * (responsibilities.T @ x) * root[None, :] / precision  # posterior mean of y_s
        expected = 0.5 * np.sum((mean**2 + 1.0 / precision) * phi[None, :], axis=1)
        log_emissions = fa * (constant + x @ (mean * root[None, :]).T - expected[None, :])
        responsibilities, entries, log_likelihood = forward_backward(log_emissions, prior, loop)
        divergence = 0.5 * np.sum(1.0 / precision + mean**2 - 1.0 + np.log(precision))
        history.append(log_likelihood - fb * divergence)
        prior = entries / entries.sum()
        if len(history) > 1 and history[-1] - history[-2] < tolerance * abs(history[-1]):
            break
    return responsibilities, prior, history


class PLDASpace:
    """Window embeddings mapped into a PLDA model's diagonal space, keeping its ``dims`` most speaker-discriminative
    directions: ``project(embeddings) -> (x [n, dims], phi [dims])``.

    ``backend``: a :class:`redimnet.evaluation.backend.Backend` of kind ``plda`` (``redimnet backend train``),
    fitted on the same model's embeddings of windows of known speakers, with their context (what
    ``redimnet diarize --save-windows`` writes).
    """

    def __init__(self, backend, dims: int = 16):
        if getattr(backend, "plda", None) is None:
            raise InvalidArgumentError(
                f"VBx needs a PLDA back-end (made with 'redimnet backend train --kind plda'), got a "
                f"{getattr(backend, 'kind', type(backend).__name__)!r} back-end"
            )
        if dims < 1:
            raise InvalidArgumentError(f"VBx needs at least one PLDA dimension, got {dims}")
        self.backend = backend
        order = np.argsort(backend.plda.psi)[::-1][:dims]
        self.order = order
        self.phi = backend.plda.psi[order]

    def project(self, embeddings: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        if np.asarray(embeddings).shape[1] != self.backend.input_dim:
            raise InvalidArgumentError(
                f"the PLDA back-end was fitted on {self.backend.input_dim}-dimensional embeddings, but the "
                f"model gives {np.asarray(embeddings).shape[1]}: use a back-end made with this model"
            )
        projected = self.backend.plda.project(self.backend.transform(embeddings))
        return projected[:, self.order], self.phi


def _average_linkage_labels(points: np.ndarray, count: int) -> np.ndarray:
    from scipy.cluster.hierarchy import fcluster, linkage

    if len(points) <= count:
        return np.arange(len(points))
    return fcluster(linkage(points, method="average", metric="cosine"), t=count, criterion="maxclust") - 1


class VBxClustering(Clustering):
    """VBx (see the module documentation) in the space of a PLDA back-end.

    Args:
        backend: the PLDA back-end (:class:`redimnet.evaluation.backend.Backend`) fitted on this model's
            embeddings of windows of known speakers.
        fa, fb, loop: the model's factors (see the module documentation).
        dims: PLDA directions kept.
        initial_clusters: VBx starts from this many clusters (average linkage on the windows with
            their context, at least twice the largest count allowed); more than there are speakers.
        max_direct: at most this many windows in one linkage (a longer recording is started chunk by chunk,
            see :meth:`_initial`, and its speaker cost grows with its length, see :meth:`speaker_cost`);
            VBx itself runs on every window.
    """

    name = "vbx"
    cost_windows = 1000  # 12.5 minutes of speech at a 0.75 s hop (see speaker_cost)

    def __init__(
        self,
        backend,
        fa: float = 0.3,
        fb: float = 17.0,
        loop: float = 0.8,
        dims: int = 16,
        initial_clusters: int = 40,
        max_direct: int = 1000,
    ):
        if not 0 < fa or not 0 < fb or not 0 <= loop < 1:
            raise InvalidArgumentError(f"VBx needs fa > 0, fb > 0 and 0 <= loop < 1, got {fa}, {fb}, {loop}")
        self.space = PLDASpace(backend, dims)
        self.fa, self.fb, self.loop = float(fa), float(fb), float(loop)
        self.initial_clusters, self.max_direct = int(initial_clusters), int(max_direct)

    def _initial(self, x: np.ndarray, z: np.ndarray, phi: np.ndarray, count: int) -> np.ndarray:
        """Labels of ``count`` initial clusters of the windows ``x`` (unit vectors, with context; ``z``: the same
        in the PLDA space).

        Up to ``max_direct`` windows: average linkage on all of them.  A longer recording: each consecutive
        chunk of ``max_direct`` windows is over-clustered by average linkage into ``count`` clusters (each
        about 25 windows of one voice), and the chunk clusters are merged across the recording by their PLDA
        likelihood ratio (:func:`merge_by_likelihood`, on each cluster's count and sum only).  The merging
        runs whenever ``max_direct`` chunk clusters are pending, so its memory is bounded too.  (Reducing
        the windows to group means first mixes voices: a mean of 64 windows, 48 s of a conversation, is
        rarely one speaker, and VBx does not undo a mixed start.)
        """
        if len(x) <= self.max_direct:
            return _average_linkage_labels(x, count)
        labels = np.empty(len(x), dtype=np.int64)
        settled, pending = 0, 0  # labels [0, settled) are merged clusters; [settled, settled+pending) fresh ones
        for first in range(0, len(x), self.max_direct):
            chunk = slice(first, first + self.max_direct)
            found = np.unique(_average_linkage_labels(x[chunk], count), return_inverse=True)[1]
            labels[chunk] = found + settled + pending
            pending += int(found.max()) + 1
            if settled + pending > self.max_direct or first + self.max_direct >= len(x):
                done = chunk.stop
                labels[:done] = merge_by_likelihood(z[:done], phi, labels[:done], count, self.fa)
                settled, pending = int(labels[:done].max()) + 1, 0
        return labels

    def _run(self, z: np.ndarray, phi: np.ndarray, labels: np.ndarray, fb: float) -> np.ndarray:
        _, labels = np.unique(labels, return_inverse=True)
        responsibilities = np.zeros((len(labels), int(labels.max()) + 1))
        responsibilities[np.arange(len(labels)), labels] = 1.0
        responsibilities, _, _ = vbx(z, phi, responsibilities, self.loop, self.fa, fb)
        return np.argmax(responsibilities, axis=1)

    def speaker_cost(self, windows: int) -> float:
        """``fb`` for a recording of ``windows`` windows: as given up to :attr:`cost_windows` windows, then
        growing in proportion to the length.

        The evidence that splits one voice in two (a channel or a mood that differs between turns) grows
        with every window of it, while the price of one more speaker in VBx grows only with its logarithm:
        with a constant ``fb``, hours of a few recurring voices come out as dozens of speakers.  Growing the
        price with the length decides a long recording's count as if it were pieces of ``cost_windows``
        windows, about the longest recordings ``fb`` was chosen on.
        """
        return self.fb * max(1.0, windows / self.cost_windows)

    def _fit(self, embeddings, low, high, regions):
        x = normalise(np.asarray(embeddings, dtype=np.float64))
        if regions is not None:
            x = with_context(x, regions)
        z, phi = self.space.project(x)
        n = len(x)
        fb = self.speaker_cost(n)
        start = self._initial(x, z, phi, min(n, max(self.initial_clusters, 2 * high)))
        if low == high:  # a given count
            return Clusters(self._to_count(z, phi, start, high, fb), high)
        # half, then full, then double the cost of a speaker, each run starting where the last ended
        # (VBx only ever drops speakers, so the cheaper run's speakers include the dearer ones')
        cheap = self._run(z, phi, start, fb / 2)
        labels = self._run(z, phi, cheap, fb)
        cheaper = len(np.unique(cheap))
        dearer = len(np.unique(self._run(z, phi, labels, fb * 2)))
        count = len(np.unique(labels))
        if count > high:
            labels = merge_by_likelihood(z, phi, labels, high, self.fa)
        elif count < low:
            labels = self._to_count(z, phi, start, low, fb)
        count = len(np.unique(labels))
        evidence = {"count_at_half_speaker_cost": cheaper, "count_at_double_speaker_cost": dearer}
        return Clusters(labels, count, cheaper != count or dearer != count, evidence)

    def _to_count(self, z: np.ndarray, phi: np.ndarray, start: np.ndarray, count: int, fb: float) -> np.ndarray:
        """Labels with exactly ``count`` clusters: the initial clusters merged, the pair most likely to be one
        speaker (PLDA likelihood ratio) first, then refined by VBx with a cheap speaker (kept when it keeps
        ``count`` speakers).  Merging a fine clustering keeps a short interjection apart from the speaker
        who talks all the time, where asking VBx for fewer speakers would first split that speaker."""
        merged = merge_by_likelihood(z, phi, start, count, self.fa)
        refined = self._run(z, phi, merged, fb / 8)
        return refined if len(np.unique(refined)) == count else merged


def _set_likelihood(counts: np.ndarray, sums: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Log-likelihood (up to terms that cancel in ratios) that each set of vectors, with ``counts`` and
    ``sums`` (rows), comes from one speaker of the PLDA model."""
    scaled = counts[:, None] * phi[None, :]
    return np.sum(-0.5 * np.log1p(scaled) + 0.5 * phi[None, :] * sums**2 / (1.0 + scaled), axis=1)


def same_speaker_llr(z: np.ndarray, phi: np.ndarray, first, second, weight: float = 1.0) -> float:
    """PLDA log-likelihood ratio that the rows ``first`` and ``second`` of ``z`` (index arrays or masks) come from
    one speaker rather than two; ``weight`` scales every row's evidence as in :func:`merge_by_likelihood`."""
    parts = [np.asarray(z[first]), np.asarray(z[second])]
    counts = weight * np.array([len(parts[0]), len(parts[1])], dtype=np.float64)
    sums = weight * np.stack([parts[0].sum(axis=0), parts[1].sum(axis=0)])
    joined = _set_likelihood(counts.sum(keepdims=True), sums.sum(axis=0, keepdims=True), phi)[0]
    return float(joined - _set_likelihood(counts, sums, phi).sum())


def merge_by_likelihood(z: np.ndarray, phi: np.ndarray, labels: np.ndarray, count: int, weight: float = 1.0):
    """``labels`` with clusters merged, the pair with the highest PLDA log-likelihood ratio of being one speaker
    first, until ``count`` remain (or as they are when there are no more).

    ``weight`` scales every window's evidence (``fa``: neighbouring windows overlap, see the module).
    """
    _, labels = np.unique(labels, return_inverse=True)
    clusters = int(labels.max()) + 1
    if clusters <= count:
        return labels
    sums = np.zeros((clusters, z.shape[1]))
    np.add.at(sums, labels, z)
    counts = np.bincount(labels, minlength=clusters).astype(np.float64)
    sums, counts = weight * sums, weight * counts
    alone = _set_likelihood(counts, sums, phi)
    ratio = np.full((clusters, clusters), -np.inf)
    for i in range(clusters):
        ratio[i, i + 1 :] = (
            _set_likelihood(counts[i] + counts[i + 1 :], sums[i] + sums[i + 1 :], phi) - alone[i] - alone[i + 1 :]
        )
    alive = np.ones(clusters, dtype=bool)
    owner = np.arange(clusters)
    for _ in range(clusters - count):
        best = int(np.argmax(ratio))
        i, j = best // clusters, best % clusters  # i < j
        sums[i] += sums[j]
        counts[i] += counts[j]
        alone[i] = _set_likelihood(counts[i : i + 1], sums[i : i + 1], phi)[0]
        alive[j] = False
        owner[owner == j] = i
        ratio[j, :] = ratio[:, j] = -np.inf
        others = np.flatnonzero(alive & (np.arange(clusters) != i))
        fresh = _set_likelihood(counts[i] + counts[others], sums[i] + sums[others], phi) - alone[i] - alone[others]
        low, high = np.minimum(others, i), np.maximum(others, i)
        ratio[low, high] = fresh
    return np.unique(owner[labels], return_inverse=True)[1]


BACKEND_SUFFIX = ".diarization.npz"


def backend_beside(weights) -> Path:
    """Where the diarization back-end of the weights file ``weights`` is looked for: ``model.pt`` ->
    ``model.diarization.npz`` in the same folder."""
    weights = Path(weights)
    return weights.with_name(weights.stem + BACKEND_SUFFIX)
