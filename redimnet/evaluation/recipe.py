"""How trial scores are made: one place for cosine, score normalisation and trained back-ends.

A :class:`ScoringRecipe` holds the choices (normalisation, cohort, mean
subtraction, back-end); :meth:`ScoringRecipe.scorer` binds them to a matrix of
embeddings and returns a function from trial rows to scores.
:meth:`ScoringRecipe.describe` is the recipe as a calibration file records it,
so a calibration is only ever applied to scores made the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, cast

import numpy as np

from ..errors import RedimnetError
from .backend import Backend
from .calibration import array_fingerprint
from .score_norm import normalize_scores
from .scoring import cosine_scores, l2_normalize, prepare_embeddings

__all__ = ["ScoringRecipe", "ScoringRecipeError", "NORMALISATIONS"]

NORMALISATIONS = ("none", "snorm", "asnorm")

TrialScorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


class ScoringRecipeError(RedimnetError):
    """Scoring options that do not fit together."""


@dataclass
class ScoringRecipe:
    """The scoring choices of an evaluation (see the module description).

    ``norm``: ``none`` / ``snorm`` / ``asnorm`` (needs ``cohort``); ``top_k``:
    AS-Norm's cohort size per utterance; ``subtract_mean``: ``None``,
    ``"cohort"`` or ``"eval"``; ``backend``: a trained :class:`Backend` (then
    ``norm`` must be ``none`` and no mean is subtracted: the back-end has its
    own); ``model``: fingerprint of the model that made the embeddings, if known.
    """

    norm: str = "none"
    top_k: Optional[int] = None
    cohort: Optional[np.ndarray] = None
    subtract_mean: Optional[str] = None
    backend: Optional[Backend] = None
    model: Optional[str] = None

    def __post_init__(self):
        if self.norm not in NORMALISATIONS:
            raise ScoringRecipeError(f"unknown normalisation {self.norm!r}; choose one of {', '.join(NORMALISATIONS)}")
        if self.norm != "none" and self.cohort is None:
            raise ScoringRecipeError(f"normalisation {self.norm} needs a cohort")
        if self.subtract_mean not in (None, "cohort", "eval"):
            raise ScoringRecipeError(f"subtract_mean must be 'cohort', 'eval' or None, got {self.subtract_mean!r}")
        if self.subtract_mean == "cohort" and self.cohort is None:
            raise ScoringRecipeError("subtracting the cohort mean needs a cohort")
        if self.backend is not None and (self.norm != "none" or self.subtract_mean):
            raise ScoringRecipeError(
                "a trained back-end has its own mean and normalisation: do not combine it with "
                "score normalisation or mean subtraction"
            )
        if self.norm == "asnorm" and self.top_k is None:
            self.top_k = 300
        if self.cohort is not None and self.top_k is not None:
            self.top_k = min(self.top_k, int(self.cohort.shape[0]))

    @property
    def name(self) -> str:
        """A short name: ``cosine``, ``snorm``, ``asnorm``, or the back-end's kind (``plda``, ``lda``, ...)."""
        if self.backend is not None:
            return self.backend.kind
        return {"none": "cosine"}.get(self.norm, self.norm)

    @property
    def gives_llrs(self) -> bool:
        """Whether the scores are log-likelihood ratios by construction (PLDA)."""
        return self.backend is not None and self.backend.scoring == "plda"

    def title(self) -> str:
        if self.backend is not None:
            return f"back-end {self.backend.kind}"
        return {"none": "cosine", "snorm": "cosine + S-norm"}.get(self.norm, f"cosine + AS-Norm top-{self.top_k}")

    def describe(self) -> Dict[str, Any]:
        """The recipe as a calibration records it (fingerprints instead of arrays)."""
        return {
            "scoring": self.name,
            "top_k": self.top_k if self.norm == "asnorm" else None,
            "subtract_mean": self.subtract_mean,
            "cohort": array_fingerprint(self.cohort)
            if self.cohort is not None and (self.norm != "none" or self.subtract_mean == "cohort")
            else None,
            "backend": self.backend.fingerprint() if self.backend is not None else None,
            "model": self.model,
        }

    def scorer(self, embeddings: np.ndarray, used_rows: Optional[np.ndarray] = None) -> TrialScorer:
        """A function ``(enroll_rows, test_rows) -> scores`` over rows of ``embeddings``.

        ``used_rows`` are the rows the evaluation uses (for ``subtract_mean="eval"``;
        all rows by default).
        """
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if self.backend is not None:
            backend = self.backend
            return lambda e, t: backend.score_trials(embeddings, e, t)
        if self.cohort is not None and self.cohort.shape[1] != embeddings.shape[1]:
            raise ScoringRecipeError(
                f"the cohort has {self.cohort.shape[1]}-dimensional embeddings but the evaluated "
                f"ones have {embeddings.shape[1]}: the cohort must come from the same model"
            )
        mean = None
        if self.subtract_mean == "cohort":
            mean = l2_normalize(self.cohort).mean(axis=0)
        elif self.subtract_mean == "eval":
            rows = np.arange(embeddings.shape[0]) if used_rows is None else np.asarray(used_rows)
            mean = l2_normalize(embeddings[rows]).mean(axis=0)
        unit = prepare_embeddings(embeddings, mean)
        unit_cohort = prepare_embeddings(self.cohort, mean) if self.cohort is not None else None
        cohort_rows = cast(np.ndarray, unit_cohort)  # set whenever norm is not "none" (checked in __post_init__)
        norm, top_k = self.norm, self.top_k

        def score(enroll_rows: np.ndarray, test_rows: np.ndarray) -> np.ndarray:
            scores = cosine_scores(unit, enroll_rows, test_rows, normalised=True)
            if norm == "snorm":
                scores = normalize_scores(scores, enroll_rows, test_rows, unit, cohort_rows, None)
            elif norm == "asnorm":
                scores = normalize_scores(scores, enroll_rows, test_rows, unit, cohort_rows, top_k)
            return scores

        return score
