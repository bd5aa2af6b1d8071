"""Safety of what the package writes and prints: ids as paths, permissions, reports, the CLI's error layer."""

import os
import stat
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redimnet import cli
from redimnet._utils.fileio import atomic_write
from redimnet._utils.names import MAX_NAME_LENGTH, UnsafeNameError, check_speaker_name, path_below, printable
from redimnet._utils.optional import MissingDependencyError, require
from redimnet.cli.common import UsageError
from redimnet.embedding.io import NpyFolderOutput, load_embeddings, open_output, save_embeddings
from redimnet.errors import InvalidArgumentError, RedimnetError

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def run_cli(*argv) -> int:
    return cli.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    root = tmp_path_factory.mktemp("voices")
    rng = np.random.default_rng(1)
    for name in ("a.wav", "b.wav"):
        sf.write(root / name, rng.standard_normal(8000) * 0.1, 16000, subtype="PCM_16")
    return root


# --- one checked function from id to path ----------------------------------------------------------
@pytest.mark.parametrize(
    "uid",
    [
        "../ESCAPED",
        "/tmp/ESCAPED",
        "a/../../b",
        "a//b",
        "./a",
        "a/",
        "",
        "a\x00b",
        "a\nb",
        "\x1b[31mred",
        "C:evil",
        "a\\..\\b",
        "..",
        "x" * 252,
        "d/" + "é" * 126,
        "lone\ud800surrogate",
    ],
)
def test_unsafe_ids_are_refused(tmp_path, uid):
    with pytest.raises(UnsafeNameError):
        path_below(tmp_path, uid, ".npy")


@pytest.mark.parametrize("uid", ["spk1/a.wav", "a b", "ünïcødé/x", "..a", "a..", ".hidden"])
def test_ordinary_ids_stay_below_the_root(tmp_path, uid):
    target = path_below(tmp_path, uid, ".npy")
    assert target == tmp_path / (uid + ".npy")


def test_a_symlink_inside_the_root_cannot_lead_out(tmp_path):
    root, outside = tmp_path / "out", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    (root / "spk").symlink_to(outside)
    with pytest.raises(UnsafeNameError, match="outside"):
        path_below(root, "spk/x", ".npy")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.sampled_from(list("ab./\\:\x00\n\x1b\t C") + ["..", "é", "spk/"]), max_size=12).map("".join)
    | st.text(max_size=20)
)
def test_fuzz_no_id_resolves_outside_the_root(tmp_path, uid):
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    try:
        target = path_below(root, uid, ".npy")
    except UnsafeNameError as error:
        assert "utterance id" in str(error)  # the documented error, printable on one line
        assert not any(ord(c) < 32 for c in str(error))
        return
    real_root = os.path.realpath(root)
    real = os.path.realpath(target)
    assert real.startswith(real_root + os.sep)
    assert not any(ord(c) < 32 for c in uid)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_speaker_names(name):
    try:
        accepted = check_speaker_name(name)
    except UnsafeNameError as error:
        assert not any(ord(c) < 32 for c in str(error))
        assert len(str(error)) < 400
        return
    assert accepted == unicodedata.normalize("NFC", name.strip()) and 0 < len(accepted) <= MAX_NAME_LENGTH
    assert check_speaker_name(accepted) == accepted  # the filed form is a fixed point
    assert printable(accepted) == accepted.replace("\\", "\\\\")  # nothing to escape but backslashes
    visible = ("L", "M", "N", "P", "S")  # letters, marks, numbers, punctuation, symbols; and the plain space
    assert all(c == " " or unicodedata.category(c)[0] in visible for c in accepted), ascii(accepted)


@given(st.text(max_size=40))
def test_printable_is_one_line_without_controls(text):
    shown = printable(text)
    assert "\n" not in shown and "\t" not in shown and "\x1b" not in shown and "\r" not in shown
    assert shown.encode("ascii", "backslashreplace").decode("unicode_escape") == text  # reversible


@pytest.mark.slow
def test_embed_list_cannot_write_outside_the_npy_folder(tmp_path, voices, b0_model_and_checkpoint, capsys):
    _, checkpoint = b0_model_and_checkpoint
    outside = tmp_path / "ESCAPED"
    scp = tmp_path / "wav.scp"
    scp.write_text(
        f"good {voices / 'a.wav'}\n../ESCAPED {voices / 'b.wav'}\n{outside} {voices / 'b.wav'}\n"
        f"sub/../../x {voices / 'b.wav'}\n"
    )
    folder = tmp_path / "out"
    status = run_cli(
        "embed", "--list", scp, "--checkpoint", checkpoint, "-o", folder, "--workers", "0", "--no-progress"
    )
    assert status == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "out.failed.tsv", "wav.scp"]
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == ["good.npy"]
    assert not outside.with_suffix(".npy").exists() and not Path(str(outside) + ".npy").exists()
    report = (tmp_path / "out.failed.tsv").read_text().splitlines()
    assert len(report) == 4 and all("utterance id" in line for line in report[1:])
    err = capsys.readouterr().err
    assert "3 input(s) failed" in err and "'..'" in err and "absolute" in err


@pytest.mark.slow
def test_kaldi_refuses_a_bad_key_and_writes_the_others(tmp_path, voices, b0_model_and_checkpoint, capsys):
    kaldiio = pytest.importorskip("kaldiio")
    _, checkpoint = b0_model_and_checkpoint
    folder = tmp_path / "in"
    (folder / "with space").mkdir(parents=True)
    (folder / "with space" / "a.wav").write_bytes((voices / "a.wav").read_bytes())
    (folder / "b.wav").write_bytes((voices / "b.wav").read_bytes())
    status = run_cli(
        "embed", folder, "--checkpoint", checkpoint, "-o", tmp_path / "e.ark", "--workers", "0", "--no-progress"
    )
    assert status == 1
    assert sorted(kaldiio.load_scp(str(tmp_path / "e.scp"))) == ["b.wav"]
    assert "Kaldi key" in (tmp_path / "e.failed.tsv").read_text()


def test_npy_writer_refuses_unsafe_ids_itself(tmp_path):
    output = open_output(tmp_path / "vectors")
    assert isinstance(output, NpyFolderOutput)
    refused = output.write({"ok": np.ones(3), "../up": np.ones(3), "/abs": np.ones(3)})
    assert sorted(uid for uid, _ in refused) == ["../up", "/abs"]
    assert [p.name for p in (tmp_path / "vectors").iterdir()] == ["ok.npy"]
    assert not (tmp_path / "up.npy").exists()


# --- reports ---------------------------------------------------------------------------------------
def test_failed_tsv_survives_tabs_and_newlines_in_paths(tmp_path, b0_model_and_checkpoint):
    _, checkpoint = b0_model_and_checkpoint
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "bad\tname\nx.wav").write_text("not audio")
    status = run_cli(
        "embed", folder, "--checkpoint", checkpoint, "-o", tmp_path / "e.npz", "--workers", "0", "--no-progress"
    )
    assert status == 1
    lines = (tmp_path / "e.failed.tsv").read_text().splitlines()
    assert len(lines) == 2 and all(line.count("\t") == 1 for line in lines)
    assert lines[1].split("\t")[0] == printable(str(folder / "bad\tname\nx.wav"))


def test_terminal_output_escapes_ids(tmp_path, voices, b0_model_and_checkpoint, capsys):
    _, checkpoint = b0_model_and_checkpoint
    scp = tmp_path / "wav.scp"
    scp.write_text(f"\x1b[2Jforged {tmp_path / 'missing.wav'}\n")
    run_cli(
        "embed", "--list", scp, "--checkpoint", checkpoint, "-o", tmp_path / "e.npz", "--workers", "0", "--no-progress"
    )
    err = capsys.readouterr().err
    assert "\x1b" not in err


# --- permissions -----------------------------------------------------------------------------------
@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_written_files_respect_the_umask(tmp_path, umask_022, b0_model_and_checkpoint):
    import redimnet

    model, _ = b0_model_and_checkpoint
    with atomic_write(tmp_path / "plain.bin") as stream:
        stream.write(b"x")
    save_embeddings(tmp_path / "e.npz", ["a"], np.ones((1, 3)))
    redimnet.save_checkpoint(model, tmp_path / "final.pt")
    for name in ("plain.bin", "e.npz", "final.pt"):
        assert _mode(tmp_path / name) == 0o644, name
    os.umask(0o077)
    with atomic_write(tmp_path / "private.bin") as stream:
        stream.write(b"x")
    assert _mode(tmp_path / "private.bin") == 0o600


def test_replacing_a_file_keeps_its_permissions(tmp_path, umask_022):
    target = tmp_path / "scores.txt"
    target.write_text("old")
    os.chmod(target, 0o640)
    with atomic_write(target, mode="w") as stream:
        stream.write("new")
    assert target.read_text() == "new" and _mode(target) == 0o640


# --- the CLI's error layer -------------------------------------------------------------------------
def _handler(error):
    def handler(_args):
        raise error

    return handler


@pytest.mark.parametrize(
    "error, status, words",
    [
        (UsageError("--x must be 1"), 2, ["redimnet: error: --x must be 1"]),
        (InvalidArgumentError("bad value"), 2, ["redimnet: error: bad value"]),
        (FileNotFoundError(2, "No such file or directory", "/no/such"), 2, ["/no/such", "No such file"]),
        (ValueError("a bug\nsecond line"), 1, ["unexpected error (ValueError: a bug)", "REDIMNET_DEBUG=1"]),
        (KeyError("k"), 1, ["unexpected error (KeyError", "REDIMNET_DEBUG=1"]),
        (ModuleNotFoundError("No module named 'yaml'", name="yaml"), 2, ['pip install "redimnet[train]"']),
        (ModuleNotFoundError("No module named 'zzz'", name="zzz"), 1, ["unexpected error", "REDIMNET_DEBUG=1"]),
    ],
)
def test_error_layer(monkeypatch, capsys, error, status, words):
    monkeypatch.delenv("REDIMNET_DEBUG", raising=False)
    assert cli.run_handler(_handler(error), None) == status
    err = capsys.readouterr().err
    assert "Traceback" not in err and "second line" not in err
    assert len(err.strip().splitlines()) == 1
    for word in words:
        assert word in err


@pytest.mark.parametrize("error", [UsageError("bad option"), OSError(5, "I/O error"), ValueError("bug")])
def test_debug_shows_the_traceback_in_every_branch(monkeypatch, capsys, error):
    monkeypatch.setenv("REDIMNET_DEBUG", "1")
    cli.run_handler(_handler(error), None)
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and type(error).__name__ in err


def test_symlink_loop_is_named(tmp_path, capsys):
    loop = tmp_path / "loop.wav"
    loop.symlink_to(loop)

    def handler(_args):
        open(loop, "rb")

    assert cli.run_handler(handler, None) == 2
    assert "symbolic link loop" in capsys.readouterr().err


def test_library_does_not_raise_the_cli_usage_error():
    import redimnet
    from redimnet import errors

    assert not hasattr(errors, "UsageError") and not hasattr(redimnet, "UsageError")
    with pytest.raises(InvalidArgumentError) as caught:
        redimnet.get_preset("no-such-model")
    assert isinstance(caught.value, RedimnetError) and isinstance(caught.value, ValueError)
    from redimnet._utils import threads

    with pytest.raises(InvalidArgumentError, match="--threads"):
        threads.model_threads(0)


def test_missing_extra_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "kaldiio", None)  # import kaldiio now fails as if not installed
    with pytest.raises(MissingDependencyError, match=r'pip install "redimnet\[kaldi\]"'):
        require("kaldiio", "Kaldi ark/scp output")
    with pytest.raises(MissingDependencyError, match=r"redimnet\[kaldi\]"):
        open_output("/nonexistent/e.ark")


def test_verbs_share_no_private_helpers():
    root = Path(cli.__file__).parent
    for module in root.glob("*.py"):
        text = module.read_text()
        for other in root.glob("*.py"):
            if other.stem not in ("__init__", module.stem):
                assert f"from .{other.stem} import _" not in text, (module.name, other.name)


# --- speaker names ---------------------------------------------------------------------------------
def test_speaker_database_refuses_long_and_control_names(tmp_path):
    from redimnet.speakers.sqlite import SpeakerDatabase

    with SpeakerDatabase(tmp_path / "s.db") as db:
        vectors = np.ones((1, 4), dtype=np.float32)
        with pytest.raises(UnsafeNameError, match="limit is 256"):
            db.enroll("x" * (MAX_NAME_LENGTH + 1), vectors, ["u"])
        with pytest.raises(UnsafeNameError, match="control character"):
            db.enroll("eve\n   1  0.9999  mallory", vectors, ["u"])
        assert db.enroll("x" * MAX_NAME_LENGTH, vectors, ["u"]) == 1


def test_speaker_names_are_escaped_on_the_terminal(tmp_path, capsys):
    from redimnet.speakers.sqlite import SpeakerDatabase

    db_path = tmp_path / "s.db"
    with SpeakerDatabase(db_path) as db:
        db.enroll("ann", np.ones((1, 4), dtype=np.float32), ["u"])
        # a name written by another (older or hostile) program, bypassing the checks
        db.connection.execute("UPDATE speakers SET name=? WHERE name='ann'", ("ann\x1b[2J\nforged  row",))
        db.connection.commit()
    assert run_cli("speakers", "list", "--db", db_path) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and len(out.strip().splitlines()) == 2  # header + one row


# --- what was skipped is reported ------------------------------------------------------------------
def test_unreadable_subfolder_is_reported_not_skipped(tmp_path, voices, b0_model_and_checkpoint, capsys, monkeypatch):
    _, checkpoint = b0_model_and_checkpoint
    folder = tmp_path / "in"
    (folder / "locked").mkdir(parents=True)
    (folder / "locked" / "a.wav").write_bytes((voices / "a.wav").read_bytes())
    (folder / "b.wav").write_bytes((voices / "b.wav").read_bytes())
    real_scandir = os.scandir

    def scandir(path="."):  # the tests run as root, for whom chmod 000 changes nothing
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    status = run_cli(
        "embed", folder, "--checkpoint", checkpoint, "-o", tmp_path / "e.npz", "--workers", "0", "--no-progress"
    )
    assert status == 1
    assert load_embeddings(tmp_path / "e.npz")[0].tolist() == ["b.wav"]
    report = (tmp_path / "e.failed.tsv").read_text()
    assert "locked" in report and "Permission denied" in report


def test_self_referencing_symlink_is_a_loop(tmp_path, b0_model_and_checkpoint, capsys):
    _, checkpoint = b0_model_and_checkpoint
    loop = tmp_path / "loop.wav"
    loop.symlink_to(loop)
    dangling = tmp_path / "gone.wav"
    dangling.symlink_to(tmp_path / "nowhere.wav")
    status = run_cli(
        "embed", loop, dangling, "--checkpoint", checkpoint, "-o", tmp_path / "e.npz", "--workers", "0", "--no-progress"
    )
    assert status == 1
    report = (tmp_path / "e.failed.tsv").read_text()
    assert "symbolic link loop" in report and "no such file" not in report
    assert "broken symbolic link" in report


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes_checkpoint_gives_no_unsafe_advice(tmp_path, seed):
    from redimnet import CheckpointError, load_checkpoint

    path = tmp_path / "random.pt"
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, 1900, dtype=np.uint8).tobytes())
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert "weights_only" not in str(caught.value) and str(path) in str(caught.value)


# --- missing optional parts ------------------------------------------------------------------------
def test_train_without_pyyaml_names_the_extra(tmp_path, monkeypatch, capsys):
    config = tmp_path / "recipe.yaml"
    config.write_text("model: {preset: b0}\n")
    monkeypatch.setitem(sys.modules, "yaml", None)  # as if PyYAML were not installed
    assert run_cli("train", "--config", config) == 2
    err = capsys.readouterr().err
    assert 'pip install "redimnet[train]"' in err and "unexpected" not in err


def test_a_verb_whose_module_needs_a_missing_extra_says_so(monkeypatch, capsys):
    import importlib

    real = importlib.import_module

    def import_module(name, *args, **kwargs):
        if name == "redimnet.cli.export":
            raise ModuleNotFoundError("No module named 'onnx'", name="onnx")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(cli.importlib, "import_module", import_module)
    assert run_cli("export", "--checkpoint", "x.pt") == 2
    err = capsys.readouterr().err
    assert 'pip install "redimnet[export]"' in err and "'redimnet export'" in err
    assert run_cli("info", "b0") == 0  # the other verbs still load and run


# --- user mistakes are errors, not bugs ------------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        ["info", "no-such-model"],
        ["info", "b0", "--seconds", "-1"],
        ["cohort", "--embeddings", "{tmp}/none.npz", "-o", "{tmp}/c.npz"],
        ["embed", "{audio}", "--model", "no-such-model", "--random-init", "-o", "{tmp}/e.npz"],
        ["embed", "{audio}", "--checkpoint", "{ckpt}", "-o", "{tmp}/e.npz", "--max-seconds", "0.1"],
        [
            "embed",
            "{audio}",
            "--checkpoint",
            "{ckpt}",
            "-o",
            "{tmp}/e.npz",
            "--max-seconds",
            "5",
            "--overlap-seconds",
            "6",
        ],
        ["embed", "{audio}", "--checkpoint", "{ckpt}", "-o", "{tmp}/e.xyz"],
        ["embed", "{audio}", "--checkpoint", "{tmp}", "-o", "{tmp}/e.npz"],
        ["verify", "{audio}", "{tmp}/missing.wav", "--checkpoint", "{ckpt}"],
        ["eval", "--embeddings", "{tmp}/none.npz", "--trials", "{audio}"],
        ["train", "--config", "{audio}"],
        ["speakers", "list", "--db", "{tmp}/none.db"],
    ],
)
def test_user_mistakes_exit_2_without_unexpected_errors(
    tmp_path, voices, b0_model_and_checkpoint, capsys, monkeypatch, argv
):
    monkeypatch.delenv("REDIMNET_DEBUG", raising=False)
    _, checkpoint = b0_model_and_checkpoint
    values = {"audio": voices / "a.wav", "ckpt": checkpoint, "tmp": tmp_path}
    assert run_cli(*[a.format(**values) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("redimnet: error: ") and "unexpected" not in err and "Traceback" not in err


def test_vad_writes_one_rttm_per_safe_recording_id(tmp_path, voices, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.wav").write_bytes((voices / "a.wav").read_bytes())
    (folder / "b\x1b[2J.wav").write_bytes((voices / "b.wav").read_bytes())
    out = tmp_path / "out"
    assert run_cli("vad", folder, "-o", out, "--vad", "energy") == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.rttm"]
    err = capsys.readouterr().err
    assert "\x1b" not in err and "recording id" in err


@pytest.mark.parametrize(
    "module, call",
    [
        ("matplotlib", lambda: __import__("redimnet.evaluation.plots", fromlist=["x"]).require_matplotlib()),
        (
            "onnx",
            lambda: __import__("redimnet.embedding.export", fromlist=["x"]).export_onnx(
                __import__("redimnet").build("b0"), "/tmp/never-written.onnx"
            ),
        ),
        ("silero_vad", lambda: __import__("redimnet.diarization.vad", fromlist=["x"]).SileroVAD()),
    ],
)
def test_every_optional_feature_names_its_extra_the_same_way(monkeypatch, module, call):
    from redimnet._utils.optional import EXTRAS

    monkeypatch.setitem(sys.modules, module, None)
    for loaded in [name for name in sys.modules if name.startswith(module + ".")]:  # imported by earlier tests
        monkeypatch.delitem(sys.modules, loaded)
    with pytest.raises(MissingDependencyError) as caught:
        call()
    assert f'pip install "redimnet[{EXTRAS[module][1]}]"' in str(caught.value)


def test_bidirectional_overrides_are_escaped_and_refused():
    assert printable("evil\u202egnp.exe") == "evil\\u202egnp.exe"
    with pytest.raises(UnsafeNameError, match="control character"):
        check_speaker_name("ann\u202e")
    with pytest.raises(UnsafeNameError):
        path_below("/tmp", "spk\u2066/a.wav")


def test_der_table_escapes_recording_names(tmp_path, capsys):
    reference, hypothesis = tmp_path / "ref.rttm", tmp_path / "hyp.rttm"
    reference.write_text("SPEAKER rec\x1b[2J 1 0.00 2.00 <NA> <NA> ann <NA> <NA>\n")
    hypothesis.write_text("SPEAKER rec\x1b[2J 1 0.00 2.00 <NA> <NA> s1 <NA> <NA>\n")
    assert run_cli("der", reference, hypothesis) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "rec\\x1b[2J" in out


def test_eval_table_escapes_trial_list_names(tmp_path, capsys):
    save_embeddings(tmp_path / "e.npz", ["a", "b", "c"], np.eye(3, dtype=np.float32) + 0.1)
    trials = tmp_path / "list\x1b[31m.txt"
    trials.write_text("1 a b\n0 a c\n")
    assert run_cli("eval", "--embeddings", tmp_path / "e.npz", "--trials", trials) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "list\\x1b[31m" in out


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.text(min_size=1, max_size=30), st.text(max_size=30)), min_size=1, max_size=5))
def test_fuzz_failure_report_is_one_line_of_two_fields_per_failure(tmp_path, failures):
    output = open_output(tmp_path / "e.npz")
    report = output.write_failures(failures)
    lines = report.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and len(lines) == len(failures) + 2
    for line, (path, _) in zip(lines[1:], failures):
        fields = line.split("\t")
        assert len(fields) == 2
        assert fields[0].encode("ascii", "backslashreplace").decode("unicode_escape") == path
