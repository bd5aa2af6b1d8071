"""Shared test helpers: where the reference fixtures live."""

from pathlib import Path

import pytest
import torch

import redimnet

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
