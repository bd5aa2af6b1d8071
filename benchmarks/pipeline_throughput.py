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
  started: model loading, decoding, embedding, writing).  With the default
  thread policy it also reports the thread tuner's choice for every forward
  pass (``redimnet._utils.threads.ThreadTuner``): the count it started with,
  the share of passes at each count, and (in ``--json``) each pass's cost.

Throughput is seconds of audio per second; the ratio embed / model is the
share of the model's speed the whole command delivers.  Rounds alternate
the two so that a busy machine affects both alike.  On a machine shared
with other work the wall-clock ratio is noisy; the CPU-time ratio (the
model's CPU time alone against the CPU time of embed's main process, where
the model runs; decoding is in the worker) is steadier and is what the
wall-clock ratio tends to when a core is free for the worker.

The model alone runs with ``--threads`` threads (default: every usable core);
``redimnet embed`` runs as a user runs it, with the default thread policy
(``redimnet._utils.threads``: no ``--threads``, no ``OMP_NUM_THREADS``), or with
``--embed-threads N``.  ``--load K`` starts K busy processes (pure Python
loops, one core each) for every measurement of a round, to see how both fare
when another job shares the machine; ``--precision int8`` measures the int8
path (model alone: the same int8 network).

    python benchmarks/pipeline_throughput.py                  # b2, 200 files, 3 rounds, all cores
    python benchmarks/pipeline_throughput.py --model b0 --files 50 --rounds 2
    python benchmarks/pipeline_throughput.py --rounds 4 --load 1   # another job on the machine
    python benchmarks/pipeline_throughput.py --files 200,600       # a longer job: start-up amortised

Several ``--files`` sizes (and ``--load`` values) are measured in turn in every round.
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
from contextlib import contextmanager
from pathlib import Path
from typing import List, Optional

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
from redimnet.embedding.embedder import Embedder
folder, checkpoint, threads, precision = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(threads)
embedder = Embedder(redimnet.load_checkpoint(checkpoint), device="cpu", precision=precision)
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
from redimnet.embedding import pipeline
from redimnet.audio import list_audio_files
from redimnet.embedding.embedder import Embedder
folder, checkpoint, precision = sys.argv[1], sys.argv[2], sys.argv[5]
threads, workers = int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
embedder = Embedder(redimnet.load_checkpoint(checkpoint), device="cpu", precision=precision)
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
import atexit, json, os, resource, runpy
from redimnet._utils import threads
tuners, costs = [], []
class Recorded(threads.ThreadTuner):  # the thread policy's choices and what each pass cost, for the report
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        tuners.append(self)
    def stop(self, samples):
        began = self.started
        super().stop(samples)
        costs.append(round((threads.time.perf_counter() - began) / max(1, samples) * 1e6, 3))  # us per sample
threads.ThreadTuner = Recorded
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)  # the decoding workers, joined by now
    own, theirs = usage.ru_utime + usage.ru_stime, workers.ru_utime + workers.ru_stime
    history = tuners[0].history if tuners else []
    print(json.dumps({"cpu": own, "workers_cpu": theirs, "threads": history, "pass_costs": costs}), flush=True)
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


BUSY = "while True: pass"


def environment(threads: Optional[int]) -> dict:
    """This checkout on the path; OMP_NUM_THREADS set to ``threads``, or removed (None: the thread policy decides)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


@contextmanager
def competing_jobs(count: int):
    """``count`` busy processes (one core each) while the block runs."""
    jobs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(count)]
    try:
        time.sleep(0.5 if jobs else 0.0)
        yield
    finally:
        for job in jobs:
            job.kill()
        for job in jobs:
            job.wait()


def model_only(corpus: Path, checkpoint: Path, threads: int, precision: str = "float32") -> dict:
    done = subprocess.run(
        [sys.executable, "-c", MODEL_ONLY, str(corpus), str(checkpoint), str(threads), precision],
        capture_output=True,
        text=True,
        env=environment(threads),
    )
    if done.returncode:
        raise SystemExit(f"model-only run failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def loop_share(corpus: Path, checkpoint: Path, threads: int, workers: int, precision: str = "float32") -> float:
    """Share of the pipeline loop's wall time spent in the model's forward passes (in-process)."""
    done = subprocess.run(
        [sys.executable, "-c", LOOP, str(corpus), str(checkpoint), str(threads), str(workers), precision],
        capture_output=True,
        text=True,
        env=environment(threads),
    )
    if done.returncode:
        raise SystemExit(f"pipeline loop run failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["forward"] / result["seconds"]


def embed(
    corpus: Path,
    checkpoint: Path,
    threads: Optional[int],
    workers: int,
    out: Path,
    audio_seconds: float,
    precision: str = "float32",
    cache: Optional[Path] = None,
) -> dict:
    """``redimnet embed`` from process start to exit; ``threads`` None: the default thread policy."""
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
        "--decode-workers",
        str(workers),
        "--no-progress",
        "--precision",
        precision,
    ]
    if threads is not None:
        argv += ["--threads", str(threads)]
    if cache is not None:
        argv += ["--cache-dir", str(cache)]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=environment(threads))
    elapsed = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"redimnet embed failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    summary = re.search(r"s of audio\) in ([0-9.]+) s", done.stderr)
    usage = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "audio_seconds": audio_seconds,
        "seconds": elapsed,
        "cpu": usage["cpu"],
        "workers_cpu": usage["workers_cpu"],
        "reported_seconds": float(summary.group(1)) if summary else None,
        "threads": usage["threads"],
        "pass_costs": usage["pass_costs"],
    }


def parse_loads(text: str) -> List[int]:
    try:
        loads = [int(part) for part in text.split(",")]
    except ValueError:
        loads = [-1]
    if not loads or min(loads) < 0:
        raise argparse.ArgumentTypeError(f"expected busy-process counts such as 0 or 0,1, got {text!r}")
    return loads


def thread_summary(history: List[int]) -> str:
    """The tuner's passes in words: the count it started with, the share at each count, the switches."""
    if not history:
        return "no thread tuner"
    shares = ", ".join(f"{count}: {history.count(count) / len(history):.0%}" for count in sorted(set(history)))
    switches = sum(1 for a, b in zip(history, history[1:]) if a != b)
    return f"threads: started at {history[0]}, passes at {shares} ({switches} changes over {len(history)} passes)"


def parse_sizes(text: str) -> List[int]:
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        sizes = [0]
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected file counts such as 200 or 200,600, got {text!r}")
    return sizes


def measure(args, corpus: Path, checkpoint: Path, scratch: Path, load: int) -> dict:
    """One round at one load: the model alone, then the whole command, under the same competing jobs."""
    with competing_jobs(load):
        average = os.getloadavg()[0]  # one-minute load average as the measurement starts (2 cores: 2 is full)
        first = model_only(corpus, checkpoint, args.threads, args.precision)
        cli = embed(
            corpus,
            checkpoint,
            args.embed_threads,
            args.workers,
            scratch / "out.npz",
            first["audio_seconds"],
            args.precision,
            scratch / "cache",
        )
        busy = loop_share(corpus, checkpoint, args.threads, args.workers, args.precision) if args.loop_share else None
    model_speed = first["audio_seconds"] / first["seconds"]
    cli_speed = cli["audio_seconds"] / cli["seconds"]
    return {
        "files": int(corpus.name[len("corpus") :]),
        "busy_processes": load,
        "model": first,
        "embed": cli,
        "model_speed": model_speed,
        "embed_speed": cli_speed,
        "ratio": cli_speed / model_speed,
        "ratio_inside": first["seconds"] / cli["reported_seconds"] if cli["reported_seconds"] else float("nan"),
        "ratio_cpu": first["cpu"] / cli["cpu"],
        "ratio_cpu_all": first["cpu"] / (cli["cpu"] + cli["workers_cpu"]),
        "loop_share": busy,
        "load_average": [average, os.getloadavg()[0]],
    }


def main() -> None:
    from redimnet._utils.threads import usable_cores

    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="b2", help="preset with random weights (default b2)")
    parser.add_argument(
        "--files",
        type=parse_sizes,
        default=[200],
        metavar="N[,N...]",
        help="recordings of 3-8 s (default 200); several sizes are measured in turn in every round",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument(
        "--threads", type=int, default=usable_cores(), help="threads of the model alone (default: every usable core)"
    )
    parser.add_argument(
        "--embed-threads",
        type=int,
        default=None,
        help="redimnet embed --threads (default: none given, the thread policy decides)",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="redimnet embed --decode-workers (default 2, as embed's own)"
    )
    parser.add_argument("--precision", default="float32", choices=["float32", "int8"])
    parser.add_argument(
        "--load",
        type=parse_loads,
        default=[0],
        metavar="K[,K...]",
        help="busy processes started beside each measurement; several values are measured in turn in every "
        "round (default 0; e.g. 0,1 for idle and loaded)",
    )
    parser.add_argument("--loop-share", action="store_true", help="also measure the pipeline loop's model share")
    parser.add_argument("--scratch", default=os.path.join(tempfile.gettempdir(), "redimnet-throughput-bench"))
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    scratch = Path(args.scratch)
    corpora = {files: scratch / f"corpus{files}" for files in args.files}
    for files, corpus in corpora.items():
        make_corpus(corpus, files)
    checkpoint = make_checkpoint(args.model, scratch)
    rounds = []
    policy = "the default policy" if args.embed_threads is None else f"--threads {args.embed_threads}"
    print(
        f"{args.model} ({args.precision}), {'/'.join(map(str, args.files))} files of 3-8 s; model alone: "
        f"{args.threads} threads; redimnet embed --workers {args.workers}, {policy}; {usable_cores()} usable cores"
    )
    for number in range(args.rounds):
        for files, corpus in corpora.items():
            for load in args.load:
                result = measure(args, corpus, checkpoint, scratch, load)
                rounds.append(result)
                first, cli = result["model"], result["embed"]
                share = f"; model busy {result['loop_share']:.3f} of the pipeline loop" if args.loop_share else ""
                print(
                    f"round {number + 1}, {files} files, {load} busy process(es): model {result['model_speed']:.1f} "
                    f"s/s ({first['seconds']:.1f} s, {first['cpu']:.1f} s CPU), embed {result['embed_speed']:.1f} "
                    f"s/s ({cli['seconds']:.1f} s wall, {cli['reported_seconds']} s after start-up, "
                    f"{cli['cpu']:.1f} s CPU in the main process, {cli['workers_cpu']:.1f} s in the workers), "
                    f"ratio {result['ratio']:.3f} (after start-up {result['ratio_inside']:.3f}, CPU "
                    f"{result['ratio_cpu']:.3f}, with the workers' {result['ratio_cpu_all']:.3f}){share}; "
                    f"{thread_summary(cli['threads'])}; load average {result['load_average'][0]:.2f} -> "
                    f"{result['load_average'][1]:.2f}",
                    flush=True,
                )
    keys = [
        ("ratio", "whole command, wall clock"),
        ("ratio_inside", "after Python/torch start-up"),
        ("ratio_cpu", "CPU time: model alone / embed's main process (decoding is in the workers)"),
        ("ratio_cpu_all", "CPU time: model alone / embed's main process and workers together"),
    ]
    if args.loop_share:
        keys.append(("loop_share", "share of the pipeline loop's wall time in the model's forward passes"))
    for files in args.files:
        for load in args.load:
            mine = [r for r in rounds if r["busy_processes"] == load and r["files"] == files]
            speeds = [r["embed_speed"] for r in mine]
            print(
                f"-- {files} files, {load} busy process(es): embed {statistics.median(speeds):.1f} s/s (range "
                f"{min(speeds):.1f}-{max(speeds):.1f}), model alone "
                f"{statistics.median(r['model_speed'] for r in mine):.1f} s/s"
            )
            for key, what in keys:
                ratios = [r[key] for r in mine]
                print(
                    f"   embed / model throughput, {what}: median {statistics.median(ratios):.3f} "
                    f"(range {min(ratios):.3f}-{max(ratios):.3f}) over {len(ratios)} rounds"
                )
    if args.json:
        import torch

        machine = {"cpu_count": os.cpu_count(), "python": sys.version.split()[0], "torch": torch.__version__}
        settings = {k: v for k, v in vars(args).items() if k not in ("scratch", "json")}  # no local paths
        Path(args.json).write_text(json.dumps({"args": settings, "machine": machine, "rounds": rounds}, indent=1))


if __name__ == "__main__":
    main()
