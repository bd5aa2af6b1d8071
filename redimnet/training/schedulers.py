"""Learning-rate and margin schedules: pure functions of the (fractional) epoch.

Being stateless, they need nothing saved: a resumed run recomputes them from
the step number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class WarmupExponentialLR:
    """Linear warm-up to ``lr`` over ``warmup_epochs`` (from 0, or from ``final_lr``),
    then exponential decay from ``lr`` to ``final_lr`` at ``total_epochs``."""

    lr: float
    final_lr: float
    warmup_epochs: float
    total_epochs: float
    warm_from_zero: bool = True

    def __call__(self, epoch: float) -> float:
        if self.warmup_epochs > 0 and epoch < self.warmup_epochs:
            start = 0.0 if self.warm_from_zero else self.final_lr
            return start + (self.lr - start) * epoch / self.warmup_epochs
        span = max(self.total_epochs - self.warmup_epochs, 1e-12)
        progress = min(max((epoch - self.warmup_epochs) / span, 0.0), 1.0)
        return self.lr * math.exp(progress * math.log(self.final_lr / self.lr))


@dataclass(frozen=True)
class MarginSchedule:
    """``initial`` until ``start_epoch``, rising to ``final`` at ``fix_epoch``, then constant.

    ``"linear"`` rises in a straight line; ``"exp"`` rises fast first and levels
    off (``1 - exp(-4 p)``, rescaled to reach ``final`` exactly).
    """

    initial: float
    final: float
    start_epoch: float
    fix_epoch: float
    kind: str = "exp"

    def __call__(self, epoch: float) -> float:
        if epoch <= self.start_epoch:
            return self.initial if self.fix_epoch > self.start_epoch or epoch < self.start_epoch else self.final
        if epoch >= self.fix_epoch:
            return self.final
        progress = (epoch - self.start_epoch) / (self.fix_epoch - self.start_epoch)
        if self.kind == "exp":
            progress = (1.0 - math.exp(-4.0 * progress)) / (1.0 - math.exp(-4.0))
        return self.initial + (self.final - self.initial) * progress
