"""The README's Python API example runs as written."""

import os
import re

from conftest import PROJECT_ROOT


def test_python_api_example_runs(tmp_path, capsys):
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme[readme.index("## Python API"):]
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
