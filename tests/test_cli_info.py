"""``redimnet info`` and the CLI's error handling."""

import json
import re
import subprocess
import sys

import pytest
from conftest import official_file

import redimnet
from redimnet.cli import main


def test_help_lists_verbs(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    assert "info" in capsys.readouterr().out


def test_info_preset(capsys):
    assert main(["info", "b0"]) == 0
    out = capsys.readouterr().out
    assert "ReDimNet-B0" in out and "block_2d_type: 'basic_resnet'" in out
    assert "parameters: 1,004,251 (1.00 M)" in out
    assert "GMACs for 2 s of audio: 0.415" in out


@pytest.mark.slow
def test_info_checkpoint_json(capsys):
    checkpoint = official_file("var_tfmel_cls.pt")
    assert main(["info", "--checkpoint", str(checkpoint), "--json", "--seconds", "1"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["config"]["feat_type"] == "tf" and facts["config"]["num_classes"] == 11
    model = redimnet.load_checkpoint(checkpoint)
    assert facts["parameters"] == sum(p.numel() for p in model.parameters())


def test_info_lists_presets(capsys):
    assert main(["info", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == redimnet.list_models()
    assert [w for r in rows for w in r["weights"]] == redimnet.list_weights()
    by_name = {r["name"]: r for r in rows}
    assert by_name["b0"]["parameters"] < by_name["b6"]["parameters"] and by_name["S"]["parameters"] is None
    assert by_name["redimnet2-b6"]["family"] == "redimnet2"  # both families listed


@pytest.fixture
def nothing_built(monkeypatch):
    """Building or counting a network fails the test: info must answer from the stored numbers."""

    def refuse(*args, **kwargs):
        raise AssertionError("a network was built")

    monkeypatch.setattr(redimnet.ReDimNet, "__init__", refuse)
    monkeypatch.setattr("redimnet.models.complexity.count_macs", refuse)


def test_info_answers_from_stored_numbers(capsys, nothing_built):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^b0 +1\.00M +0\.415 +1\.16  vox2-ft_lm, vox2-ptn$", out, re.M)
    assert re.search(r"^M +- +- +-  vb2\+vox2\+cnc-ft_mix, vb2-ptn$", out, re.M)
    assert re.search(r"^redimnet2-b6 +12\.39M +12\.908 +0\.29  vox2-lm, vox2-ptn$", out, re.M)
    assert "default model: b2.vox2-ft_lm" in out
    assert main(["info", "b2.vox2-ft_lm"]) == 0
    out = capsys.readouterr().out
    assert "parameters: 4,892,849 (4.89 M)  (stored; --count to measure)" in out
    assert "weights b2.vox2-ft_lm: MIT EER 0.57 / 0.76 / 1.32 % sha256 c9b6bb2f6747..." in out
    assert "b2.vox2-ptn" not in out
    assert main(["info", "S"]) == 0
    assert "published only inside the weight files" in capsys.readouterr().out
    assert main(["info", "redimnet2-b2"]) == 0  # another family: its name is the title
    assert capsys.readouterr().out.startswith("redimnet2-b2\n")


@pytest.mark.slow
def test_info_does_not_load_pytorch():
    """Why 'redimnet info' answers at once: the stored table needs neither PyTorch nor the other verbs."""
    code = (
        "import sys\nfrom redimnet.cli import main\nstatus = main(['info'])\n"
        "print('loaded:', sorted(m for m in ('torch', 'numpy', 'redimnet.cli.embed') if m in sys.modules))\n"
        "import redimnet\nassert callable(redimnet.metrics.eer) and redimnet.ReDimNet  # loaded on first use\n"
        "sys.exit(status)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^b6 +15\.02M", result.stdout, re.M) and "loaded: []" in result.stdout
    assert re.search(r"^redimnet2-b6 +12\.39M", result.stdout, re.M)


def test_info_counts_on_request(capsys):
    assert main(["info", "b0", "--count", "--seconds", "4", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["counted"] and facts["parameters"] == 1_004_251 and 0.80 < facts["gmacs"] < 0.86
    assert main(["info", "b0", "--seconds", "4"]) == 2
    assert "--seconds needs --count" in capsys.readouterr().err
    assert main(["info", "M", "--count"]) == 2
    assert "published only inside its weight files" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["info", "b9"], "unknown model 'b9'"),
        (["info", "--checkpoint", "/nonexistent/model.pt"], "checkpoint not found"),
        (["info", "b0", "--seconds", "-1"], "--seconds must be positive"),
    ],
)
def test_errors_are_one_line_without_traceback(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert err.startswith("redimnet: error:")


def test_console_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "redimnet", "info", "b9"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "unknown model" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_the_program_keeps_the_garbage_collector_off_start_up_objects():
    """As the program itself, the command runs with everything start-up built frozen out of the
    collector's sight (imports run with it off) and ends frozen; a caller of main(argv) in its own
    process is left as it was."""
    import gc

    before = gc.get_freeze_count()
    assert main(["info", "b9"]) == 2
    assert gc.get_freeze_count() == before and gc.isenabled()
    code = (
        "import atexit, gc, sys\n"
        "import redimnet.cli as cli\n"
        "seen, original = [], cli.run_handler\n"
        "def spy(handler, args):\n"
        "    seen.append((gc.isenabled(), gc.get_freeze_count() > 0, 'torch' in sys.modules))\n"
        "    return original(handler, args)\n"
        "cli.run_handler = spy\n"
        "atexit.register(lambda: print(seen, gc.get_freeze_count() > 0))\n"
        "sys.argv = ['redimnet', *sys.argv[1:]]\n"
        "sys.exit(cli.main())\n"
    )
    for argv, status, torch_at_start in (
        (["info", "b0"], 0, False),  # info imports torch when it needs it
        (["embed", "-o", "never.npz"], 2, True),  # refused (nothing to embed); parsing imported embed and torch
    ):
        done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300)
        assert done.returncode == status, done.stderr
        # parsing with the collector off, the command with it on and start-up frozen, the end frozen
        assert done.stdout.splitlines()[-1] == f"[(False, False, False), (True, True, {torch_at_start})] True"


def test_closed_pipe_is_not_reported_as_an_error():
    """``redimnet info | head -1``: the reader leaving early is no error message."""
    process = subprocess.Popen(
        [sys.executable, "-m", "redimnet", "info"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    process.stdout.close()  # the reader is gone before anything is written
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141
    assert "error" not in err and "Traceback" not in err
