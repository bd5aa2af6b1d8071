"""One thread policy for every verb that runs a model: workers one thread each, the model the rest."""

from unittest import mock

import pytest
import torch

from redimnet import threads
from redimnet.cli import build_parser, main


@pytest.fixture
def restore_threads():
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize(
    "cores, busy, workers, expected",
    [
        (2, 0, 2, 1),  # two decoding workers on two cores: the model gets one thread, not two
        (2, 0, 0, 2),  # nothing else running: every core
        (16, 0, 2, 14),  # the workers' cores are left to them
        (2, 3, 0, 1),  # a machine busier than its cores: one thread
        (8, 3, 1, 4),  # other programs keep three cores busy
        (4, 0, 9, 1),  # never below one
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
        torch.set_num_threads(2)
        assert threads.configure(workers=2) == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        torch.set_num_threads(2)
        assert threads.configure(workers=2) == 2 and torch.get_num_threads() == 2  # the user's setting stays
        assert threads.configure(1) == 1 and torch.get_num_threads() == 1  # --threads beats the environment


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
