"""The validation kit's named checks: one sentence naming the option, NaN refused everywhere, and the
command line's options checked with them (exit status 2, one line)."""

import math

import pytest

from redimnet._utils.validation import at_least, positive, strictly_between, within
from redimnet.cli import main
from redimnet.errors import ConfigError


@pytest.mark.parametrize(
    "check, args, message",
    [
        (at_least, ("--last", 0, 1), "--last must be at least 1, got 0"),
        (at_least, ("--pad", -0.5, 0, " seconds"), "--pad must be at least 0 seconds, got -0.5"),
        (at_least, ("--last", math.nan, 1), "--last must be at least 1, got nan"),
        (at_least, ("--last", "3", 1), "--last must be at least 1, got '3'"),
        (positive, ("--seconds", 0.0), "--seconds must be positive, got 0"),
        (positive, ("--seconds", math.nan), "--seconds must be positive, got nan"),
        (strictly_between, ("--prior", 1.0, 0.0, 1.0), "--prior must be strictly between 0 and 1, got 1"),
        (strictly_between, ("--prior", math.inf, 0.0, 1.0), "--prior must be strictly between 0 and 1, got inf"),
        (within, ("--collar", -1.0, 0, 1e7, " seconds"), "--collar must be from 0 to 10000000 seconds, got -1"),
        (within, ("--collar", math.nan, 0, 5), "--collar must be from 0 to 5, got nan"),
    ],
)
def test_named_checks_refuse_with_one_sentence(check, args, message):
    with pytest.raises(ConfigError) as caught:
        check(*args)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "check, args",
    [
        (at_least, ("--last", 1, 1)),
        (at_least, ("--pad", 0.0, 0)),
        (positive, ("--seconds", 1e-9)),
        (strictly_between, ("--prior", 0.01, 0.0, 1.0)),
        (within, ("--collar", 0, 0, 5)),
        (within, ("--collar", 5.0, 0, 5)),
    ],
)
def test_named_checks_accept_values_in_range(check, args):
    check(*args)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["info", "b0", "--count", "--seconds", "nan"], "--seconds must be positive, got nan"),
        (["prepare", "DATA", "-o", "OUT", "--utts-per-shard", "0"], "--utts-per-shard must be at least 1, got 0"),
        (["cohort", "--embeddings", "E.npz", "-o", "C.npz", "--min-utterances", "0"], "--min-utterances must be"),
        (["embed", "x.wav", "-o", "o.npz", "--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        (["embed", "x.wav", "-o", "o.npz", "--decode-workers", "-1"], "--decode-workers must be at least 0, got -1"),
        (["identify", "x.wav", "--db", "s.db", "--candidates", "0"], "--candidates must be at least 1, got 0"),
        (["speakers", "import", "E.npz", "--db", "s.db", "--batch", "0"], "--batch must be at least 1, got 0"),
        (["eval", "--embeddings", "E.npz", "--trials", "T", "--far", "1.5"], "--far must be from 0 to 1, got 1.5"),
        (["serve", "--port", "70000"], "--port must be from 1 to 65535, got 70000"),
        (["serve", "--batch-wait-ms", "nan"], "--batch-wait-ms must be from 0 to 1000, got nan"),
        (["serve", "--max-upload-mb", "0"], "--max-upload-mb must be positive, got 0"),
    ],
)
def test_command_line_options_go_through_the_kit(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("redimnet: error: ") and message in err and len(err.strip().splitlines()) == 1
