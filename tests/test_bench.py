"""The benchmark command runs end to end and reports consistent numbers (no timing assertions)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_bench(tmp_path, *extra):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench.py"),
            "--presets",
            "b0",
            "--shapes",
            "2x1",
            "--repeats",
            "1",
            "--no-memory",
            "--no-train",
            "--no-onnx",
            "--threads",
            "1",
            "--json",
            str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done, out


@pytest.mark.slow
def test_bench_reports_both_paths_with_their_agreement(tmp_path):
    done, out = run_bench(tmp_path, "--rounds", "2")
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    rows = {row["variant"]: row for row in result["inference"]}
    assert set(rows) == {"plain", "optimized"}
    assert result["rounds"] == 2 and len(rows["optimized"]["round_best_times_s"]) == 2
    for row in rows.values():
        assert row["shape"] == "2x1" and row["audio_s_per_s"] > 0
        assert abs(row["audio_s_per_s"] * row["best_time_s"] - 2.0) < 1e-6  # 2 x 1 s of audio
        low, high = row["vs_plain_range"]
        assert low <= row["vs_plain"] <= high
    assert rows["optimized"]["max_rel_diff"] < 1e-4
    assert "optimized" in done.stdout and "vs original" in done.stdout


@pytest.mark.slow
def test_bench_rejects_bad_options(tmp_path):
    done, _ = run_bench(tmp_path, "--rounds", "0")
    assert done.returncode == 2 and "--rounds" in done.stderr
    done, _ = run_bench(tmp_path, "--original", str(tmp_path))
    assert done.returncode == 2 and "not a checkout of the original" in done.stderr
