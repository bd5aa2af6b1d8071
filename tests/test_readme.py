"""The README's examples run as written: the Python API block, and every console block.

Console blocks (```console) run in order in one scratch folder, each ``$ command`` through bash
with ``redimnet`` and ``python`` pointing at this checkout (a plain ``redimnet ...`` command,
without pipes or redirections, runs in this process through ``redimnet.cli.main``: much faster).
The lines shown after a command must appear in its output (stdout and stderr together), in order;
numbers with a decimal point (scores, timings) and ISO-8601 time stamps may differ. A block
preceded by a line
``<!-- readme-test: skip (reason) -->`` is not run (say why: it needs data or a network).
Console blocks in docs/evaluation.md's example need its Python script first; it is run.
"""

import contextlib
import io
import os
import re
import shlex
import stat
import subprocess
import sys

import pytest
from conftest import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
SKIP_MARK = "<!-- readme-test: skip"
_NUMBER = re.compile(r"\d+\.\d+(e[-+]?\d+)?")
_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def test_python_api_example_runs(tmp_path, capsys):
    readme = README.read_text()
    section = readme[readme.index("## Python API") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert "['b0', 'b1', 'b2', 'b3', 'b4', 'b5', 'b6', 'M', 'S']" in out and "['b2.vox2-ft_lm', 'b2.vox2-ptn']" in out
    assert "torch.Size([2, 192]) torch.Size([2, 72, 134])" in out
    assert (tmp_path / "b2-random.pt").exists()


def console_blocks(text: str):
    """``(line number, [(command, [expected lines])])`` for every console block not marked to skip."""
    blocks = []
    for match in re.finditer(r"```console\n(.*?)```", text, re.S):
        before = text[: match.start()].rstrip().splitlines()
        if before and before[-1].startswith(SKIP_MARK):
            continue
        steps = []
        for line in match.group(1).splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line)
        blocks.append((text[: match.start()].count("\n") + 1, steps))
    return blocks


def normalised(line: str) -> str:
    return _NUMBER.sub("#", _STAMP.sub("TIME", line)).rstrip()


def missing_lines(expected, output: str):
    """Expected lines not found in ``output`` in order (after normalising numbers); [] when all are."""
    actual = [normalised(line) for line in re.split(r"[\r\n]", output)]
    position = 0
    for line in expected:
        want = normalised(line)
        try:
            position = actual.index(want, position) + 1
        except ValueError:
            return [line]
    return []


def test_parser_and_matcher():
    text = (
        "```console\n$ echo a\na 1.5\n$ true\n```\n<!-- readme-test: skip (needs data) -->\n```console\n$ nope\n```\n"
    )
    assert console_blocks(text) == [(1, [("echo a", ["a 1.5"]), ("true", [])])]
    assert missing_lines(["a 1.5", "c"], "a 2.25\nb\nc\n") == []
    assert missing_lines(["c", "a 1.5"], "a 2.25\nb\nc\n") == ["a 1.5"]  # order matters
    assert missing_lines(["a 3 files"], "a 4 files") == ["a 3 files"]  # whole numbers must match
    assert missing_lines(["at 2026-11-25T14:02:55Z"], "at 2027-01-01T00:00:00Z") == []


@pytest.fixture(scope="module")
def shell(tmp_path_factory):
    """Scratch folder plus an environment where ``redimnet`` and ``python`` run this checkout."""
    folder = tmp_path_factory.mktemp("readme")
    bin_dir = folder / ".bin"
    bin_dir.mkdir()
    for name, command in (("redimnet", f'"{sys.executable}" -m redimnet "$@"'), ("python", f'"{sys.executable}" "$@"')):
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\nexec {command}\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    env = dict(
        os.environ,
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        COLUMNS="100",
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS="1",
        REDIMNET_CACHE=str(folder / ".cache"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
    )
    env.pop("REDIMNET_DEBUG", None)
    return folder, env


def run_in_process(argv, folder, env):
    """``redimnet ARGV`` through ``redimnet.cli.main`` in ``folder``: (exit status, output)."""
    import torch

    from redimnet.cli import main

    output, threads, cwd = io.StringIO(), torch.get_num_threads(), os.getcwd()
    saved = {key: os.environ.get(key) for key in ("COLUMNS", "REDIMNET_CACHE", "OMP_NUM_THREADS")}
    os.environ.update({key: env[key] for key in saved})
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            try:
                status = main(argv)
            except SystemExit as stop:
                status = stop.code if isinstance(stop.code, int) else 1
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return status, output.getvalue()


def run_blocks(text: str, where: str, folder, env):
    status = 0
    for line_number, steps in console_blocks(text):
        for command, expected in steps:
            words = shlex.split(command, comments=True)
            if words[0] == "redimnet" and not re.search(r"[|<>;&$`]", command):
                status, output = run_in_process(words[1:], folder, env)
            else:
                done = subprocess.run(
                    ["bash", "-c", f"(exit {status}); {command}"],
                    cwd=folder,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    timeout=600,
                )
                status, output = done.returncode, done.stdout
            missing = missing_lines(expected, output)
            assert not missing, (
                f"{where}, block at line {line_number}: `$ {command}` (exit {status}) did not "
                f"print {missing[0]!r}; it printed:\n{output}"
            )


@pytest.mark.slow
def test_console_examples_run(shell):
    folder, env = shell
    evaluation = (PROJECT_ROOT / "docs" / "evaluation.md").read_text()
    script = re.search(r"```python\n(.*?)```", evaluation, re.S).group(1)  # writes test/train.npz, trials.txt
    subprocess.run([sys.executable, "-c", script], cwd=folder, env=env, check=True, timeout=300)
    text = README.read_text()
    assert len(console_blocks(text)) >= 5
    run_blocks(text, "README.md", folder, env)
