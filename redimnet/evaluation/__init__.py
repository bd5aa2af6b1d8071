"""Speaker-verification evaluation: trial lists, cosine scoring, score normalisation, metrics, plots.

>>> from redimnet.evaluation import eer, min_dcf
>>> eer([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0])
0.0
>>> round(min_dcf([0.9, 0.2, 0.3, 0.1], [1, 1, 0, 0], p_target=0.05), 3)
0.5
"""

from .backend import BACKEND_KINDS, PLDA, Backend, BackendError, train_backend
from .calibration import (
    Calibration,
    CalibrationError,
    Decision,
    actual_dcf,
    bayes_threshold,
    cllr,
    fit_calibration,
    min_cllr,
    posterior,
    threshold_at_rate,
)
from .metrics import (
    ErrorRates,
    MetricsError,
    VerificationMetrics,
    compute_metrics,
    det_curve,
    eer,
    eer_with_threshold,
    error_rates,
    min_dcf,
    min_dcf_with_threshold,
)
from .recipe import ScoringRecipe
from .score_norm import ScoreNormError, build_cohort, cohort_statistics, normalize_scores, speaker_of, speakers_of
from .scoring import ScoringError, cosine_scores, l2_normalize, prepare_embeddings, write_scores
from .trials import (
    EmbeddingIndex,
    IndexedTrials,
    TrialList,
    TrialsError,
    index_trials,
    parse_trials,
    read_trials,
    read_utt2spk,
)

__all__ = [
    "BACKEND_KINDS",
    "Backend",
    "BackendError",
    "Calibration",
    "CalibrationError",
    "Decision",
    "PLDA",
    "ScoringRecipe",
    "actual_dcf",
    "bayes_threshold",
    "cllr",
    "fit_calibration",
    "min_cllr",
    "posterior",
    "speakers_of",
    "threshold_at_rate",
    "train_backend",
    "EmbeddingIndex",
    "ErrorRates",
    "IndexedTrials",
    "MetricsError",
    "ScoreNormError",
    "ScoringError",
    "TrialList",
    "TrialsError",
    "VerificationMetrics",
    "build_cohort",
    "cohort_statistics",
    "compute_metrics",
    "cosine_scores",
    "det_curve",
    "eer",
    "eer_with_threshold",
    "error_rates",
    "index_trials",
    "l2_normalize",
    "min_dcf",
    "min_dcf_with_threshold",
    "normalize_scores",
    "parse_trials",
    "prepare_embeddings",
    "read_trials",
    "read_utt2spk",
    "speaker_of",
    "write_scores",
]
