"""int8 against float32: speed of the network at fixed shapes, and what quantisation costs in accuracy.

Speed (``speed``): for every preset (random weights, seeded) and shape, the optimised float32 model
(what ``Embedder`` runs) and the int8 network (``redimnet.fast.int8``), timed in one process, in
alternating blocks, best of ``--repeats`` calls per block, ``--rounds`` blocks; reported as seconds
of audio per second and as the median (range) of the per-round ratio int8 / float32.  A first call at
each shape is not timed: OpenVINO prepares its kernels for every new input shape (figures for that
cost are printed as ``new shape``).  ``--clock cpu`` measures process CPU time instead of wall time
(steadier on a shared machine; use it with ``--threads 1``).

Profile (``profile``): OpenVINO's per-node counters of the int8 network at each ``--threads`` count
(one 1 x 10 s input, each node's fastest of ``--calls`` calls): time per kind of node and kernel, and
the nodes grouped by their size at the first thread count, to see which ones gain from more threads
(run it on an idle machine; with other jobs on the cores a second thread finds no free core).

Accuracy (``accuracy``): for every ``--checkpoint`` (trained models: the figures mean little for
random weights) and every ``--trials LIST --audio DIR`` pair, the float32 and int8 embeddings of the
utterances in the list (the same ``Embedder`` options otherwise): their cosine (mean, minimum), and
EER and minDCF (p_target 0.01) of both on the list::

    python benchmarks/int8.py speed --presets b0,b2,b5,redimnet2-b2 --threads 2 --rounds 5
    python benchmarks/int8.py speed --threads 1 --clock cpu
    python benchmarks/int8.py profile --presets b0,redimnet2-b2 --threads 1,2
    python benchmarks/int8.py accuracy --checkpoint tests/data/diarization/redimnet_synthetic.pt \\
        --trials voices/heldout_trials.txt --audio voices/heldout
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's redimnet

import redimnet  # noqa: E402
from redimnet.fast.int8 import int8_network, openvino_config  # noqa: E402
from redimnet.fast.optimize import keep_freed_memory, optimize_for_inference  # noqa: E402


def parse_shape(text: str):
    batch, seconds = text.lower().split("x")
    return int(batch), float(seconds)


def best_time(fn: Callable[[], object], repeats: int, clock: Callable[[], float]) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = clock()
        fn()
        best = min(best, clock() - started)
    return best


def speed(args) -> List[dict]:
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    rows = []
    cache = Path(args.cache or tempfile.mkdtemp(prefix="redimnet-int8-bench-"))
    for preset in args.presets.split(","):
        torch.manual_seed(0)
        plain = redimnet.build(preset).eval()
        fp32 = optimize_for_inference(plain)
        quantised = int8_network(plain, threads=args.threads, cache_dir=cache)
        for batch, seconds in map(parse_shape, args.shapes.split(",")):
            wave = torch.randn(batch, int(seconds * 16000), generator=torch.Generator().manual_seed(1)) * 0.1
            variants = {
                "float32": lambda fp32=fp32, wave=wave: fp32(wave),
                "int8": lambda quantised=quantised, wave=wave: quantised(wave),
            }
            with torch.inference_mode():
                started = clock()
                quantised(wave)
                new_shape = clock() - started
                fp32(wave)
                times: Dict[str, List[float]] = {name: [] for name in variants}
                for number in range(args.rounds):
                    order = list(variants) if number % 2 == 0 else list(variants)[::-1]
                    for name in order:
                        times[name].append(best_time(variants[name], args.repeats, clock))
            audio = batch * seconds
            ratios = [f / q for f, q in zip(times["float32"], times["int8"])]
            row = {
                "preset": preset,
                "shape": f"{batch}x{seconds:g}",
                "float32_audio_s_per_s": audio / statistics.median(times["float32"]),
                "int8_audio_s_per_s": audio / statistics.median(times["int8"]),
                "ratio": statistics.median(ratios),
                "ratio_range": [min(ratios), max(ratios)],
                "int8_first_call_s": new_shape,
                "load_average": os.getloadavg()[0],
            }
            rows.append(row)
            print(
                f"{preset:14} {row['shape']:6} float32 {row['float32_audio_s_per_s']:7.1f}  int8 "
                f"{row['int8_audio_s_per_s']:7.1f} audio-s/s   int8/float32 {row['ratio']:.2f}x "
                f"({min(ratios):.2f}-{max(ratios):.2f})   new shape {new_shape:.2f} s   load {row['load_average']:.1f}",
                flush=True,
            )
    return rows


def profile(args) -> List[dict]:
    import openvino

    counts = [int(n) for n in args.threads.split(",")]
    cache = Path(args.cache or tempfile.mkdtemp(prefix="redimnet-int8-bench-"))
    core = openvino.Core()
    rows = []
    wave = (np.random.default_rng(1).standard_normal((1, 160000)) * 0.1).astype(np.float32)
    for preset in args.presets.split(","):
        torch.manual_seed(0)
        path = int8_network(redimnet.build(preset).eval(), threads=1, cache_dir=cache).path
        requests = {}
        for threads in counts:  # the settings of Int8Network, counters on
            config = {**openvino_config(threads), "PERF_COUNT": True}
            requests[threads] = core.compile_model(core.read_model(str(path)), "CPU", config).create_infer_request()
        fastest: Dict[int, Dict[tuple, float]] = {threads: {} for threads in counts}
        walls: Dict[int, List[float]] = {threads: [] for threads in counts}
        for call in range(args.calls + 2):  # two calls to warm up
            for threads, request in requests.items():
                started = time.perf_counter()
                request.infer({0: wave})
                if call < 2:
                    continue
                walls[threads].append(time.perf_counter() - started)
                for node in request.profiling_info:
                    key = (node.node_name, node.node_type, node.exec_type)
                    spent = node.real_time.total_seconds()
                    fastest[threads][key] = min(fastest[threads].get(key, spent), spent)
        first = counts[0]
        print(f"{preset}: 1 x 10 s, load {os.getloadavg()[0]:.1f}")
        for threads in counts:
            print(f"  {threads} thread(s): fastest call {1e3 * min(walls[threads]):.1f} ms wall")
        kinds: Dict[tuple, Dict[int, float]] = {}
        for threads in counts:
            for (_, kind, kernel), spent in fastest[threads].items():
                kinds.setdefault((kind, kernel), {}).setdefault(threads, 0.0)
                kinds[(kind, kernel)][threads] += spent
        top = sorted(kinds.items(), key=lambda item: -item[1].get(first, 0.0))[:15]
        for (kind, kernel), spent in top:
            times = "  ".join(f"{threads}t {1e3 * spent.get(threads, 0.0):6.2f} ms" for threads in counts)
            print(f"  {kind:24} {kernel:26} {times}")
        for low, high in ((0, 20e-6), (20e-6, 100e-6), (100e-6, 500e-6), (500e-6, float("inf"))):
            nodes = [key for key, spent in fastest[first].items() if 0 < spent and low <= spent < high]
            times = "  ".join(
                f"{threads}t {1e3 * sum(fastest[threads].get(key, 0.0) for key in nodes):6.2f} ms" for threads in counts
            )
            print(f"  nodes of {1e6 * low:4.0f}-{1e6 * high:<4.0f} us at {first}t: {len(nodes):4d}  {times}")
        rows.append({"preset": preset, "fastest_call_s": {t: min(w) for t, w in walls.items()}})
    return rows


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def accuracy(args) -> List[dict]:
    from redimnet.evaluation.metrics import eer, min_dcf
    from redimnet.evaluation.trials import parse_trials

    torch.set_num_threads(args.threads)
    if len(args.trials) != len(args.audio):
        raise SystemExit("give one --audio folder for every --trials list")
    rows = []
    cache = Path(args.cache or tempfile.mkdtemp(prefix="redimnet-int8-bench-"))
    for checkpoint in args.checkpoint:
        model = redimnet.load_checkpoint(checkpoint)
        embedders = {
            "float32": redimnet.Embedder(model, device="cpu"),
            "int8": redimnet.Embedder(model, device="cpu", precision="int8", cache_dir=cache),
        }
        for trials_path, audio in zip(args.trials, args.audio):
            trials = parse_trials(Path(trials_path).read_text().splitlines(), source=trials_path)
            utterances = sorted({u for pair in zip(trials.enroll, trials.test) for u in pair})
            paths = [Path(audio) / u for u in utterances]
            matrices = {name: embedder.embed_files(paths) for name, embedder in embedders.items()}
            index = {u: i for i, u in enumerate(utterances)}
            e, t = [index[u] for u in trials.enroll], [index[u] for u in trials.test]
            labels = np.asarray(trials.labels, dtype=bool)
            row = {"checkpoint": Path(checkpoint).name, "trials": Path(trials_path).name, "trials_count": len(labels)}
            cos = cosines(matrices["float32"], matrices["int8"])
            row.update(cosine_mean=float(cos.mean()), cosine_min=float(cos.min()), utterances=len(utterances))
            for name, matrix in matrices.items():
                scores = cosines(matrix[e], matrix[t])
                row[f"{name}_eer"] = float(eer(scores, labels))
                row[f"{name}_min_dcf"] = float(min_dcf(scores, labels, p_target=0.01))
            rows.append(row)
            print(
                f"{row['checkpoint']:28} {row['trials']:30} {len(utterances):4d} utts: cosine int8/float32 mean "
                f"{row['cosine_mean']:.4f} min {row['cosine_min']:.4f}; EER float32 {100 * row['float32_eer']:.2f} % "
                f"int8 {100 * row['int8_eer']:.2f} %; minDCF(0.01) float32 {row['float32_min_dcf']:.3f} "
                f"int8 {row['int8_min_dcf']:.3f}",
                flush=True,
            )
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fast = commands.add_parser("speed", help="int8 vs float32 at fixed shapes")
    fast.add_argument("--presets", default="b0,b2,b5,redimnet2-b2")
    fast.add_argument("--shapes", default="1x10,8x3", help="BATCHxSECONDS, comma-separated (default 1x10,8x3)")
    fast.add_argument("--repeats", type=int, default=3, help="calls per block, best kept (default 3)")
    fast.add_argument("--rounds", type=int, default=5, help="alternating blocks per variant (default 5)")
    fast.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    counters = commands.add_parser("profile", help="where the int8 time goes, per thread count")
    counters.add_argument("--presets", default="b0,redimnet2-b2")
    counters.add_argument("--calls", type=int, default=15, help="timed calls per thread count (default 15)")
    good = commands.add_parser("accuracy", help="cosine, EER and minDCF of int8 against float32")
    good.add_argument("--checkpoint", action="append", required=True, help="a trained model (repeatable)")
    good.add_argument("--trials", action="append", required=True, help="a trial list (repeatable)")
    good.add_argument("--audio", action="append", required=True, help="the audio folder of each trial list")
    counters.add_argument("--threads", default="1,2", help="thread counts, comma-separated (default 1,2)")
    for sub in (fast, good):
        sub.add_argument("--threads", type=int, default=2, help="model threads, both precisions (default 2)")
    for sub in (fast, good, counters):
        sub.add_argument("--cache", help="folder for the quantised models (default: a new temporary folder)")
        sub.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    keep_freed_memory()
    rows = {"speed": speed, "accuracy": accuracy, "profile": profile}[args.command](args)
    if args.json:
        machine = {"cpu_count": os.cpu_count(), "torch": torch.__version__, "threads": args.threads}
        args.json.write_text(json.dumps({"machine": machine, "command": args.command, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
