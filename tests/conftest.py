"""Shared test helpers: where the reference fixtures live."""

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = PROJECT_ROOT.parent / "shared" / "fixtures"
OFFICIAL = FIXTURES / "official"


def official_fixtures():
    """Names of the checkpoints in ``../shared/fixtures/official`` (each with a ``.npz``)."""
    if not OFFICIAL.is_dir():
        return []
    return sorted(p.stem for p in OFFICIAL.glob("*.pt") if p.with_suffix(".npz").exists())


@pytest.fixture(scope="session")
def official_dir() -> Path:
    if not OFFICIAL.is_dir():
        pytest.fail(f"reference fixtures missing: expected the folder {OFFICIAL} "
                    "(../shared/fixtures/official relative to the project root)")
    return OFFICIAL


def require_fixtures():
    """Fail (not skip) at collection time when the fixtures folder is absent."""
    names = official_fixtures()
    if not names:
        raise RuntimeError(f"reference fixtures missing: expected checkpoints in {OFFICIAL} "
                           "(../shared/fixtures/official relative to the project root)")
    return names
