"""How many CPU threads a command gives the model: one policy for every verb that runs a model.

PyTorch's default (one thread per core) oversubscribes the cores as soon as anything else runs:
audio-decoding worker processes, or other programs on a shared machine. Its OpenMP threads then
wait on each other and a job can run ten times slower than with one thread. The policy here:

* each decoding worker process uses one thread (:func:`init_worker`);
* the model gets the cores left over: the CPUs this process may use, minus the decoding workers,
  minus the cores other programs keep busy (the one-minute load average), and at least one;
* an explicit ``--threads N`` (or ``OMP_NUM_THREADS`` in the environment) always wins.
"""

import math
import os
from typing import Optional

from .errors import InvalidArgumentError

THREADS_HELP = (
    "CPU threads for the model (default: the cores left free by decoding workers and other "
    "programs, at least 1; OMP_NUM_THREADS is respected)"
)


def add_threads_argument(parser) -> None:
    """Add ``--threads N`` to an argparse parser (a count below 1 is a usage error)."""
    parser.add_argument("--threads", type=_thread_count, default=None, metavar="N", help=THREADS_HELP)


def _thread_count(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def busy_cores() -> int:
    """Cores kept busy by other programs: the one-minute load average, rounded (0 where unknown)."""
    try:
        return int(math.floor(os.getloadavg()[0] + 0.5))
    except (AttributeError, OSError):
        return 0


def model_threads(requested: Optional[int] = None, workers: int = 0) -> int:
    """Threads for the model under the policy above; ``requested`` (``--threads``) wins if given.

    Args:
        requested: the user's explicit choice, or ``None`` for the policy's default.
        workers: decoding worker processes that run beside the model (one core each).
    """
    if requested is not None:
        if requested < 1:
            raise InvalidArgumentError(f"--threads must be at least 1, got {requested}")
        return int(requested)
    cores = usable_cores()
    return max(1, min(cores, cores - max(0, workers) - busy_cores()))


def configure(requested: Optional[int] = None, workers: int = 0) -> int:
    """Set PyTorch's intra-op threads by the policy and return the number chosen.

    Without ``requested``, a thread count set in the environment (``OMP_NUM_THREADS``) is kept.
    """
    import torch

    if requested is None and os.environ.get("OMP_NUM_THREADS", "").strip():
        return torch.get_num_threads()
    threads = model_threads(requested, workers)
    torch.set_num_threads(threads)
    return threads


def init_worker(_worker_id: int = 0) -> None:
    """``worker_init_fn`` for decoding DataLoader workers: one thread each."""
    import torch

    torch.set_num_threads(1)
