"""Scores and decisions about speakers: the one :class:`Scorer` behind ``verify``, ``identify`` and the service.

A scorer is a scoring recipe -- cosine, or a trained back-end such as PLDA
(:class:`redimnet.evaluation.backend.Backend`) -- an optional calibration that turns
scores into log-likelihood ratios, and the decision rule: the prior probability of
the same speaker (the Bayes threshold), or an operating point at a false-accept rate
of the calibration's development trials.

* :meth:`Scorer.create` checks once that the back-end and the calibration fit the
  model (dimension, scoring recipe, model fingerprint);
* :meth:`Scorer.score_pair` scores two embeddings, :meth:`Scorer.score_enrolled` an
  embedding against an enrolled speaker of a :class:`~redimnet.speakers.store.SpeakerStore`,
  :meth:`Scorer.rank` ranks the enrolled speakers (a back-end: a shortlist from the speaker index);
* :meth:`Scorer.llrs` and :meth:`Scorer.decide` (or :meth:`Scorer.decisions` for many
  scores at once) turn scores into likelihood ratios and accept/reject decisions.

The command line and the HTTP service only translate their inputs into these calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from numpy.typing import ArrayLike

from ..embedding.similarity import cosine_score
from ..errors import InvalidArgumentError
from ..evaluation.backend import Backend
from ..evaluation.calibration import QUALITY_DURATIONS, Calibration, Decision, quality_from_durations
from ..evaluation.recipe import ScoringRecipe
from .store import SpeakerStore, utterance_embeddings

__all__ = ["Scorer", "ScorerError", "BACKEND_CANDIDATES"]

BACKEND_CANDIDATES = 100
"""Speakers whose recordings a back-end scores per identification: the closest by cosine (the speaker index).
See ``docs/speaker_search.md`` for how often the back-end's best match lies outside them."""


class ScorerError(InvalidArgumentError):
    """A back-end or calibration that does not fit the model, or decision settings that do not fit together."""


@dataclass
class Scorer:
    """Cosine or a back-end, with an optional calibration and the decision rule (see the module description).

    Args:
        backend: a trained back-end, or None for cosine.
        calibration: turns scores into log-likelihood ratios; None for raw scores without decisions.
        prior: prior probability of the same speaker, for posteriors and the Bayes decision.
        far: decide at the threshold that gave this false-accept rate on the calibration's
            development trials instead of the Bayes threshold.
    """

    backend: Optional[Backend] = None
    calibration: Optional[Calibration] = None
    prior: float = 0.5
    far: Optional[float] = None

    @classmethod
    def create(
        cls,
        model_fingerprint: str,
        dim: int,
        backend: Optional[Backend] = None,
        calibration: Optional[Calibration] = None,
        prior: float = 0.5,
        far: Optional[float] = None,
        backend_source: str = "",
    ) -> "Scorer":
        """A scorer whose back-end and calibration are checked against the model that makes the embeddings.

        Args:
            model_fingerprint: the model's fingerprint (:func:`redimnet.models.fingerprint.model_fingerprint`).
            dim: the dimension of the model's embeddings.
            backend: a trained back-end, or None for cosine.
            calibration: a calibration fitted on this recipe and model, or None.
            prior: prior probability of the same speaker (strictly between 0 and 1).
            far: a false-accept rate of the calibration's table (needs ``calibration``).
            backend_source: where the back-end came from (a file name), for messages.

        Returns:
            The scorer.

        Raises:
            ScorerError: the prior is out of range, ``far`` without a calibration, or a back-end of another dimension.
            CalibrationError: the calibration was fitted on other scores, or ``far`` is outside its table.
        """
        if not 0.0 < prior < 1.0:
            raise ScorerError(f"the prior must be strictly between 0 and 1, got {prior:g}")
        if far is not None and calibration is None:
            raise ScorerError("a false-accept rate needs a calibration (the rates come from its development trials)")
        if backend is not None and backend.input_dim != dim:
            raise ScorerError(
                f"back-end {backend_source or backend.kind} was trained on {backend.input_dim}-dimensional "
                f"embeddings; this model makes {dim}-dimensional ones"
            )
        if calibration is not None:
            calibration.check_recipe(ScoringRecipe(backend=backend, model=model_fingerprint).describe())
            if far is not None:
                calibration.llr_threshold_at_far(far)  # fail early when the rate is out of range
        return cls(backend, calibration, prior, far)

    @property
    def name(self) -> str:
        """``"cosine"`` or the back-end's kind (``"plda"``, ...)."""
        return self.backend.kind if self.backend is not None else "cosine"

    # --- scores ------------------------------------------------------------------------------------
    def score_pair(self, a: np.ndarray, b: np.ndarray) -> float:
        """The score of two embeddings ``[D]`` (same speaker: high)."""
        if self.backend is not None:
            return float(self.backend.score_trials(np.stack([a, b]), [0], [1])[0])
        return cosine_score(a, b)

    def score_enrolled(self, embedding: np.ndarray, store: SpeakerStore, name: str, fingerprint: str) -> float:
        """The score of ``embedding`` against the enrolled speaker ``name`` (refuses another model's store)."""
        store.identify(embedding, top=1, fingerprint=fingerprint)  # the store checks the model
        if self.backend is not None:
            _, enrolled = store.utterances(name)
            return float(self.backend.score_sets([enrolled], embedding[None, :])[0][0])
        return cosine_score(embedding, store.speaker_model(name))

    def rank(
        self,
        embedding: np.ndarray,
        store: SpeakerStore,
        top: int,
        fingerprint: str,
        candidates: Optional[int] = None,
    ) -> List[Tuple[str, float]]:
        """The ``top`` enrolled speakers closest to ``embedding``, best first, with their scores.

        Cosine: the store's :meth:`~redimnet.speakers.store.SpeakerStore.identify` (its speaker index).
        A back-end scores the recordings of a shortlist: the ``candidates`` speakers (default
        :data:`BACKEND_CANDIDATES`, at least ``top``) whose mean embeddings are closest by cosine, found
        through the speaker index, so its cost does not grow with the store; a store of that many
        speakers or fewer is scored whole.  The store's own errors pass through (an empty store, another
        model's store); a speaker removed by another client while the back-end reads the recordings is
        left out.
        """
        if self.backend is None:
            return store.identify(embedding, top=top, fingerprint=fingerprint)
        want = max(int(candidates or BACKEND_CANDIDATES), int(top))
        shortlist = [name for name, _ in store.identify(embedding, top=want, fingerprint=fingerprint)]
        enrolled = utterance_embeddings(store, shortlist)  # one read; speakers removed meanwhile are left out
        names = [name for name in shortlist if name in enrolled]
        if not names:
            return []
        scores = self.backend.score_sets([enrolled[name] for name in names], embedding[None, :])[0]
        order = sorted(range(len(names)), key=lambda i: (-scores[i], names[i]))[:top]
        return [(names[i], float(scores[i])) for i in order]

    # --- decisions ---------------------------------------------------------------------------------
    def llrs(self, scores: Sequence[float], durations: Optional[ArrayLike] = None) -> np.ndarray:
        """Scores as log-likelihood ratios (needs a calibration).

        ``durations``: the two recordings' seconds per score, for calibrations that use them.
        """
        calibration = self._calibration()
        quality = None
        if calibration.quality_names:
            if tuple(calibration.quality_names) != QUALITY_DURATIONS or durations is None:
                raise ScorerError("this calibration needs quality measures this verb cannot provide")
            pairs = np.asarray(durations, dtype=np.float64).reshape(-1, 2)
            quality = quality_from_durations(pairs[:, 0], pairs[:, 1])
        return calibration.llr(np.asarray(scores, dtype=np.float64), quality)

    def decide(self, llr: float) -> Decision:
        """Accept or reject at the Bayes threshold for the prior (or at the false-accept rate); needs a calibration."""
        return self._calibration().decide(llr, self.prior, self.far)

    def decisions(self, scores: Sequence[float], durations: Optional[ArrayLike] = None) -> List[Dict[str, Any]]:
        """LLR, posterior and decision per score as dicts, or empty dicts without a calibration."""
        if self.calibration is None:
            return [{} for _ in scores]
        return [self.decide(float(llr)).to_dict() for llr in self.llrs(scores, durations)]

    def _calibration(self) -> Calibration:
        if self.calibration is None:
            raise ScorerError("decisions need a calibration ('redimnet calibrate')")
        return self.calibration
