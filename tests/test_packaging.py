"""Packaging facts a newcomer relies on: the `all` extra and the files shipped with the package."""

import re

import pytest
from conftest import PROJECT_ROOT

tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def project():
    return tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())


def test_all_extra_installs_every_optional_feature():
    extras = project()["project"]["optional-dependencies"]
    features = sorted(name for name in extras if name not in ("all", "test", "lint"))
    (requirement,) = extras["all"]
    listed = re.fullmatch(r"redimnet\[([a-z0-9_,-]+)\]", requirement).group(1).split(",")
    assert sorted(listed) == features


def test_recipes_are_package_data():
    patterns = project()["tool"]["setuptools"]["package-data"]["redimnet"]
    assert "recipes/*.yaml" in patterns
    assert list((PROJECT_ROOT / "redimnet" / "recipes").glob("*.yaml"))


def test_type_marker_is_package_data():
    assert "py.typed" in project()["tool"]["setuptools"]["package-data"]["redimnet"]
    assert (PROJECT_ROOT / "redimnet" / "py.typed").is_file()


def test_test_extra_includes_every_feature_and_the_pinned_lint_tools():
    extras = project()["project"]["optional-dependencies"]
    assert extras["lint"] and all("==" in requirement for requirement in extras["lint"])
    assert "redimnet[all,lint]" in extras["test"]


def test_every_optional_requirement_has_an_upper_bound():
    """A new major version of a tool never reaches a fresh install before the suite has passed with it."""
    extras = project()["project"]["optional-dependencies"]
    unbounded = [
        requirement
        for requirements in extras.values()
        for requirement in requirements
        if not requirement.startswith("redimnet[") and "<" not in requirement and "==" not in requirement
    ]
    assert unbounded == []


def _bash_block(section: str) -> list:
    readme = (PROJECT_ROOT / "README.md").read_text()
    text = readme[readme.index(section) :]
    block = text[text.index("```bash\n") + len("```bash\n") : text.index("\n```", text.index("```bash\n"))]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_quick_start_and_tests_install_cpu_only_torch_first():
    """PyTorch's default Linux wheels bring several GB of CUDA; the CPU build comes first, in both places."""
    cpu_index = "--index-url https://download.pytorch.org/whl/cpu"
    for section in ("## Quick start", "## Tests"):
        installs = [line for line in _bash_block(section) if line.startswith("python -m pip install")]
        assert installs[0].startswith("python -m pip install torch") or installs[0].startswith(
            'python -m pip install "torch=='
        ), section
        assert installs[0].endswith(cpu_index), section
        assert all(cpu_index not in line for line in installs[1:]), section
    # the tests' torch pin is the same on both lines, so the second keeps the CPU build the first installed
    pins = {re.search(r'"torch==([0-9.]+)"', line).group(1) for line in _bash_block("## Tests") if "torch==" in line}
    assert len(pins) == 1


def test_readme_extras_table_lists_every_extra():
    readme = (PROJECT_ROOT / "README.md").read_text()
    install = readme[readme.index("## Install") : readme.index("## Tests")]
    listed = re.findall(r"^\| `([a-z0-9_-]+)` \|", install, re.M)
    assert sorted(listed) == sorted(project()["project"]["optional-dependencies"])


def test_ci_runs_the_readme_test_commands_lint_first():
    documented = _bash_block("## Tests")
    script = (PROJECT_ROOT / ".ci" / "run").read_text().splitlines()
    ci = [line.strip() for line in script if line.startswith(("python ", "apt-get "))]
    assert ci == documented
    order = [next(i for i, line in enumerate(ci) if tool in line) for tool in ("ruff check", "mypy", "pytest")]
    assert order == sorted(order), "the lint and type checks run before the tests"
