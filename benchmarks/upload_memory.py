"""Server memory against what an upload's header claims: decompression bombs and large uploads, on 127.0.0.1 only.

    python benchmarks/upload_memory.py [--model b0] [--cases all] [--concurrent 8] [--json OUT] [--code DIR]
        [--endpoint embed|verify|identify|enroll|diarize] [--serve-option=--max-concurrent=8 ...]

For every case a fresh ``redimnet serve`` (random-weight ``--model``, one model thread, a new database in a
temporary folder) is started and warmed up with two ordinary requests; then the case's uploads are sent to
``POST /v1/embed`` (or ``--endpoint``; ``--concurrent`` at once for the ``x8`` cases) while a thread samples
the server's resident memory (``VmRSS`` of ``/proc/PID/status``) every 5 ms.  Reported per case: the
resident memory once the server answers (``rss_started_mb``) and before the case, the highest sample, the
rise, the kernel's own peak (``VmHWM``, reset before the case through ``/proc/PID/clear_refs``), the
server's CPU seconds for the case, the statuses and the first error message.

Cases (the files are written to a scratch folder first):

* ``bomb655k``: FLAC, 8 channels, 655,350 Hz, 60 s of a square wave whose half-period spans whole FLAC
  blocks (so each block is a constant: a few bytes per block) -- 3.1e8 decoded samples;
* ``bomb192k``: the same at 192 kHz, 8 channels, 100 s -- 1.5e8 decoded samples;
* ``wav48k``: an ordinary upload near the limits: 16-bit stereo WAV at 48 kHz, 100 s (19.2 MB);
* ``flac16k``: 120 s of 16 kHz mono speech-like noise as FLAC (the longest recording accepted);
* each again as ``...x8``: ``--concurrent`` copies sent at once.

The goal checked: the rise stays within ``--budget-mb`` (default 150) for every case.  The rise of a long
ordinary upload is mostly the model's working memory for one window (the service's windows are 20 s: b0 about
90 MB; ``--max-seconds 60``: about 230 MB); ``--warmup-seconds 60`` runs a long clip before the case and
``--max-seconds`` sets the server's windows, to tell the two apart.  ``--serve-option`` passes options on to
``redimnet serve`` (e.g. ``--serve-option=--max-concurrent=8`` admits 8 uploads at once: by default a
2-core machine admits 4 and the others wait up to 10 s, then get 503).  ``--code DIR`` runs
the server from another checkout (e.g. an older commit, to compare); the default is this one.  Compare
figures of one run only: on a shared machine the load changes; the load average is recorded.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import List

import numpy as np
from service_load import free_port, wait_until_ready  # noqa: E402  (the sibling benchmark's helpers)

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "upload-memory-token-0123456789abcdef"


# --- the files ------------------------------------------------------------------------------------------------
def square_wave_flac(path: Path, rate: int, channels: int, seconds: int) -> None:
    """A FLAC of a square wave with a half-period of 65,536 frames: constant FLAC blocks, tiny file."""
    import soundfile

    if path.exists():
        return
    block = 1 << 16
    frames, done, sign = rate * seconds, 0, 0.5
    temp = path.with_suffix(".partial.flac")
    with soundfile.SoundFile(str(temp), "w", rate, channels, subtype="PCM_16", format="FLAC") as handle:
        while done < frames:
            count = min(block, frames - done)
            handle.write(np.full((count, channels), sign, dtype=np.float32))
            done, sign = done + count, -sign
    temp.rename(path)


def noise_file(path: Path, rate: int, channels: int, seconds: int, fmt: str) -> None:
    """Noise at about -20 dBFS (the same 10 s block repeated), 16-bit."""
    import soundfile

    if path.exists():
        return
    rng = np.random.default_rng(0)
    block = (rng.standard_normal((rate * 10, channels)) * 0.1).clip(-1, 1).astype(np.float32)
    temp = path.with_suffix(".partial" + path.suffix)
    with soundfile.SoundFile(str(temp), "w", rate, channels, subtype="PCM_16", format=fmt) as handle:
        for _ in range(seconds // 10):
            handle.write(block)
    temp.rename(path)


def make_files(folder: Path) -> dict:
    files = {
        "bomb655k": folder / "bomb-655350hz-8ch-60s.flac",
        "bomb192k": folder / "bomb-192000hz-8ch-100s.flac",
        "wav48k": folder / "noise-48000hz-2ch-100s.wav",
        "flac16k": folder / "noise-16000hz-1ch-120s.flac",
    }
    square_wave_flac(files["bomb655k"], 655350, 8, 60)
    square_wave_flac(files["bomb192k"], 192000, 8, 100)
    noise_file(files["wav48k"], 48000, 2, 100, "WAV")
    noise_file(files["flac16k"], 16000, 1, 120, "FLAC")
    return files


# --- the server -------------------------------------------------------------------------------------------------
def start_server(code: Path, model: str, db: Path, options: List[str]):
    port = free_port()
    env = dict(
        os.environ,
        REDIMNET_SERVICE_TOKEN=TOKEN,
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(code), os.environ.get("PYTHONPATH", "")]),
    )
    command = [sys.executable, "-m", "redimnet", "serve", "--model", model, "--random-init", "--threads", "1"]
    command += ["--db", str(db), "--port", str(port), *options]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=str(code))
    url = f"http://127.0.0.1:{port}"
    wait_until_ready(process, url, 180)
    return process, url


def status_field(pid: int, key: str) -> int:
    """A ``kB`` field of ``/proc/PID/status`` in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Sampler(threading.Thread):
    """The highest ``VmRSS`` of a process, sampled every 5 ms until stopped."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, status_field(self.pid, "VmRSS"))
            time.sleep(0.005)

    def stop(self) -> int:
        self.done.set()
        self.join()
        return max(self.peak, status_field(self.pid, "VmRSS"))


def speech_clip(seconds: float) -> bytes:
    import soundfile

    sys.path.insert(0, str(ROOT))
    from redimnet.testing.synth import synthesize, voice_for

    buffer = io.BytesIO()
    wave = synthesize(voice_for(0, 1), seconds, np.random.default_rng(0))
    soundfile.write(buffer, wave, 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def request_of(endpoint: str, name: str, data: bytes, index: int) -> dict:
    """The ``httpx`` arguments of one upload of ``data`` to ``endpoint``."""
    upload = (f"{name}.bin", data, "application/octet-stream")
    if endpoint == "verify":
        return {"files": [("audio", upload), ("audio2", upload)]}
    if endpoint == "enroll":
        return {
            "files": [("audio", upload)],
            "data": {"speaker": f"speaker {index}"},
            "headers": {"Authorization": f"Bearer {TOKEN}"},
        }
    return {"files": [("audio", upload)]}


def run_case(args, name: str, data: bytes, copies: int, warmup: bytes) -> dict:
    import httpx

    folder = Path(tempfile.mkdtemp(prefix="redimnet-upload-memory-"))
    options = list(args.serve_option)
    if args.max_seconds:  # windows overlapping by a sixth, as the default 60 s / 10 s
        options += ["--max-seconds", str(args.max_seconds), "--overlap-seconds", str(args.max_seconds / 6)]
    process, url = start_server(Path(args.code), args.model, folder / "speakers.db", options)
    try:
        started_rss = status_field(process.pid, "VmRSS")
        with httpx.Client(base_url=url, timeout=600) as client:
            for _ in range(2):  # the first requests allocate the model's buffers
                client.post("/v1/embed", files=[("audio", ("warmup.wav", warmup, "audio/wav"))]).raise_for_status()
            if args.endpoint in ("identify", "verify"):  # someone to identify or verify against
                enrol = request_of("enroll", "warmup", warmup, 0)
                client.post("/v1/enroll", **enrol).raise_for_status()
        time.sleep(0.5)
        before = status_field(process.pid, "VmRSS")
        Path(f"/proc/{process.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
        cpu_before = cpu_seconds(process.pid)
        sampler = Sampler(process.pid)
        sampler.start()

        def send(index):
            with httpx.Client(base_url=url, timeout=600) as client:
                started = time.perf_counter()
                request = request_of(args.endpoint, name, data, index)
                if args.endpoint == "verify" and index % 2:  # half of them against the enrolled speaker
                    request = {"files": request["files"][:1], "data": {"speaker": "speaker 0"}}
                response = client.post(f"/v1/{args.endpoint}", **request)
                return response.status_code, response.text[:300], time.perf_counter() - started

        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(copies) as pool:
            answers = list(pool.map(send, range(copies)))
        wall = time.perf_counter() - started
        peak = sampler.stop()
        hwm = status_field(process.pid, "VmHWM")
        cpu = cpu_seconds(process.pid) - cpu_before
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    statuses: dict = {}
    for status, _, _ in answers:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    errors = [text for status, text, _ in answers if status != 200]
    return {
        "case": name if copies == 1 else f"{name}x{copies}",
        "endpoint": args.endpoint,
        "upload_mb": round(len(data) / 1e6, 3),
        "copies": copies,
        "rss_started_mb": round(started_rss / 2**20, 1),
        "rss_before_mb": round(before / 2**20, 1),
        "rss_peak_mb": round(peak / 2**20, 1),
        "rise_mb": round((peak - before) / 2**20, 1),
        "hwm_rise_mb": round((hwm - before) / 2**20, 1),
        "server_cpu_s": round(cpu, 2),
        "wall_s": round(wall, 2),
        "statuses": statuses,
        "first_error": errors[0] if errors else None,
        "load_average": list(os.getloadavg()),
    }


DECODE_CHILD = r"""
import json, sys, threading, time
from pathlib import Path
from redimnet.audio import AudioError, decode_audio_bytes

path, copies, max_seconds, max_decoded = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
uploads = [bytearray(Path(path).read_bytes()) for _ in range(copies)]  # held as the service holds bodies
def status(key):
    line = [l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(key + ":")][0]
    return int(line.split()[1]) * 1024
before = status("VmRSS")
Path("/proc/self/clear_refs").write_text("5")
outcomes = [None] * copies
def decode(i):
    try:
        wave = decode_audio_bytes(uploads[i], "upload", max_seconds=max_seconds, max_decoded_samples=max_decoded)
        outcomes[i] = f"decoded {wave.size} samples"
    except AudioError as error:
        outcomes[i] = f"refused: {error}"
threads = [threading.Thread(target=decode, args=(i,)) for i in range(copies)]
started = time.process_time()
for thread in threads: thread.start()
for thread in threads: thread.join()
print(json.dumps({"rise": status("VmHWM") - before, "cpu": time.process_time() - started, "outcomes": outcomes}))
"""


def decode_case(args, name: str, path: Path, copies: int) -> dict:
    """Decoding alone, as the service does it (its default limits), in a fresh process: the VmHWM rise."""
    env = dict(
        os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([args.code, os.environ.get("PYTHONPATH", "")])
    )
    command = [sys.executable, "-c", DECODE_CHILD, str(path), str(copies), "120", str(120 * 96_000)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"the decoding process failed: {done.stderr[-2000:]}")
    report = json.loads(done.stdout.splitlines()[-1])
    return {
        "case": name if copies == 1 else f"{name}x{copies}",
        "stage": "decode",
        "copies": copies,
        "rise_mb": round(report["rise"] / 2**20, 1),
        "cpu_s": round(report["cpu"], 2),
        "outcome": report["outcomes"][0][:200],
        "load_average": list(os.getloadavg()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="b0", help="preset with random weights (default b0)")
    parser.add_argument("--cases", default="bomb655k,bomb192k,wav48k,flac16k", help="comma-separated case names")
    parser.add_argument("--concurrent", type=int, default=8, help="copies sent at once in the xN cases (default 8)")
    parser.add_argument("--single-only", action="store_true", help="skip the concurrent cases")
    parser.add_argument("--budget-mb", type=float, default=150.0, help="the allowed rise (default 150)")
    parser.add_argument("--scratch", default=None, help="folder for the generated files (default: a temporary one)")
    parser.add_argument("--code", default=str(ROOT), help="checkout whose redimnet the server runs (default: this)")
    parser.add_argument(
        "--warmup-seconds",
        type=float,
        default=2.0,
        help="length of the two warm-up clips (default 2; 60 fills the model's working memory for its "
        "longest window first, so the rise is what the upload adds beyond that)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="the server's window length (serve --max-seconds, overlapping by a sixth; default the server's own, "
        "60 s): the model's working memory follows it",
    )
    parser.add_argument(
        "--decode-stage",
        action="store_true",
        help="also measure decoding alone (the service's limits, in a fresh process, the uploads already in memory)",
    )
    parser.add_argument("--no-server", action="store_true", help="skip the server cases (with --decode-stage)")
    parser.add_argument(
        "--endpoint",
        default="embed",
        choices=["embed", "verify", "identify", "enroll", "diarize"],
        help="where the uploads go (default embed; verify sends the file twice, or against an enrolled speaker)",
    )
    parser.add_argument(
        "--serve-option",
        action="append",
        default=[],
        metavar="OPTION",
        help="an option for 'redimnet serve' (repeatable; write it with '=': --serve-option=--max-concurrent=8)",
    )
    parser.add_argument("--json", metavar="OUT", help="write the figures as JSON")
    args = parser.parse_args()
    scratch = Path(args.scratch) if args.scratch else Path(tempfile.mkdtemp(prefix="redimnet-upload-files-"))
    scratch.mkdir(parents=True, exist_ok=True)
    files = make_files(scratch)
    names = [n.strip() for n in args.cases.split(",") if n.strip()]
    unknown = sorted(set(names) - set(files))
    if unknown:
        parser.error(f"unknown case(s) {unknown}; known: {sorted(files)}")
    warmup = speech_clip(args.warmup_seconds)
    results = []
    for name in [] if args.no_server else names:
        data = files[name].read_bytes()
        for copies in (1,) if args.single_only else (1, args.concurrent):
            row = run_case(args, name, data, copies, warmup)
            results.append(row)
            print(
                f"{row['case']:<12} {row['upload_mb']:6.2f} MB  RSS {row['rss_started_mb']:7.1f} / "
                f"{row['rss_before_mb']:7.1f} -> "
                f"{row['rss_peak_mb']:7.1f} MB (rise {row['rise_mb']:7.1f}, VmHWM rise {row['hwm_rise_mb']:7.1f})  "
                f"CPU {row['server_cpu_s']:6.2f} s  {row['statuses']}  load {row['load_average'][0]:.2f}",
                flush=True,
            )
            if row["first_error"]:
                print(f"             {row['first_error'][:200]}", flush=True)
    if args.decode_stage:
        for name in names:
            for copies in (1,) if args.single_only else (1, args.concurrent):
                row = decode_case(args, name, files[name], copies)
                results.append(row)
                print(
                    f"decode {row['case']:<12} rise {row['rise_mb']:7.1f} MB  CPU {row['cpu_s']:6.2f} s  "
                    f"{row['outcome'][:110]}  load {row['load_average'][0]:.2f}",
                    flush=True,
                )
    over = [r["case"] for r in results if max(r["rise_mb"], r.get("hwm_rise_mb", 0)) > args.budget_mb]
    print(f"rise above {args.budget_mb:g} MB: {', '.join(over) if over else 'none'}")
    if args.json:
        machine = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
        summary = {
            "machine": machine,
            "model": args.model,
            "warmup_seconds": args.warmup_seconds,
            "max_seconds": args.max_seconds,
            "endpoint": args.endpoint,
            "serve_options": args.serve_option,
            "cases": results,
        }
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
