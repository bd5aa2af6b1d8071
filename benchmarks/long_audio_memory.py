"""Peak memory of ``redimnet embed`` against the length of the recording.

For every duration and sample rate asked for, a mono 16-bit WAV of noise is
written (block by block) to a scratch folder, then ``redimnet embed FILE -o
OUT.npz`` runs in a fresh Python process, which reports its own peak RSS
(``ru_maxrss``) and that of its decoding worker processes.  The model is a
random-weight checkpoint (default: a tiny configuration, so that ten hours
of audio take minutes on a small CPU; ``--model b0`` etc. for a preset).

The claim checked: the peak does not grow with the recording's length.
The reference is the one-window case (``--max-seconds`` long, default 60 s
plus 1 s so it is cut into two windows): once a recording is longer than a
window, only the decoding block, one window and one model batch are held.

    python benchmarks/long_audio_memory.py                       # 2 s, 61 s, 1 h, 10 h at 8 and 16 kHz
    python benchmarks/long_audio_memory.py --durations 2,3600 --rates 8000 --model b0
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "F": 24,
    "C": 4,
    "block_2d_type": "convnext_like",
    "group_divisor": 4,
    "block_1d_type": "conv",
    "embed_dim": 16,
    "hop_length": 160,
    "stages_setup": [[1, 1, 1, [[3, 3]], 4], [2, 1, 1, [[3, 3]], 4]],
}

CHILD = r"""
import json, resource, sys, time
from redimnet import cli
started = time.monotonic()
status = cli.main(sys.argv[1:])
print(json.dumps({"status": status, "seconds": time.monotonic() - started,
                  "main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "workers_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def write_wav(path: Path, seconds: float, rate: int) -> None:
    """Noise at about -20 dBFS, written one block at a time (the generator needs little memory)."""
    import soundfile as sf

    if path.exists():
        return
    rng = np.random.default_rng(0)
    block = (rng.standard_normal(rate * 10) * 3000).clip(-32768, 32767).astype(np.int16)
    total = int(round(seconds * rate))
    temp = path.with_suffix(".partial.wav")
    with sf.SoundFile(str(temp), "w", samplerate=rate, channels=1, subtype="PCM_16") as handle:
        written = 0
        while written < total:
            count = min(len(block), total - written)
            handle.write(np.roll(block, written % 997)[:count])
            written += count
    temp.rename(path)


def make_checkpoint(model: str, folder: Path) -> Path:
    import torch

    import redimnet

    path = folder / f"{model}.pt"
    if not path.exists():
        torch.manual_seed(0)
        network = redimnet.build("b0", **TINY) if model == "tiny" else redimnet.build(model)
        redimnet.save_checkpoint(network.eval(), path)
    return path


def measure(wav: Path, checkpoint: Path, workers: int, threads: int, folder: Path) -> dict:
    out = folder / f"{wav.stem}.w{workers}.npz"
    for stale in (out, out.with_suffix("").with_name(out.stem + ".failed.tsv")):
        if stale.exists():
            stale.unlink()
    argv = [
        "embed",
        str(wav),
        "-o",
        str(out),
        "--checkpoint",
        str(checkpoint),
        "--decode-workers",
        str(workers),
        "--threads",
        str(threads),
        "--no-progress",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "OMP_NUM_THREADS": str(threads),
    }
    done = subprocess.run([sys.executable, "-c", CHILD, *argv], capture_output=True, text=True, env=env)
    if done.returncode != 0 or not done.stdout.strip():
        raise SystemExit(f"embed failed on {wav}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--durations", default="2,61,3600,36000", help="seconds, comma-separated")
    parser.add_argument("--rates", default="8000,16000", help="sample rates, comma-separated")
    parser.add_argument("--model", default="tiny", help="tiny (default) or a preset name (b0 ... b6)")
    parser.add_argument("--workers", default="0,1", help="embed --decode-workers values to run, comma-separated")
    parser.add_argument("--threads", type=int, default=1, help="model threads (default 1)")
    parser.add_argument(
        "--scratch",
        default=os.path.join(tempfile.gettempdir(), "redimnet-memory-bench"),
        help="where the WAV files are written (kept for reruns)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    folder = Path(args.scratch)
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = make_checkpoint(args.model, folder)
    rows = []
    print(f"model {args.model}, threads {args.threads}; peak RSS in MB (main process / largest decoding worker)")
    print(f"{'duration':>10} {'rate':>6} {'workers':>7} {'main MB':>9} {'worker MB':>9} {'seconds':>8}")
    for rate in [int(r) for r in args.rates.split(",")]:
        for seconds in [float(d) for d in args.durations.split(",")]:
            wav = folder / f"noise_{int(seconds)}s_{rate}.wav"
            write_wav(wav, seconds, rate)
            for workers in [int(w) for w in args.workers.split(",")]:
                started = time.monotonic()
                result = measure(wav, checkpoint, workers, args.threads, folder)
                row = {
                    "seconds_of_audio": seconds,
                    "rate": rate,
                    "workers": workers,
                    **result,
                    "wall": time.monotonic() - started,
                }
                rows.append(row)
                print(
                    f"{seconds:>9g}s {rate:>6} {workers:>7} {result['main_mb']:>9.0f} "
                    f"{result['workers_mb'] if workers else 0:>9.0f} {result['seconds']:>8.1f}",
                    flush=True,
                )
    for rate in sorted({r["rate"] for r in rows}):
        for workers in sorted({r["workers"] for r in rows}):
            same = sorted(
                (r for r in rows if r["rate"] == rate and r["workers"] == workers), key=lambda r: r["seconds_of_audio"]
            )
            if len(same) > 1:
                first, last = same[0], same[-1]
                print(
                    f"{rate} Hz, workers {workers}: peak at {last['seconds_of_audio']:g} s / at "
                    f"{first['seconds_of_audio']:g} s = {last['main_mb'] / first['main_mb']:.2f}x (main process)"
                )
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "threads": args.threads, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
