"""How many CPU threads a command gives the model: one policy for every verb that runs a model.

PyTorch's default (one thread per core) oversubscribes the cores as soon as anything else runs on
them: its OpenMP threads meet at a barrier after every operation, and when one of them is
descheduled the others wait for it, so on a machine shared with another busy program a forward
pass can take ten times as long with two threads as with one. The policy here:

* each decoding worker process uses one thread (:func:`init_worker`). Workers do not take a core
  from the model: decoding and resampling need a few per cent of a core at the model's pace, and
  a worker sleeps while its hand-over waits in the queue;
* the model starts with the cores other programs leave free: the CPUs this process may use, minus
  the cores others kept busy while this program started (:func:`busy_cores`), and at least one;
* while it runs, the embedding pipeline measures what the model's forward passes cost at that
  thread count and, now and then, at the neighbouring counts, and keeps the cheapest
  (:class:`ThreadTuner`): a job that starts sharing the machine, or leaves it, changes the
  choice within a few batches;
* an explicit ``--threads N`` (or ``OMP_NUM_THREADS`` in the environment) always wins and is
  never changed.
"""

import math
import os
import time
from typing import Dict, List, Optional, Sequence, Set, Tuple

from ..errors import InvalidArgumentError

THREADS_HELP = (
    "CPU threads for the model (default: the cores other programs leave free, at least 1, adjusted "
    "while the model runs; OMP_NUM_THREADS is respected)"
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


def _cpu_times(cpus: Sequence[int]) -> Optional[Tuple[float, float]]:
    """``(busy, total)`` seconds the CPUs ``cpus`` have spent since boot (Linux ``/proc/stat``), or None."""
    wanted = {f"cpu{cpu}" for cpu in cpus}
    busy = total = 0
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            for line in stat:
                fields = line.split()
                if fields and fields[0] in wanted and len(fields) >= 8:
                    ticks = [int(field) for field in fields[1:9]]  # user .. steal (guest time is inside user)
                    total += sum(ticks)
                    busy += sum(ticks) - ticks[3] - ticks[4]  # less idle and iowait
    except (OSError, ValueError):
        return None
    if total <= 0:
        return None
    per_second = float(os.sysconf("SC_CLK_TCK"))
    return busy / per_second, total / per_second


def _snapshot() -> Optional[Tuple[float, float, float]]:
    """``(busy, total, this process's CPU seconds)`` now, over the CPUs this process may use; None off Linux."""
    try:
        cpus: Sequence[int] = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None
    times = _cpu_times(cpus)
    return None if times is None else (times[0], times[1], time.process_time())


_since = _snapshot()  # busy_cores() measures from here: while the program starts (imports, model loading)
_last: Optional[int] = None  # busy_cores()'s last measurement over a usable interval
SHORTEST_WINDOW = 0.2  # seconds: over a shorter interval the CPU counters are too coarse
LONGEST_WINDOW = 10.0  # seconds: over a longer one the measurement is stale


def busy_cores() -> int:
    """Cores other programs keep busy, measured now.

    On Linux: the busy time of the CPUs this process may use since this module was loaded (or since
    the last call), less this process's own CPU time over the same interval -- what others used while
    this program started (importing torch and loading the model take a second or more).  When that
    interval is shorter than :data:`SHORTEST_WINDOW` or longer than :data:`LONGEST_WINDOW`: the
    threads the kernel has running at this instant, less this one -- except that a call sooner
    than :data:`SHORTEST_WINDOW` after a measurement gets that measurement again.  Elsewhere: the
    one-minute load average.  The load average is not used on Linux because it lags by about a minute and counts
    this process itself and the programs that ran just before it: measured right after another job,
    an idle machine looks busy.
    """
    global _since, _last
    since, now = _since, _snapshot()
    if now is None or since is None:
        return _load_average_cores()
    cpus = max(1, len(os.sched_getaffinity(0)))
    elapsed = (now[1] - since[1]) / cpus  # wall-clock seconds, as the kernel counts them
    if elapsed < SHORTEST_WINDOW:  # too soon to measure again: the last measurement stands
        return _running_now() if _last is None else _last
    _since = now
    if elapsed > LONGEST_WINDOW:
        _last = None
        return _running_now()
    others = (now[0] - since[0]) - (now[2] - since[2])
    _last = max(0, int(math.floor(others / elapsed + 0.5)))
    return _last


def _running_now() -> int:
    """Threads running or ready to run on the whole machine at this instant, less the calling one."""
    try:
        with open("/proc/loadavg", encoding="ascii") as text:
            return max(0, int(text.read().split()[3].split("/")[0]) - 1)
    except (OSError, ValueError, IndexError):
        return _load_average_cores()


def _load_average_cores() -> int:
    try:
        return int(math.floor(os.getloadavg()[0] + 0.5))
    except (AttributeError, OSError):
        return 0


def model_threads(requested: Optional[int] = None, workers: int = 0) -> int:
    """Threads the model starts with under the policy above; ``requested`` (``--threads``) wins if given.

    Args:
        requested: the user's explicit choice, or ``None`` for the policy's default.
        workers: decoding worker processes that run beside the model. They are not subtracted
            (they sleep while the model runs); the argument is kept for callers that pass it.
    """
    if requested is not None:
        if requested < 1:
            raise InvalidArgumentError(f"--threads must be at least 1, got {requested}")
        return int(requested)
    cores = usable_cores()
    return max(1, min(cores, cores - busy_cores()))


def configure(requested: Optional[int] = None, workers: int = 0) -> int:
    """Set PyTorch's intra-op threads by the policy and return the number chosen.

    Without ``requested``, a thread count set in the environment (``OMP_NUM_THREADS``) is kept.
    When the policy chose the count (:func:`tunable`), the embedding pipeline may adjust it as it runs.
    """
    import torch

    if requested is None and os.environ.get("OMP_NUM_THREADS", "").strip():
        return torch.get_num_threads()
    threads = model_threads(requested, workers)
    torch.set_num_threads(threads)
    return threads


def tunable(requested: Optional[int] = None) -> bool:
    """Whether the thread count is the policy's to choose and to change while the model runs: no
    ``--threads`` (``requested``), no ``OMP_NUM_THREADS``, and more than one usable core."""
    return requested is None and not os.environ.get("OMP_NUM_THREADS", "").strip() and usable_cores() > 1


def tuner() -> "ThreadTuner":
    """A :class:`ThreadTuner` over this process's usable cores, starting from PyTorch's current count."""
    import torch

    return ThreadTuner(usable_cores(), torch.get_num_threads())


def _ladder(cores: int) -> List[int]:
    """The thread counts worth trying on ``cores`` cores: all of them up to 4, then halvings of ``cores``."""
    if cores <= 4:
        return list(range(1, cores + 1))
    counts = {cores}
    while cores > 1:
        cores //= 2
        counts.add(cores)
    return sorted(counts)


class ThreadTuner:
    """Keeps the model's thread count at the cheapest one, measured while the model runs.

    The pipeline calls :meth:`start` before each forward pass (it sets PyTorch's thread count) and
    :meth:`stop` after it, with the samples it embedded.  The cost of a count is the wall time per
    sample, averaged over its recent passes.  Every few passes one pass runs at a neighbouring count
    (one step up or down :func:`_ladder`); when that pass and the next one at the same count are
    both cheaper than the current count -- by 20 % for more threads (which risk the collapse
    described above; a descheduled pass is noisy), by 5 % for fewer -- it becomes the current count.
    A neighbour that loses is tried again after twice as many passes as the last time, or more in
    proportion to how much it lost (at most :data:`MAX_INTERVAL`), so a count that collapses when
    the machine is shared costs little, while a change of load is still noticed; a pass that costs
    more than twice the current count's average makes the next pass try one thread fewer.  Inputs
    arrive in order of length, so neighbouring passes are comparable.  A first pass pays once for
    what later passes reuse (the process's first forward pass, the extra threads' start): the first
    pass of the process is not counted, and a probe whose first pass loses by less than twice
    (:data:`COLLAPSE`) runs once more before it is judged -- judged on its first pass, a faster
    count could lose its first probe and be tried again only dozens of passes later.  A probe that
    collapses (twice the cost or more) is judged at once: on a shared machine such a pass costs
    ten to thirty ordinary ones, which is also why a losing count may wait up to
    :data:`MAX_INTERVAL` passes.
    """

    FIRST_INTERVAL = 4
    MAX_INTERVAL = 128
    COLLAPSE = 2.0  # a pass this many times the current count's cost is a collapse, not noise
    MORE_THREADS = 0.8  # a larger count must cost at most this share of the current one ...
    FEWER_THREADS = 0.95  # ... a smaller count this share

    def __init__(self, cores: int, start: int):
        self.counts = _ladder(max(1, cores))
        self.current = min(self.counts, key=lambda count: abs(count - start))
        self.cost: Dict[int, float] = {}
        self.interval: Dict[int, int] = {count: self.FIRST_INTERVAL for count in self.counts}
        self.countdown = self.FIRST_INTERVAL
        self.turn = 0
        self.running: Optional[int] = None
        self.probing = False
        self.pending: Optional[int] = None  # a count to try next (a probe to confirm, or fewer threads)
        self.wins = 0  # passes in a row the pending count has won
        self.started = 0.0
        self.warm: Set[int] = set()  # counts whose first pass has run
        self.history: List[int] = []  # the count of every pass (for tests and benchmarks)

    def _neighbours(self) -> Sequence[int]:
        index = self.counts.index(self.current)
        return [self.counts[i] for i in (index + 1, index - 1) if 0 <= i < len(self.counts)]

    def start(self) -> int:
        """Choose and set the thread count for the next forward pass; returns it."""
        import torch

        count = self.current
        self.probing = False
        self.countdown -= 1
        neighbours = self._neighbours()
        if self.pending is not None:
            count, self.probing = self.pending, True
        elif self.countdown <= 0 and neighbours:
            count = neighbours[self.turn % len(neighbours)]
            self.turn += 1
            self.probing = True
        if torch.get_num_threads() != count:
            torch.set_num_threads(count)
        self.running = count
        self.started = time.perf_counter()
        return count

    def stop(self, samples: int) -> None:
        """Record the pass started by :meth:`start`, which embedded ``samples`` samples."""
        if self.running is None:
            return
        count, self.running = self.running, None
        self.history.append(count)
        cost = (time.perf_counter() - self.started) / max(1, samples)
        first = count not in self.warm
        self.warm.add(count)
        if first and not self.probing:  # the process's first forward pass: not what the count costs
            return
        previous = self.cost.get(count)
        self.cost[count] = cost if previous is None or self.probing else 0.5 * previous + 0.5 * cost
        if not self.probing:
            index = self.counts.index(count)
            if previous is not None and cost > self.COLLAPSE * previous and index > 0:  # a collapse: try fewer
                self.pending, self.wins = self.counts[index - 1], 0
            return
        incumbent = self.cost.get(self.current)
        margin = self.MORE_THREADS if count > self.current else self.FEWER_THREADS
        if incumbent is not None and cost < margin * incumbent:
            self.wins += 1
            if self.wins < 2:
                self.pending = count  # confirm on the next pass
                return
            self.interval[self.current] = self.FIRST_INTERVAL
            self.current = count
        else:  # back off by at least 2, more the worse it did: a collapsed count is rarely tried
            loss = cost / incumbent if incumbent else self.COLLAPSE
            if first and loss < self.COLLAPSE:  # may be what a first pass pays once: judge the next one
                self.pending, self.wins = count, 0
                return
            self.interval[count] = min(self.MAX_INTERVAL, int(max(2.0, loss) * self.interval[count]))
        self.pending, self.wins = None, 0
        upcoming = self._neighbours()
        self.countdown = self.interval[upcoming[self.turn % len(upcoming)]] if upcoming else self.MAX_INTERVAL


def init_worker(_worker_id: int = 0) -> None:
    """``worker_init_fn`` for decoding DataLoader workers: one thread each."""
    import torch

    torch.set_num_threads(1)
