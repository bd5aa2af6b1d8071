"""Without the reference fixtures the suite still runs (their tests skip); CI makes them required."""

import os
import re
import subprocess
import sys

import pytest
from conftest import PROJECT_ROOT

# One parametrized parity module (needs the fixtures), one test that reads a single fixture file,
# and one test that needs none.
SELECTION = [
    "tests/test_parity.py",
    "tests/test_checkpoint.py::test_corrupted_member",
    "tests/test_frontend.py::test_mel_frontend_against_numpy_reference",
]


def run_pytest(tmp_path, **variables):
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "REDIMNET_REQUIRE_FIXTURES")}
    env.update(
        REDIMNET_FIXTURES=str(tmp_path / "nowhere"),
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")])),
    )
    env.update(variables)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *SELECTION],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, done.stdout + done.stderr


@pytest.mark.slow
def test_missing_fixtures_skip_with_one_reason(tmp_path):
    code, out = run_pytest(tmp_path)
    assert code == 0, out
    assert re.search(r"\b1 passed, \d+ skipped\b", out) and "error" not in out.lower(), out
    reasons = {line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("SKIPPED")}
    assert len(reasons) == 1, reasons
    assert reasons.pop().startswith(f"reference fixtures not found in {tmp_path / 'nowhere'} (set REDIMNET_FIXTURES")


@pytest.mark.slow
@pytest.mark.parametrize("variables", [{"CI": "true"}, {"REDIMNET_REQUIRE_FIXTURES": "1"}])
def test_missing_fixtures_fail_where_required(tmp_path, variables):
    code, out = run_pytest(tmp_path, **variables)
    assert code != 0, out
    assert "reference fixtures missing" in out or "reference fixture missing" in out, out


@pytest.mark.slow
def test_explicit_opt_out_wins_over_ci(tmp_path):
    code, out = run_pytest(tmp_path, CI="true", REDIMNET_REQUIRE_FIXTURES="0")
    assert code == 0, out
