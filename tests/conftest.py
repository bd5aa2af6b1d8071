"""Shared test helpers: where the reference fixtures live, and what happens when they are absent.

The reference fixtures (outputs of the original implementations) live outside the repository, in
``../shared/fixtures`` relative to the project root, or wherever ``REDIMNET_FIXTURES`` points.
Without them, the tests that need them are skipped with one reason and everything else runs.
In CI (``CI=true``) or with ``REDIMNET_REQUIRE_FIXTURES=1`` a missing fixture is an error instead,
so a misconfigured CI cannot pass by skipping; ``REDIMNET_REQUIRE_FIXTURES=0`` turns that off.
"""

import os
from pathlib import Path

import pytest
import torch

import redimnet

PROJECT_ROOT = Path(__file__).resolve().parents[1]
FIXTURES_VARIABLE = "REDIMNET_FIXTURES"
REQUIRE_VARIABLE = "REDIMNET_REQUIRE_FIXTURES"
FIXTURES = Path(os.environ.get(FIXTURES_VARIABLE) or PROJECT_ROOT.parent / "shared" / "fixtures").resolve()
OFFICIAL = FIXTURES / "official"

# The smallest useful ReDimNet (b0 overrides) for tests that train: a step takes milliseconds.
TINY_MODEL = {
    "F": 24,
    "C": 4,
    "block_2d_type": "convnext_like",
    "group_divisor": 4,
    "block_1d_type": "conv",
    "embed_dim": 16,
    "hop_length": 160,
    "stages_setup": [[1, 1, 1, [[3, 3]], 4], [2, 1, 1, [[3, 3]], 4]],
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def fixtures_required() -> bool:
    """True when a missing fixture must fail the run: ``REDIMNET_REQUIRE_FIXTURES``, else ``CI``."""
    explicit = os.environ.get(REQUIRE_VARIABLE, "").strip().lower()
    if explicit in _TRUE | _FALSE:
        return explicit in _TRUE
    return os.environ.get("CI", "").strip().lower() in _TRUE


MISSING_REASON = (
    f"reference fixtures not found in {FIXTURES} (set {FIXTURES_VARIABLE} to the fixtures folder to run these tests)"
)


def _missing(what: Path):
    """Skip the calling test, or fail it where fixtures are required."""
    if fixtures_required():
        pytest.fail(
            f"reference fixture missing: {what}; {MISSING_REASON} "
            f"(fixtures are required because CI or {REQUIRE_VARIABLE} is set)",
            pytrace=False,
        )
    pytest.skip(MISSING_REASON)


def fixture_file(*parts: str) -> Path:
    """Path of one fixture file under the fixtures folder; skips (or fails) the test if absent."""
    path = FIXTURES.joinpath(*parts)
    if not path.exists():
        _missing(path)
    return path


def official_file(name: str) -> Path:
    """Path of ``official/<name>``; skips (or fails) the test if absent."""
    return fixture_file("official", name)


def official_fixtures(folder: str = "official"):
    """Names of the checkpoints in ``<fixtures>/<folder>`` (each with a ``.npz``)."""
    where = FIXTURES / folder
    if not where.is_dir():
        return []
    return sorted(p.stem for p in where.glob("*.pt") if p.with_suffix(".npz").exists())


def require_fixtures(folder: str = "official"):
    """Names to parametrize fixture tests with (checkpoints in ``<fixtures>/<folder>``), at module level.

    When there are none: raises at collection where fixtures are required (so the run fails), and
    otherwise returns a single parameter marked as skipped, so the module's other tests still run.
    """
    names = official_fixtures(folder)
    if names:
        return names
    if fixtures_required():
        raise RuntimeError(
            f"reference fixtures missing: expected checkpoints in {FIXTURES / folder}; "
            f"{MISSING_REASON} (required because CI or {REQUIRE_VARIABLE} is set)"
        )
    return [pytest.param("missing", marks=pytest.mark.skip(reason=MISSING_REASON))]


def pytest_report_header(config):
    if official_fixtures():
        return f"reference fixtures: {FIXTURES}"
    state = "REQUIRED, tests needing them will fail" if fixtures_required() else "tests needing them are skipped"
    return f"reference fixtures: not found in {FIXTURES} ({state})"


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for the module: inference on many short inputs is faster that way on
    a 2-core machine where DataLoader workers or other processes share the cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def b0_model_and_checkpoint(tmp_path_factory):
    """A b0 preset with (seeded) random weights and its checkpoint file."""
    torch.manual_seed(0)
    model = redimnet.build("b0").eval()
    return model, redimnet.save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "b0.pt")


# --- a throwaway PostgreSQL server (the PostgreSQL speaker store's tests) ------------------------------------
@pytest.fixture(scope="session")
def postgres_server():
    """URL of a PostgreSQL server started for this test session (Debian's ``postgresql`` package); the tests
    that use it are skipped, with one reason, where the server binaries or psycopg are missing."""
    from redimnet.testing.postgres import MISSING, find_binaries, temporary_server

    if find_binaries() is None:
        pytest.skip(MISSING)
    pytest.importorskip("psycopg", reason='psycopg is not installed: pip install "redimnet[postgres]"')
    with temporary_server() as url:
        yield url


_DATABASES = iter(range(1, 1 << 30))


@pytest.fixture
def postgres_url(postgres_server):
    """URL of a new, empty database on the session's PostgreSQL server."""
    from redimnet.testing.postgres import create_database

    return create_database(postgres_server, f"test_{next(_DATABASES)}")
