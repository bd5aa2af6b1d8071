"""Does ``redimnet embed`` keep the model busy?  Its throughput against the model's own, same audio, same run.

A folder of ``--files`` recordings of 3-8 s of noise at mixed sample rates
(8, 16, 22.05, 44.1 and 48 kHz; WAV and FLAC) is written once.  Each round
then measures, each in a fresh Python process:

* **model**: the optimised model (as ``redimnet embed`` builds it) on the
  same recordings, already decoded and resampled in memory, one forward pass
  each (the lengths differ, so there is nothing to batch) -- the most any
  pipeline could reach;
* **loop**: the share of the pipeline loop's wall time (:meth:`Embedder.run`
  with the same workers) spent in the model's forward passes;
* **embed**: ``redimnet embed FOLDER -o OUT.npz`` as a user runs it (``python -m redimnet``), timed
  from process start to exit (imports, model loading, decoding, writing),
  and as the command itself reports it (from after Python and torch have
  started: model loading, decoding, embedding, writing).

Throughput is seconds of audio per second; the ratio embed / model is the
share of the model's speed the whole command delivers.  Rounds alternate
the two so that a busy machine affects both alike.  On a machine shared
with other work the wall-clock ratio is noisy; the CPU-time ratio (the
model's CPU time alone against the CPU time of embed's main process, where
the model runs; decoding is in the worker) is steadier and is what the
wall-clock ratio tends to when a core is free for the worker.

    python benchmarks/pipeline_throughput.py                  # b2, 200 files, 3 rounds
    python benchmarks/pipeline_throughput.py --model b0 --files 50 --rounds 2
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's redimnet, also when run as a script from elsewhere
RATES = (8000, 16000, 22050, 44100, 48000)

MODEL_ONLY = r"""
import json, sys, time
from pathlib import Path
import numpy as np, torch
import redimnet
from redimnet.audio import list_audio_files, read_audio
from redimnet.inference import Embedder
folder, checkpoint, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(threads)
embedder = Embedder(redimnet.load_checkpoint(checkpoint), device="cpu")
waves = [torch.from_numpy(read_audio(p))[None] for p in list_audio_files(folder)]
started, cpu = time.perf_counter(), time.process_time()
with torch.inference_mode():
    for wave in waves:
        embedder.network(wave)
elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
print(json.dumps({"audio_seconds": sum(w.shape[1] for w in waves) / 16000, "seconds": elapsed, "cpu": cpu}))
"""

LOOP = r"""
import json, sys, time
import torch
import redimnet
from redimnet import pipeline
from redimnet.audio import list_audio_files
from redimnet.inference import Embedder
folder, checkpoint, threads, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
embedder = Embedder(redimnet.load_checkpoint(checkpoint), device="cpu")
spent = [0.0]
forward = pipeline.EmbeddingPipeline.forward
def timed(self, batch):
    started = time.perf_counter()
    try:
        return forward(self, batch)
    finally:
        spent[0] += time.perf_counter() - started
pipeline.EmbeddingPipeline.forward = timed
started = time.perf_counter()
count = sum(1 for _ in embedder.run(list_audio_files(folder), workers=workers))
print(json.dumps({"seconds": time.perf_counter() - started, "forward": spent[0], "results": count}))
"""

# ``python -m redimnet embed ...`` exactly (the program's own entry point, exit included), reporting
# the main process's CPU time as the interpreter begins to exit.
EMBED = r"""
import atexit, json, resource, runpy
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"cpu": usage.ru_utime + usage.ru_stime}), flush=True)
atexit.register(cpu)
runpy.run_module("redimnet", run_name="__main__", alter_sys=True)
"""


def make_corpus(folder: Path, files: int) -> float:
    """Write the recordings (once); returns their total duration in seconds."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    total = 0.0
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        rate = RATES[index % len(RATES)]
        seconds = float(rng.uniform(3.0, 8.0))
        total += seconds
        path = folder / f"spk{index % 10}" / f"utt{index:04d}.{'flac' if index % 4 == 3 else 'wav'}"
        if path.exists():
            continue
        path.parent.mkdir(exist_ok=True)
        samples = (rng.standard_normal(int(seconds * rate)) * 0.1).astype(np.float32)
        sf.write(str(path), samples, rate, subtype="PCM_16")
    return total


def make_checkpoint(model: str, folder: Path) -> Path:
    import torch

    import redimnet

    path = folder / f"{model}.pt"
    if not path.exists():
        torch.manual_seed(0)
        redimnet.save_checkpoint(redimnet.build(model).eval(), path)
    return path


def environment(threads: int) -> dict:
    return {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "OMP_NUM_THREADS": str(threads),
    }


def model_only(corpus: Path, checkpoint: Path, threads: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", MODEL_ONLY, str(corpus), str(checkpoint), str(threads)],
        capture_output=True,
        text=True,
        env=environment(threads),
    )
    if done.returncode:
        raise SystemExit(f"model-only run failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def loop_share(corpus: Path, checkpoint: Path, threads: int, workers: int) -> float:
    """Share of the pipeline loop's wall time spent in the model's forward passes (in-process)."""
    done = subprocess.run(
        [sys.executable, "-c", LOOP, str(corpus), str(checkpoint), str(threads), str(workers)],
        capture_output=True,
        text=True,
        env=environment(threads),
    )
    if done.returncode:
        raise SystemExit(f"pipeline loop run failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["forward"] / result["seconds"]


def embed(corpus: Path, checkpoint: Path, threads: int, workers: int, out: Path, audio_seconds: float) -> dict:
    for stale in (out, out.with_name(out.stem + ".failed.tsv")):
        if stale.exists():
            stale.unlink()
    argv = [
        sys.executable,
        "-c",
        EMBED,
        "embed",
        str(corpus),
        "-o",
        str(out),
        "--checkpoint",
        str(checkpoint),
        "--threads",
        str(threads),
        "--workers",
        str(workers),
        "--no-progress",
    ]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=environment(threads))
    elapsed = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"redimnet embed failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    summary = re.search(r"s of audio\) in ([0-9.]+) s", done.stderr)
    cpu = json.loads(done.stdout.strip().splitlines()[-1])["cpu"]
    return {
        "audio_seconds": audio_seconds,
        "seconds": elapsed,
        "cpu": cpu,
        "reported_seconds": float(summary.group(1)) if summary else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="b2", help="preset with random weights (default b2)")
    parser.add_argument("--files", type=int, default=200, help="recordings of 3-8 s (default 200)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="model threads in both measurements (default 1)")
    parser.add_argument("--workers", type=int, default=1, help="redimnet embed --workers (default 1)")
    parser.add_argument("--scratch", default=os.path.join(tempfile.gettempdir(), "redimnet-throughput-bench"))
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    scratch = Path(args.scratch)
    corpus = scratch / f"corpus{args.files}"
    make_corpus(corpus, args.files)
    checkpoint = make_checkpoint(args.model, scratch)
    rounds = []
    print(f"{args.model}, {args.files} files of 3-8 s, model threads {args.threads}, embed --workers {args.workers}")
    for number in range(args.rounds):
        load = os.getloadavg()[0]  # the machine's one-minute load average as the round starts (2 cores: 2 is full)
        first = model_only(corpus, checkpoint, args.threads)
        cli = embed(corpus, checkpoint, args.threads, args.workers, scratch / "out.npz", first["audio_seconds"])
        model_speed = first["audio_seconds"] / first["seconds"]
        cli_speed = cli["audio_seconds"] / cli["seconds"]
        inside = first["seconds"] / cli["reported_seconds"] if cli["reported_seconds"] else float("nan")
        cpu = first["cpu"] / cli["cpu"]
        busy = loop_share(corpus, checkpoint, args.threads, args.workers)
        rounds.append(
            {
                "model": first,
                "embed": cli,
                "ratio": cli_speed / model_speed,
                "ratio_inside": inside,
                "ratio_cpu": cpu,
                "loop_share": busy,
                "load_average": [load, os.getloadavg()[0]],
            }
        )
        print(
            f"round {number + 1}: model {model_speed:.1f} s/s ({first['seconds']:.1f} s, {first['cpu']:.1f} s CPU), "
            f"embed {cli_speed:.1f} s/s ({cli['seconds']:.1f} s wall, {cli['reported_seconds']} s after start-up, "
            f"{cli['cpu']:.1f} s CPU in the main process), ratio {cli_speed / model_speed:.3f} "
            f"(after start-up {inside:.3f}, CPU {cpu:.3f}); model busy {busy:.3f} of the pipeline loop; "
            f"load average {load:.2f} -> {os.getloadavg()[0]:.2f}",
            flush=True,
        )
    for key, what in (
        ("ratio", "whole command, wall clock"),
        ("ratio_inside", "after Python/torch start-up"),
        ("ratio_cpu", "CPU time: model alone / embed's main process (decoding is in the worker)"),
        ("loop_share", "share of the pipeline loop's wall time in the model's forward passes"),
    ):
        ratios = [r[key] for r in rounds]
        print(
            f"embed / model throughput, {what}: median {statistics.median(ratios):.3f} "
            f"(range {min(ratios):.3f}-{max(ratios):.3f}) over {len(ratios)} rounds"
        )
    if args.json:
        import torch

        machine = {"cpu_count": os.cpu_count(), "python": sys.version.split()[0], "torch": torch.__version__}
        settings = {k: v for k, v in vars(args).items() if k not in ("scratch", "json")}  # no local paths
        Path(args.json).write_text(json.dumps({"args": settings, "machine": machine, "rounds": rounds}, indent=1))


if __name__ == "__main__":
    main()
