"""Small things a command-line user meets: options, messages, notes, names of options, absurd input."""

import argparse
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import PROJECT_ROOT, TINY_MODEL

import redimnet
from redimnet import cli
from redimnet.embedding.io import save_embeddings
from redimnet.errors import RedimnetError


def run(*argv) -> int:
    return cli.main([str(a) for a in argv])


def program(*argv, env=None, cwd=None):
    """``python -m redimnet ARGV`` in a fresh process (as a user runs it): (status, stdout, stderr)."""
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]))
    environment.pop("REDIMNET_DEBUG", None)
    environment.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "redimnet", *map(str, argv)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=cwd,
        timeout=300,
    )
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = redimnet.ReDimNet(redimnet.ModelConfig.from_dict(TINY_MODEL)).eval()
    return redimnet.save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "tiny.pt")


# --- options ----------------------------------------------------------------------------------------------------
def _parsers(parser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _parsers(child)


def test_no_parser_takes_abbreviations():
    parsers = list(_parsers(cli.build_parser()))
    assert len(parsers) > 15
    assert [p.prog for p in parsers if p.allow_abbrev] == []


def test_every_program_in_the_repository_turns_abbreviations_off():
    offenders = []
    for folder in ("redimnet", "benchmarks", "scripts"):
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
            for call in re.findall(r"ArgumentParser\((.*?)\)\n", path.read_text(), re.S):
                if "allow_abbrev=False" not in call:
                    offenders.append(str(path.relative_to(PROJECT_ROOT)))
    assert offenders == []


def test_an_unknown_option_is_named_without_its_value(capsys):
    with pytest.raises(SystemExit) as stop:
        run("serve", "--token", "s3cr3t-VALUE")
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert "s3cr3t" not in error
    assert "unrecognized option --token" in error and "did you mean --token-file?" in error
    with pytest.raises(SystemExit):
        run("serve", "--token=s3cr3t-VALUE")
    assert "s3cr3t" not in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run("der", "--coll", "0.1", "a.rttm", "b.rttm")  # once an abbreviation of --collar
    assert "unrecognized option --coll" in capsys.readouterr().err


def test_the_speaker_database_is_db_everywhere():
    for verb in ("enroll", "identify", "speakers", "serve", "diarize"):
        assert "--db" in cli.build_parser([verb])._subparsers._group_actions[0].choices[verb].format_help(), verb
    parser = cli.build_parser(["diarize"])
    diarize = parser._subparsers._group_actions[0].choices["diarize"]
    assert "--speakers-db" not in diarize.format_help()
    # the earlier name still works, as a hidden alias of --db
    assert parser.parse_args(["diarize", "x.wav", "-o", "out", "--speakers-db", "s.db"]).db == "s.db"
    assert parser.parse_args(["diarize", "x.wav", "-o", "out", "--db", "s.db"]).db == "s.db"


@pytest.mark.slow
def test_decoding_processes_and_server_processes_have_different_names(monkeypatch):
    embed = cli.build_parser(["embed"])
    text = embed._subparsers._group_actions[0].choices["embed"].format_help()
    assert "--decode-workers" in text and "--workers" not in text.replace("--decode-workers", "")
    assert embed.parse_args(["embed", "x.wav", "-o", "o.npz", "--workers", "3"]).decode_workers == 3  # earlier name
    serve = cli.build_parser(["serve"])
    assert "server processes" in serve._subparsers._group_actions[0].choices["serve"].format_help()
    # serve's --workers (server processes) is not taken for decoding processes by the thread policy
    from redimnet._utils import threads
    from redimnet.cli import embed as embed_verb

    seen = []
    monkeypatch.setattr(threads, "configure", lambda requested=None, workers=0: seen.append(workers))
    monkeypatch.setattr(embed_verb, "model_from_arguments", lambda args: redimnet.build("b0").eval())
    args = serve.parse_args(["serve", "--workers", "4", "--model", "b0"])
    embed_verb.embedder_from_arguments(args)
    assert seen == [0]


# --- messages and notes -----------------------------------------------------------------------------------------
def test_error_messages_escape_control_characters(capsys):
    def handler(_args):
        raise RedimnetError("bad \x1b[2Jname\x1b[0m\nsecond line")

    assert cli.run_handler(handler, None) == 2
    error = capsys.readouterr().err
    assert "\x1b" not in error and "\\x1b[2Jname" in error
    assert error.count("\n") == 1  # one line


@pytest.mark.slow
def test_library_warnings_become_one_line_notes_and_the_download_error_names_the_offline_options(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "b2-vox2-ft_lm.pt").write_bytes(b"x" * 1000)  # a wrong-size cached weights file
    env = {"REDIMNET_CACHE": str(cache), "REDIMNET_BASE_URL": (tmp_path / "nowhere").as_uri()}
    status, out, err = program("demo", env=env)
    assert status == 2, err
    lines = err.strip().splitlines()
    assert lines[0].startswith("redimnet: note: the cached file") and "downloading it again" in lines[0]
    assert "UserWarning" not in err and "warnings.warn" not in err and not re.search(r"\.py:\d+", err)
    assert len(lines) == 2 and lines[1].startswith("redimnet: error: ")
    assert "--random-init" in lines[1] and "--checkpoint FILE" in lines[1]
    (cache / "b2-vox2-ft_lm.pt").unlink()
    status, out, err = program("demo", env=env)  # nothing cached, no network
    assert status == 2 and "--random-init" in err and "--checkpoint FILE" in err
    status, out, err = program("demo", "--random-init", env=env)  # and that advice works
    assert status == 0 and "random weights" in out


def test_checkpoint_refusal_names_the_import_and_nothing_else(tmp_path, capsys):
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo owned",))

    evil = tmp_path / "evil.pt"
    torch.save({"x": Payload()}, evil)
    escape = tmp_path / "escape.pt"
    escape.write_bytes(b"\x80\x02c\x1b[31mevil\x1b[0m\nrun\nq\x00.")  # a global whose name carries ANSI codes
    for path, imported in ((evil, "posix.system"), (escape, "\\x1b[31mevil\\x1b[0m.run")):
        assert run("info", "--checkpoint", path) == 2
        error = capsys.readouterr().err
        assert f"it asks to import {imported}" in error
        assert "weights_only" not in error and "likely succeed" not in error and "\x1b" not in error


# --- outputs and fits that used to be silent ----------------------------------------------------------------------
def test_eval_audio_root_writes_nothing_into_the_working_folder(tmp_path, checkpoint, monkeypatch, capsys):
    audio = tmp_path / "audio"
    rng = np.random.default_rng(0)
    for name in ("a/1.wav", "a/2.wav", "b/1.wav", "b/2.wav"):
        (audio / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(audio / name, 0.1 * rng.standard_normal(16000), 16000)
    trials = tmp_path / "trials.txt"
    trials.write_text("1 a/1.wav a/2.wav\n0 a/1.wav b/1.wav\n1 b/1.wav b/2.wav\n0 a/2.wav b/2.wav\n")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert run("eval", "--trials", trials, "--audio-root", audio, "--checkpoint", checkpoint) == 0
    assert list(work.iterdir()) == []
    assert "the embeddings were not kept; --cache FILE.npz" in capsys.readouterr().err
    cache = tmp_path / "kept.npz"
    assert run("eval", "--trials", trials, "--audio-root", audio, "--checkpoint", checkpoint, "--cache", cache) == 0
    assert cache.is_file() and list(work.iterdir()) == []


def test_calibrate_refuses_too_few_trials(tmp_path, capsys):
    embeddings = save_embeddings(tmp_path / "e.npz", ["a", "b", "c"], np.eye(3))
    trials = tmp_path / "t.txt"
    trials.write_text("1 a b\n0 a c\n0 b c\n")
    assert run("calibrate", "--trials", trials, "--embeddings", embeddings, "-o", tmp_path / "cal.json") == 2
    assert "1 target and 2 non-target trial(s) are too few" in capsys.readouterr().err
    assert not (tmp_path / "cal.json").exists()


@pytest.mark.slow
def test_exported_onnx_input_is_named_as_the_command_says(tmp_path, checkpoint, capsys):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    path = tmp_path / "m.onnx"
    assert run("export", "--format", "onnx", "--checkpoint", checkpoint, "-o", path) == 0
    assert "input: waveform [N, T]" in capsys.readouterr().out
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["waveform"]
    assert session.run(None, {"waveform": np.zeros((2, 8000), np.float32)})[0].shape == (2, 16)


# --- der: absurd times and undefined rates ----------------------------------------------------------------------
def test_der_refuses_absurd_times(tmp_path, capsys):
    good = tmp_path / "good.rttm"
    good.write_text("SPEAKER r 1 0.0 5.0 <NA> <NA> A <NA> <NA>\n")
    for start in ("1e300", "-1", "nan", "inf"):
        bad = tmp_path / "bad.rttm"
        bad.write_text(f"SPEAKER r 1 {start} 1.0 <NA> <NA> A <NA> <NA>\n")
        assert run("der", bad, good) == 2, start
        error = capsys.readouterr().err
        assert error.startswith("redimnet: error: ") and "bad.rttm:1" in error, error
        assert not re.search(r"\d{20}", error)
    for collar in ("1e300", "inf", "-1"):
        assert run("der", good, good, "--collar", collar) == 2
        assert "--collar must be from 0 to" in capsys.readouterr().err


def test_der_says_when_it_is_undefined(tmp_path, capsys):
    reference = tmp_path / "ref.rttm"
    reference.write_text("SPEAKER r 1 0.0 0.3 <NA> <NA> A <NA> <NA>\n")  # all inside the 0.25 s collars
    hypothesis = tmp_path / "hyp.rttm"
    hypothesis.write_text("SPEAKER r 1 0.0 5.0 <NA> <NA> X <NA> <NA>\n")
    assert run("der", reference, hypothesis) == 0
    captured = capsys.readouterr()
    assert "inf" not in captured.out and "undef." in captured.out
    assert "the DER of 1 recording(s) is undefined: no reference speech is left to score" in captured.err
    assert run("der", reference, hypothesis, "--json") == 0
    data = json.loads(capsys.readouterr().out)  # strict JSON: no Infinity
    assert data["recordings"]["r"]["der"] is None and data["total"]["der"] is None


# --- backend train: the default dimension follows the training speakers --------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("dim,expected", [(192, "32 dimensions (LDA from 192"), (64, "64 dimensions:")])
def test_backend_train_default_dimension_follows_the_speakers(tmp_path, capsys, dim, expected):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(33, dim))
    x = np.repeat(centres, 16, axis=0) + rng.normal(size=(33 * 16, dim))
    ids = [f"spk{s:02d}/{u}.wav" for s in range(33) for u in range(16)]
    embeddings = save_embeddings(tmp_path / "train.npz", ids, x)
    assert run("backend", "train", "--embeddings", embeddings, "-o", tmp_path / "b.npz") == 0
    captured = capsys.readouterr()
    assert "on 528 embeddings of 33 speakers, " + expected in captured.out
    assert "33 training speakers are few for a back-end" in captured.err
    assert run("backend", "train", "--embeddings", embeddings, "--dim", "16", "-o", tmp_path / "c.npz") == 0
    assert "16 dimensions:" in capsys.readouterr().out  # --dim still decides


def test_the_readme_names_exactly_the_verbs_that_can_download():
    """Published weights are downloaded only by verbs that take a model (--checkpoint / --random-init); the
    README's paragraph on downloads lists exactly those, so a new verb that runs a model must be added there."""
    parser = cli.build_parser()
    commands = parser._subparsers._group_actions[0].choices
    downloading = set()
    for name, sub in commands.items():
        for child in _parsers(sub):
            if "--random-init" in child._option_string_actions:
                downloading.add(name)
    readme = (PROJECT_ROOT / "README.md").read_text()
    paragraph = readme[readme.index("What downloads, and when") :].split("\n\n")[0]
    listed = set(re.findall(r"`([a-z]+)(?: --[a-z-]+)?`", paragraph.split("without `--checkpoint`")[0]))
    assert downloading and listed == downloading
