"""Inference (and training-step) throughput of ReDimNet: this package vs the original.

Run from the project root::

    python benchmarks/bench.py --original /tmp/redimnet-original --json benchmarks/results.json
    python benchmarks/bench.py --presets b0,b2,redimnet2-b0,redimnet2-b2 --original2 /tmp/redimnet2-original

For every preset and input shape it times, interleaved and best-of-N, in one
process and with the SAME weights:

* ``plain``      - :class:`redimnet.ReDimNet` as built (the training path);
* ``optimized``  - :func:`redimnet.fast.optimize.optimize_for_inference` (what inference uses);
* ``original``   - the original implementation's ``ReDimNetWrap`` (with ``--original PATH``;
  its torchaudio mel front end is replaced by an stft stand-in of equal cost); for
  ReDimNet2 presets (``redimnet2-b0`` ...) the official ``ReDimNet2Wrap`` (with
  ``--original2 PATH``; the release models' "tf" front end needs no stand-in);
* ``onnxruntime`` - the ONNX export run by onnxruntime (when onnx/onnxruntime are installed);

and reports throughput in seconds of audio per second of wall time, peak
memory of one forward pass (measured in a fresh subprocess, CPU: peak RSS
growth; CUDA: ``max_memory_allocated``), the optimised path's max relative
difference to the plain path, and a training-step throughput for b2.
Throughput is ``batch * seconds / best time``.

By default the process first applies :func:`redimnet.fast.optimize.keep_freed_memory`
(glibc keeps freed memory for reuse instead of page-faulting it back in), as
``redimnet.Embedder`` and the command line do.  It is process-wide, so every
variant, the original included, runs under the same setting; ``--malloc
default`` leaves glibc's defaults.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import redimnet  # noqa: E402
from redimnet.audio import TARGET_SAMPLE_RATE as SAMPLE_RATE  # noqa: E402
from redimnet.fast.optimize import keep_freed_memory, optimize_for_inference  # noqa: E402


def parse_shape(text: str):
    """``"8x3"`` -> (8, 3.0): batch x seconds."""
    try:
        batch, seconds = text.lower().split("x")
        return int(batch), float(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape {text!r} is not BATCHxSECONDS (e.g. 1x10)") from None


def sync(device: str):
    if device == "cuda":
        torch.cuda.synchronize()


def build_models(
    preset: str, original: Optional[Path], device: str, workdir: Path, onnx: bool, original2: Optional[Path] = None
) -> Dict[str, Callable]:
    """name -> callable(wave) for every variant, all with the same weights."""
    torch.manual_seed(0)
    plain = redimnet.build(preset).eval()
    checkpoint = workdir / f"{preset}.pt"
    redimnet.save_checkpoint(plain, checkpoint)
    models: Dict[str, Callable] = {}
    plain = plain.to(device)
    models["plain"] = plain
    models["optimized"] = optimize_for_inference(plain)
    if isinstance(plain, redimnet.ReDimNet2):
        from original_standin import build_original_redimnet2 as build_original

        original = original2
    else:
        from original_standin import build_original
    if original is not None:
        saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
        models["original"] = build_original(original, saved["model_config"], saved["state_dict"]).to(device)
    if onnx and device == "cpu":
        session = make_onnx_session(plain, workdir / f"{preset}.onnx", torch.get_num_threads())
        if session is not None:
            name = session.get_inputs()[0].name  # "waveform" ("input" in files of earlier versions)
            models["onnxruntime"] = lambda wave: torch.from_numpy(session.run(None, {name: wave.numpy()})[0])
    return models


def make_onnx_session(model, path: Path, threads: int):
    try:
        import onnxruntime as ort

        from redimnet.embedding.export import export_onnx
    except ImportError:
        return None
    export_onnx(model, path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # onnxruntime's worker threads otherwise keep spinning after each run and take the
    # cores from whatever runs next (measured: the PyTorch variants timed between
    # onnxruntime calls lost up to a third of their throughput).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_variant(fn: Callable, wave: torch.Tensor, dtype: Optional[torch.dtype], device: str):
    if dtype is None or device != "cuda":
        return fn(wave)
    with torch.autocast("cuda", dtype=dtype):
        return fn(wave)


CLOCK = time.perf_counter


def time_variants(
    models: Dict[str, Callable], wave: torch.Tensor, repeats: int, device: str, dtype: Optional[torch.dtype]
) -> Dict[str, float]:
    """Best time per variant (wall clock, or CPU time with ``--clock cpu``).

    The PyTorch variants are interleaved, in a rotating order, so that load changes
    hit them alike; onnxruntime (its own thread pool) is timed in a block of its own
    after them, so its threads never compete with PyTorch's.
    """
    best = {name: float("inf") for name in models}
    torch_names = [name for name in models if name != "onnxruntime"]
    with torch.inference_mode():
        for fn in models.values():  # warm-up
            run_variant(fn, wave, dtype, device)
        sync(device)
        schedule = [torch_names[i % len(torch_names) :] + torch_names[: i % len(torch_names)] for i in range(repeats)]
        if "onnxruntime" in models:
            schedule += [["onnxruntime"]] * repeats
        for names in schedule:
            for name in names:
                start = CLOCK()
                run_variant(models[name], wave, dtype, device)
                sync(device)
                best[name] = min(best[name], CLOCK() - start)
    return best


def max_rel_diff(models: Dict[str, Callable], wave: torch.Tensor) -> Dict[str, float]:
    """Max |variant - plain| / max |plain| in float32."""
    with torch.inference_mode():
        reference = models["plain"](wave).float().cpu()
        out = {}
        for name, fn in models.items():
            if name != "plain":
                y = fn(wave)
                y = (y[0] if isinstance(y, tuple) else y).float().cpu()
                out[name] = float((y - reference).abs().max() / reference.abs().max())
    return out


def train_step_throughput(
    preset: str, original: Optional[Path], batch: int, seconds: float, repeats: int, device: str, workdir: Path
) -> Dict[str, float]:
    """Audio-seconds per second of a full training step (forward, backward, AdamW) on the plain model."""
    torch.manual_seed(0)
    ours = redimnet.build(preset).to(device).train()
    variants = {"plain": ours}
    if original is not None:
        from original_standin import build_original

        checkpoint = workdir / f"{preset}-train.pt"
        redimnet.save_checkpoint(ours, checkpoint)
        saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
        variants["original"] = build_original(original, saved["model_config"], saved["state_dict"]).to(device).train()
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-4) for name, m in variants.items()}
    wave = torch.randn(batch, int(seconds * SAMPLE_RATE), device=device) * 0.1
    best = {name: float("inf") for name in variants}

    def step(name):
        optimizers[name].zero_grad(set_to_none=True)
        loss = variants[name](wave).pow(2).mean()
        loss.backward()
        optimizers[name].step()

    for name in variants:
        step(name)
    for _ in range(repeats):
        for name in variants:
            sync(device)
            start = CLOCK()
            step(name)
            sync(device)
            best[name] = min(best[name], CLOCK() - start)
    return {name: batch * seconds / t for name, t in best.items()}


# ----------------------------------------------------------------- memory probe
def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def memory_probe(args) -> None:
    """(subprocess) Peak memory in MiB of one forward pass of one variant, printed as JSON."""
    torch.set_num_threads(args.threads)
    batch, seconds = args.probe_shape
    dtype = {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}[args.dtype]
    with tempfile.TemporaryDirectory() as tmp:
        models = build_models(
            args.probe_preset,
            args.original,
            args.device,
            Path(tmp),
            onnx=args.probe_variant == "onnxruntime",
            original2=args.original2,
        )
        fn = models[args.probe_variant]
        models = None
        wave = torch.randn(batch, int(seconds * SAMPLE_RATE), device=args.device) * 0.1
        with torch.inference_mode():
            if args.device == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                run_variant(fn, wave, dtype, args.device)
                torch.cuda.synchronize()
                peak = torch.cuda.max_memory_allocated() - base
            else:
                base = _rss_kib("VmRSS")
                try:
                    with open("/proc/self/clear_refs", "w") as refs:
                        refs.write("5")  # reset the peak-RSS counter
                except OSError:
                    pass
                run_variant(fn, wave, dtype, args.device)
                peak = (_rss_kib("VmHWM") - base) * 1024
    print(json.dumps({"peak_mib": max(peak, 0) / 2**20}))


def measure_memory(args, preset: str, variant: str, shape, dtype_name: str) -> Optional[float]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--probe",
        preset,
        variant,
        f"{shape[0]}x{shape[1]:g}",
        "--device",
        args.device,
        "--threads",
        str(args.threads),
        "--dtype",
        dtype_name,
        "--malloc",
        args.malloc,
    ]
    if args.original:
        command += ["--original", str(args.original)]
    if args.original2:
        command += ["--original2", str(args.original2)]
    result = subprocess.run(command, capture_output=True, text=True)
    try:
        return json.loads(result.stdout.strip().splitlines()[-1])["peak_mib"]
    except (IndexError, ValueError, KeyError):
        print(f"memory probe failed for {preset}/{variant}: {result.stderr.strip()[-300:]}", file=sys.stderr)
        return None


# ---------------------------------------------------------------------- main
def machine_description(device: str) -> dict:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "device": device,
    }
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return info


def _ratio(row: dict, key: str) -> str:
    if not row.get(key):
        return "-"
    low, high = row.get(f"{key}_range") or (row[key], row[key])
    text = f"{row[key]:.2f}x"
    return text if high - low < 0.005 else f"{text} ({low:.2f}-{high:.2f})"


def print_table(rows: List[dict]) -> None:
    header = (
        f"{'preset':14} {'shape':7} {'dtype':8} {'variant':12} {'audio-s/s':>10} {'vs original':>19} "
        f"{'vs plain':>19} {'peak MiB':>9} {'max rel diff':>12}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        memory = f"{r['peak_mib']:.0f}" if r.get("peak_mib") is not None else "-"
        diff = f"{r['max_rel_diff']:.1e}" if r.get("max_rel_diff") is not None else "-"
        print(
            f"{r['preset']:14} {r['shape']:7} {r['dtype']:8} {r['variant']:12} {r['audio_s_per_s']:10.1f} "
            f"{_ratio(r, 'vs_original'):>19} {_ratio(r, 'vs_plain'):>19} {memory:>9} {diff:>12}"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="b0,b2,b5", help="comma-separated presets (default b0,b2,b5)")
    parser.add_argument(
        "--shapes",
        default="1x10,8x3",
        type=lambda s: [parse_shape(x) for x in s.split(",")],
        help="comma-separated BATCHxSECONDS (default 1x10,8x3)",
    )
    parser.add_argument("--original", type=Path, metavar="PATH", help="checkout of the original ReDimNet to time too")
    parser.add_argument(
        "--original2",
        type=Path,
        metavar="PATH",
        help="checkout of the official ReDimNet2 (PalabraAI/redimnet2) to time its presets against",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per variant, best one kept (default 5)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat the whole interleaved timing R times and report medians, with the range "
        "of the per-round ratios (default 1)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall: wall-clock time (default); cpu: CPU time of the calling thread, which "
        "ignores time stolen by other processes on a shared machine (needs --threads 1 "
        "and --device cpu)",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--no-onnx", action="store_true", help="skip onnxruntime")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--no-train", action="store_true", help="skip the b2 training-step timing")
    parser.add_argument("--train-preset", default="b2")
    parser.add_argument(
        "--malloc",
        choices=["keep", "default"],
        default="keep",
        help="keep: apply redimnet.fast.optimize.keep_freed_memory() for all variants, as the "
        "Embedder and CLI do (default); default: glibc's own settings",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON here")
    parser.add_argument("--probe", nargs=3, metavar=("PRESET", "VARIANT", "SHAPE"), help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.rounds < 1:
        parser.error("--repeats and --rounds must be at least 1")
    if args.original is not None and not (args.original / "redimnet" / "model.py").is_file():
        parser.error(
            f"--original {args.original}: not a checkout of the original ReDimNet (no redimnet/model.py); "
            "make one with: git -C /work/.mirror/IDRnD+ReDimNet/repo archive HEAD | tar -x -C DIR"
        )
    if args.clock == "cpu":
        if args.threads != 1 or args.device != "cpu":
            parser.error("--clock cpu measures one thread's CPU time: use it with --threads 1 --device cpu")
        global CLOCK
        CLOCK = time.thread_time
    args.malloc_kept = args.malloc == "keep" and keep_freed_memory()
    if args.probe:
        args.probe_preset, args.probe_variant = args.probe[0], args.probe[1]
        args.probe_shape = parse_shape(args.probe[2])
        memory_probe(args)
        return 0

    torch.set_num_threads(args.threads)
    dtypes = ["float32"] if args.device == "cpu" else ["float32", "float16", "bfloat16"]
    rows: List[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets.split(","):
            models = build_models(
                preset, args.original, args.device, Path(tmp), onnx=not args.no_onnx, original2=args.original2
            )
            for batch, seconds in args.shapes:
                wave = torch.randn(batch, int(seconds * SAMPLE_RATE), device=args.device) * 0.1
                diffs = max_rel_diff(models, wave)
                for dtype_name in dtypes:
                    dtype = getattr(torch, dtype_name)
                    variants = (
                        models if args.device == "cpu" else {k: v for k, v in models.items() if k != "onnxruntime"}
                    )
                    rounds = [
                        time_variants(
                            variants, wave, args.repeats, args.device, None if dtype_name == "float32" else dtype
                        )
                        for _ in range(args.rounds)
                    ]
                    audio = batch * seconds
                    for name in rounds[0]:
                        times = [r[name] for r in rounds]
                        t = statistics.median(times)
                        row = {
                            "preset": preset,
                            "shape": f"{batch}x{seconds:g}",
                            "dtype": dtype_name,
                            "variant": name,
                            "audio_s_per_s": audio / t,
                            "best_time_s": t,
                            "round_best_times_s": times,
                            "max_rel_diff": diffs.get(name),
                        }
                        for other in ("original", "plain"):
                            if other in rounds[0]:
                                ratios = [r[other] / r[name] for r in rounds]
                                row[f"vs_{other}"] = statistics.median(ratios)
                                row[f"vs_{other}_range"] = [min(ratios), max(ratios)]
                        if not args.no_memory:
                            row["peak_mib"] = measure_memory(args, preset, name, (batch, seconds), dtype_name)
                        rows.append(row)
                        print(
                            f"  {preset} {batch}x{seconds:g} {dtype_name} {name}: {audio / t:.1f} audio-s/s",
                            file=sys.stderr,
                            flush=True,
                        )
        training = None
        if not args.no_train:
            training = train_step_throughput(
                args.train_preset, args.original, 8, 3.0, max(2, args.repeats // 2), args.device, Path(tmp)
            )
    print()
    rounds = f", median of {args.rounds} rounds" if args.rounds > 1 else ""
    print(
        f"ReDimNet inference throughput, {args.device}, {args.threads} thread(s), best of {args.repeats}{rounds}, "
        f"{args.clock} clock, malloc {'keeps freed memory' if args.malloc_kept else 'defaults'}"
    )
    print_table(rows)
    if training:
        line = ", ".join(f"{k} {v:.1f}" for k, v in training.items())
        print(f"\ntraining step ({args.train_preset}, batch 8 x 3 s, AdamW), audio-s/s: {line}")
    result = {
        "machine": machine_description(args.device),
        "repeats": args.repeats,
        "rounds": args.rounds,
        "clock": args.clock,
        "malloc_keeps_freed_memory": args.malloc_kept,
        "inference": rows,
        "training": {"preset": args.train_preset, "shape": "8x3", "audio_s_per_s": training},
    }
    text = json.dumps(result, indent=2)
    print("\n" + text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
