"""The diarization benchmark's stages run and report what they measured (no timing assertions)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "diarization.py"


def _run(*argv):
    done = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_stages_report_memory_and_results(tmp_path):
    from redimnet.testing.synth import generate_conversation

    clustered = _run("stage", "--stage", "cluster", "--windows", "600")
    assert clustered["windows"] == 600 and clustered["speakers_found"] == 6 and clustered["peak_rss_mb"] > 0
    reference = generate_conversation(tmp_path / "c.wav", speakers=2, seconds=20, seed=2)
    vad = _run("stage", "--stage", "vad", "--vad", "energy", "--file", str(tmp_path / "c.wav"))
    assert vad["audio_seconds"] == 20.0 and vad["regions"] >= 1
    assert abs(vad["speech_seconds"] - sum(e - s for s, e, _ in reference)) < 6.0
