"""One thread policy for every verb that runs a model: workers one thread each, the model the cores
other programs leave free, adjusted while it runs by what the forward passes cost."""

from unittest import mock

import pytest
import torch

from redimnet._utils import threads
from redimnet.cli import build_parser, main


@pytest.fixture
def restore_threads():
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize(
    "cores, busy, workers, expected",
    [
        (2, 0, 2, 2),  # decoding workers sleep while the model runs: they do not cost it a core
        (2, 0, 0, 2),  # nothing else running: every core
        (16, 0, 2, 16),
        (2, 3, 0, 1),  # a machine busier than its cores: one thread
        (8, 3, 1, 5),  # other programs keep three cores busy
        (4, 9, 2, 1),  # never below one
    ],
)
def test_model_threads_policy(cores, busy, workers, expected):
    with (
        mock.patch.object(threads, "usable_cores", return_value=cores),
        mock.patch.object(threads, "busy_cores", return_value=busy),
    ):
        assert threads.model_threads(workers=workers) == expected
        assert threads.model_threads(requested=3, workers=workers) == 3  # an explicit choice wins


def test_configure_sets_torch_and_respects_environment(restore_threads, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with (
        mock.patch.object(threads, "usable_cores", return_value=2),
        mock.patch.object(threads, "busy_cores", return_value=0),
    ):
        torch.set_num_threads(1)
        assert threads.configure(workers=2) == 2 and torch.get_num_threads() == 2
        assert threads.tunable(None) and not threads.tunable(2)  # the policy chose: the pipeline may adjust it
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
        assert threads.configure(workers=2) == 1 and torch.get_num_threads() == 1  # the user's setting stays
        assert not threads.tunable(None)  # ... and is never changed
        assert threads.configure(2) == 2 and torch.get_num_threads() == 2  # --threads beats the environment


def test_worker_uses_one_thread(restore_threads):
    torch.set_num_threads(2)
    threads.init_worker(0)
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize(
    "verb",
    [
        ["info"],
        ["embed", "x", "-o", "o.npz"],
        ["verify", "a", "b"],
        ["enroll", "ann", "a"],
        ["identify", "a"],
        ["eval", "--trials", "t"],
        ["demo"],
        ["diarize", "a", "-o", "o"],
        ["vad", "a", "-o", "o"],
    ],
)
def test_every_model_verb_has_threads(verb, capsys):
    model = [] if verb[0] == "vad" else ["--checkpoint", "m.pt"]
    args = build_parser().parse_args([*verb, *model, "--threads", "3"])
    assert args.threads == 3
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args([*verb, *model, "--threads", "0"])
    assert stop.value.code == 2
    assert "--threads: must be a whole number of at least 1, got '0'" in capsys.readouterr().err


def test_info_applies_threads(restore_threads, capsys):
    torch.set_num_threads(2)
    assert main(["info", "b0", "--count", "--threads", "1"]) == 0  # without --count nothing runs
    assert torch.get_num_threads() == 1 and "ReDimNet-B0" in capsys.readouterr().out


class FakeLoad:
    """A clock whose forward passes cost ``cost[threads]`` seconds per sample (the machine's state)."""

    def __init__(self, cost):
        self.cost = dict(cost)
        self.now = 0.0
        self.started = 0.0

    def run(self, tuner, passes, samples=1000):
        for _ in range(passes):
            count = tuner.start()
            assert torch.get_num_threads() == count
            cost = self.cost[count]
            self.now += (cost.pop(0) if isinstance(cost, list) else cost) * samples
            tuner.stop(samples)


@pytest.fixture
def fake_clock(monkeypatch, restore_threads):
    load = FakeLoad({1: 1.0, 2: 0.55})
    monkeypatch.setattr(threads.time, "perf_counter", lambda: load.now)
    return load


def test_tuner_moves_to_the_cheaper_count_and_back_when_the_load_changes(fake_clock):
    tuner = threads.ThreadTuner(cores=2, start=1)  # started on a busy machine: one thread
    fake_clock.run(tuner, 8)
    assert tuner.current == 2  # the machine is idle: two threads are cheaper, found at the first probe
    assert tuner.history[: tuner.FIRST_INTERVAL] == [1, 1, 1, 2]
    fake_clock.cost[2] = 8.0  # another job started: two threads collapse
    fake_clock.run(tuner, 12)
    assert tuner.current == 1
    collapsed = len(tuner.history)
    fake_clock.run(tuner, 200)
    probes = tuner.history[collapsed:].count(2)
    assert 2 <= probes <= 8  # a losing count is tried less and less often
    assert tuner.current == 1
    fake_clock.cost[2] = 0.55  # the other job ended
    fake_clock.run(tuner, 2 * tuner.MAX_INTERVAL)
    assert tuner.current == 2


def test_tuner_keeps_a_count_that_wins_only_by_noise(fake_clock):
    fake_clock.cost[2] = 0.97  # within the 5 % margin
    tuner = threads.ThreadTuner(cores=2, start=1)
    fake_clock.run(tuner, 100)
    assert tuner.current == 1 and tuner.history.count(2) <= 6


def test_tuner_ladder_on_bigger_machines():
    assert threads._ladder(2) == [1, 2] and threads._ladder(4) == [1, 2, 3, 4]
    assert threads._ladder(16) == [1, 2, 4, 8, 16] and threads._ladder(12) == [1, 3, 6, 12]
    tuner = threads.ThreadTuner(cores=16, start=10)
    assert tuner.current == 8 and list(tuner._neighbours()) == [16, 4]


@pytest.mark.slow
def test_pipeline_asks_the_tuner_around_every_forward_pass(b0_model_and_checkpoint, monkeypatch, restore_threads):
    import numpy as np

    import redimnet

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with (
        mock.patch.object(threads, "usable_cores", return_value=2),
        mock.patch.object(threads, "busy_cores", return_value=1),
    ):
        threads.configure()
        embedder = redimnet.Embedder(b0_model_and_checkpoint[0], device="cpu", tune_threads=True)
    tuner = embedder.pipeline.tuner
    assert tuner is not None and tuner.current == 1
    waves = [np.random.default_rng(n).standard_normal(8000 + 800 * n).astype(np.float32) * 0.1 for n in range(6)]
    embedder.embed_prepared(waves)
    assert len(tuner.history) == 6 and tuner.history[3] == 2  # the fourth pass tried two threads
    assert redimnet.Embedder(b0_model_and_checkpoint[0], device="cpu").pipeline.tuner is None  # opt-in


def test_tuner_needs_two_cheaper_passes_in_a_row_and_leaves_a_collapse_at_once(fake_clock):
    fake_clock.cost[2] = [0.3, 5.0] * 20  # a lucky pass, then the collapse: a busy machine's noise
    tuner = threads.ThreadTuner(cores=2, start=1)
    fake_clock.run(tuner, 40)
    assert tuner.current == 1 and tuner.history.count(2) <= 6
    fake_clock.cost[2] = 0.55  # the machine is free: two threads win twice in a row
    fake_clock.run(tuner, 2 * tuner.MAX_INTERVAL)
    assert tuner.current == 2
    fake_clock.cost[2] = 6.0  # another job starts: the very next pass tries one thread
    before = len(tuner.history)
    fake_clock.run(tuner, 4)
    assert tuner.history[before : before + 4] == [2, 1, 1, 1] and tuner.current == 1


def test_a_first_pass_that_pays_once_does_not_keep_a_faster_count_out(fake_clock):
    fake_clock.cost[2] = [1.5] + [0.55] * 400  # the first two-thread pass starts the second thread: slow once
    tuner = threads.ThreadTuner(cores=2, start=1)
    fake_clock.run(tuner, 8)
    assert tuner.current == 2  # the slow first pass was not held against two threads
    fake_clock.run(tuner, 192)
    assert tuner.history.count(2) >= 190  # and the idle machine is used fully from then on


def test_first_pass_at_the_starting_count_is_not_its_average(fake_clock):
    fake_clock.cost[1] = [30.0] + [1.0] * 400  # the process's first forward pass (allocations, kernels)
    fake_clock.cost[2] = 0.97  # two threads barely faster: noise, not worth a switch
    tuner = threads.ThreadTuner(cores=2, start=1)
    fake_clock.run(tuner, 100)
    assert tuner.current == 1 and tuner.history.count(2) <= 6


class FakeCPUs:
    """``threads._snapshot()`` readings: (CPUs' busy seconds, their total seconds, this process's CPU seconds)."""

    def __init__(self, monkeypatch, cpus=2):
        self.busy = self.total = self.own = 0.0
        self.cpus = cpus
        monkeypatch.setattr(threads, "_snapshot", lambda: (self.busy, self.total, self.own))
        monkeypatch.setattr(threads.os, "sched_getaffinity", lambda _pid: set(range(cpus)), raising=False)
        monkeypatch.setattr(threads, "_since", (0.0, 0.0, 0.0))
        monkeypatch.setattr(threads, "_last", None)
        monkeypatch.setattr(threads, "_running_now", lambda: 7)  # the real machine must not answer

    def elapse(self, seconds, others, own):
        """``seconds`` of wall clock in which other programs kept ``others`` cores busy and this process ``own``."""
        self.total += seconds * self.cpus
        self.busy += seconds * (others + own)
        self.own += seconds * own


def test_busy_cores_measures_the_start_up_not_the_load_average(monkeypatch):
    cpus = FakeCPUs(monkeypatch)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (1.6, 1.2, 0.9))  # a job that just ended
    cpus.elapse(1.5, others=0.05, own=1.0)  # this program starting (importing torch) on an idle machine
    assert threads.busy_cores() == 0  # its own start-up is not another program
    with mock.patch.object(threads, "usable_cores", return_value=2):
        cpus.elapse(1.5, others=0.05, own=1.0)
        assert threads.model_threads() == 2  # every core, though the load average says one is busy
        cpus.elapse(1.5, others=1.0, own=1.0)  # another job shares the machine
        assert threads.model_threads() == 1
        cpus.elapse(1.5, others=1.9, own=0.1)  # ... two of them
        assert threads.busy_cores() == 2 and threads.model_threads() == 1  # asked twice at once: the same answer


def test_busy_cores_outside_a_usable_interval(monkeypatch):
    cpus = FakeCPUs(monkeypatch)
    monkeypatch.setattr(threads, "_running_now", lambda: 3)
    cpus.elapse(0.01, others=0.0, own=1.0)  # too short to measure: what runs at this instant
    assert threads.busy_cores() == 3
    cpus.elapse(60.0, others=0.0, own=1.0)  # since long ago: stale
    assert threads.busy_cores() == 3
    cpus.elapse(1.0, others=1.0, own=1.0)  # from the last call: a usable interval again
    assert threads.busy_cores() == 1
    monkeypatch.setattr(threads, "_snapshot", lambda: None)  # no CPU counters (not Linux): the load average
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (2.6, 2.0, 1.0))
    assert threads.busy_cores() == 3


def test_a_collapsing_probe_costs_one_pass_and_is_tried_rarely(fake_clock):
    fake_clock.cost[2] = 20.0  # another job keeps the cores busy: two threads wait at every barrier
    tuner = threads.ThreadTuner(cores=2, start=1)
    fake_clock.run(tuner, 400)
    assert tuner.current == 1
    assert tuner.history.count(2) <= 4  # judged on its first pass; then at most every MAX_INTERVAL passes
    spent = fake_clock.now / 1000  # seconds per sample summed over the passes
    assert spent <= 1.25 * 400  # the probes cost at most a quarter more than one thread throughout
