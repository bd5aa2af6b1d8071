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


def test_test_extra_includes_the_pinned_lint_tools():
    extras = project()["project"]["optional-dependencies"]
    assert extras["lint"] and all("==" in requirement for requirement in extras["lint"])
    assert set(extras["lint"]) <= set(extras["test"])


def test_readme_extras_table_lists_every_extra():
    readme = (PROJECT_ROOT / "README.md").read_text()
    install = readme[readme.index("## Install") : readme.index("## Tests")]
    listed = re.findall(r"^\| `([a-z0-9_-]+)` \|", install, re.M)
    assert sorted(listed) == sorted(project()["project"]["optional-dependencies"])


def test_ci_runs_the_readme_test_commands_lint_first():
    readme = (PROJECT_ROOT / "README.md").read_text()
    tests = readme[readme.index("## Tests") :]
    block = tests[tests.index("```bash\n") + len("```bash\n") : tests.index("\n```", tests.index("```bash\n"))]
    documented = [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]
    script = (PROJECT_ROOT / ".ci" / "run").read_text().splitlines()
    ci = [line.strip() for line in script if line.startswith(("python ", "apt-get "))]
    assert ci == documented
    order = [next(i for i, line in enumerate(ci) if tool in line) for tool in ("ruff check", "mypy", "pytest")]
    assert order == sorted(order), "the lint and type checks run before the tests"
