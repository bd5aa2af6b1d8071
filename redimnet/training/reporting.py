"""What a training run reports: messages and the progress bar, ``train_log.csv`` and ``validation.csv``."""

from __future__ import annotations

import csv
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

from .._utils.fileio import atomic_write
from .process import Process, all_sum

LOG_COLUMNS = ["step", "epoch", "loss", "accuracy", "margin", "lr", "grad_norm", "bad_audio", "examples_per_s"]


@dataclass
class Window:
    """Running totals between two log rows."""

    loss: float = 0.0
    correct: float = 0.0
    count: float = 0.0  # what the accuracy counts (crops; frames for segmentation)
    examples: float = 0.0
    grad: float = 0.0
    steps: int = 0
    start: float = field(default_factory=time.time)


@dataclass
class StepOutcome:
    """What one optimisation step saw."""

    loss: float
    correct: float
    count: int
    grad_norm: float
    lr: float
    margin: float
    skipped: bool
    examples: int = 0  # the batch's examples (for examples_per_s)


class Console:
    """Messages from the main process, through the progress bar while one is shown."""

    def __init__(self, process: Process, log: Optional[Callable[[str], None]]):
        self.process, self.log = process, log
        self.bar = None

    def say(self, text: str):
        if not self.process.is_main:
            return
        if self.bar is not None and self.log is None:
            self.bar.write(text, file=sys.stderr)
        elif self.log is not None:
            self.log(text)
        else:
            print(text, file=sys.stderr, flush=True)

    def open_bar(self, total: int, initial: int):
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, file=sys.stderr)

    def advance(self, outcome: StepOutcome):
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{outcome.loss:.3f}", lr=f"{outcome.lr:.2e}", m=f"{outcome.margin:.3f}")

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Logger:
    """Running totals of the steps since the last row, and the rows of ``train_log.csv``."""

    def __init__(self, process: Process, steps_per_epoch: int, path: Path, keep_until: Optional[int]):
        self.process, self.steps_per_epoch, self.path, self.keep_until = process, steps_per_epoch, path, keep_until
        self.window = Window()
        self.pending: List[dict] = []

    def add(self, outcome: StepOutcome):
        window = self.window
        if not outcome.skipped:
            window.loss += outcome.loss * outcome.count
            window.correct += outcome.correct
            window.count += outcome.count
            window.examples += outcome.examples
        window.grad += 0.0 if math.isnan(outcome.grad_norm) or outcome.skipped else outcome.grad_norm
        window.steps += 1

    def write_row(self, step: int, outcome: StepOutcome, bad_audio: int) -> dict:
        """The row of ``step`` (summed over every process), appended to the log by the main process."""
        window = self.window
        loss_sum, correct, count, examples = all_sum(
            [window.loss, window.correct, window.count, window.examples], self.process
        )
        elapsed = max(time.time() - window.start, 1e-9)
        loss = round(loss_sum / count, 5) if count else math.nan
        accuracy = round(correct / count, 5) if count else math.nan
        row = {
            "step": step,
            "epoch": round(step / self.steps_per_epoch, 4),
            "loss": loss,
            "accuracy": accuracy,
            "margin": round(outcome.margin, 5),
            "lr": f"{outcome.lr:.6g}",
            "grad_norm": round(window.grad / window.steps, 4),
            "bad_audio": bad_audio,
            "examples_per_s": round(examples / elapsed, 1),
        }
        self.pending.append(row)
        if self.process.is_main:
            write_log_rows(self.path, self.pending, self.keep_until)
            self.keep_until, self.pending = None, []
        self.window = Window()
        return row


def write_log_rows(path: Path, rows: List[dict], keep_until_step: Optional[int] = None):
    """Append rows to the CSV log; with ``keep_until_step``, first drop rows past that step (a resumed run)."""
    existing: List[dict] = []
    if keep_until_step is not None and path.exists():
        with open(path, newline="") as handle:
            existing = [r for r in csv.DictReader(handle) if int(r["step"]) <= keep_until_step]
        with atomic_write(path, mode="w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS)
            writer.writeheader()
            writer.writerows(existing)
    new_file = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS)
        if new_file:
            writer.writeheader()
        writer.writerows(rows)


def append_validation(path: Path, step: int, value: float, column: str = "eer"):
    """Append ``step,value`` to ``validation.csv`` (header ``step,<column>``)."""
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        if new:
            handle.write(f"step,{column}\n")
        handle.write(f"{step},{value:.6f}\n")
