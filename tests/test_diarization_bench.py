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


def test_count_bound_finds_the_best_single_threshold_and_the_separable_recordings():
    import importlib.util

    spec = importlib.util.spec_from_file_location("diarization_benchmark", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    llrs = [(None, 5.0), (-10.0, 20.0), (30.0, 25.0), (0.0, 2.0), (6.0, 40.0)]  # (between, within) per recording
    rows = [{"model": "m", "part": "heldout", "speaker_llrs": {"between": b, "within": w}} for b, w in llrs]
    rows.append({"model": "m", "part": "tune", "speaker_llrs": {"between": 1.0, "within": None}})
    bound = bench._count_bound(rows)
    held = bound["m | heldout"]
    # a threshold in (0, 2] gets recordings 1, 2 and 4 right; 3 is right with none; 5 only above 6
    assert held["recordings"] == 5 and held["best_single_threshold_right"] == 3 and 0 < held["threshold"] <= 2
    assert held["right_with_a_threshold_of_their_own"] == 4
    assert bound["m | tune"]["best_single_threshold_right"] == 1
