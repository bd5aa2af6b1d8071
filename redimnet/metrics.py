"""Verification metrics under a short name: ``redimnet.metrics.eer``, ``redimnet.metrics.min_dcf``.

Everything here is re-exported from :mod:`redimnet.evaluation.metrics`.
"""

from .evaluation.metrics import (
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

__all__ = [
    "ErrorRates",
    "MetricsError",
    "VerificationMetrics",
    "compute_metrics",
    "det_curve",
    "eer",
    "eer_with_threshold",
    "error_rates",
    "min_dcf",
    "min_dcf_with_threshold",
]
