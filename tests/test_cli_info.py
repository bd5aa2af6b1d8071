"""``redimnet info`` and the CLI's error handling."""

import json
import subprocess
import sys

import pytest

import redimnet
from conftest import official_file
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
    assert rows[0]["parameters"] < rows[-1]["parameters"]


@pytest.mark.parametrize("argv, message", [
    (["info", "b9"], "unknown model 'b9'"),
    (["info", "--checkpoint", "/nonexistent/model.pt"], "checkpoint not found"),
    (["info", "b0", "--seconds", "-1"], "--seconds must be positive"),
])
def test_errors_are_one_line_without_traceback(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert err.startswith("redimnet: error:")


def test_console_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "redimnet", "info", "b9"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "unknown model" in result.stderr and "Traceback" not in result.stderr
