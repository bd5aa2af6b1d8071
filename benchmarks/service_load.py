"""Load test of ``redimnet serve``: concurrent clients mixing verify / identify / enroll, on 127.0.0.1 only.

    python benchmarks/service_load.py [--clients 16] [--seconds 20] [--model b0 | --checkpoint PATH]
                                      [--batch-size 16] [--batch-wait-ms 5] [--compare-unbatched] [--json OUT]
    python benchmarks/service_load.py --scenario identify --enrolled 1000000 --servers 2 --workdir DIR
                                      [--db postgresql://... [--reuse-store --index-dir DIR]]
                                      [--clients 8] [--seconds 60]

The ``identify`` scenario: identification against a large store shared by several server processes on
one PostgreSQL database (a throwaway server from the distribution's binaries unless ``--db``): a few
speakers with real recordings are enrolled through the service, the store is filled up to
``--enrolled`` speakers with random embeddings by ``redimnet speakers import`` (which also builds the
speaker index; the servers load it from ``--workdir``), then ``--servers`` processes serve it and the
clients send identify requests to them in turn.  Reports requests/s, latency percentiles, status counts
(any 5xx or connection error is a failure), whether every real speaker's own recording identified
them first, and that an enrolment made through one server is identified by the other.

1. The model's own throughput, in this process, on the same clips: embeddings per second with batches of
   ``--batch-size`` and one clip at a time (the ceiling the service's batching aims at).
2. A server in a child process (random-weight ``--model`` preset unless ``--checkpoint``; a fresh database in
   a temporary folder with ``--speakers`` enrolled first), then ``--clients`` threads, each with its own
   keep-alive connection, sending requests back to back for ``--seconds``: 45 % verify (two uploads),
   45 % identify, 10 % enroll (a new speaker each).  Reports requests/s, embeddings/s, latency percentiles
   per kind, status counts (any 5xx is a failure) and the database's integrity afterwards (SQLite check,
   every acknowledged enrolment present).  ``--compare-unbatched`` repeats step 2 with ``--batch-size 1``.

Everything stops by itself; the server is terminated at the end.  Compare figures of one run only: on a
shared machine the load changes from run to run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOKEN = "load-test-token-0123456789abcdef"


def clips(count: int, seconds: float):
    """``count`` synthetic utterances (16 kHz WAV bytes), four per speaker."""
    import soundfile

    from redimnet.testing.synth import synthesize, voice_for

    out = []
    for index in range(count):
        wave = synthesize(voice_for(0, index // 4), seconds, np.random.default_rng(index))
        buffer = io.BytesIO()
        soundfile.write(buffer, wave, 16000, format="WAV", subtype="PCM_16")
        out.append((index // 4, buffer.getvalue(), wave))
    return out


def model_throughput(model_args, waves, batch_size: int, threads: int, seconds: float = 10.0) -> dict:
    """Embeddings per second of the model itself: batches of ``batch_size`` and one at a time."""
    import torch

    from redimnet.embedding.embedder import Embedder
    from redimnet.hub.pretrained import build
    from redimnet.models.checkpoint import load_checkpoint

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = load_checkpoint(model_args.checkpoint) if model_args.checkpoint else build(model_args.model).eval()
    embedder = Embedder(model, device="cpu", batch_size=batch_size)
    result = {}
    for label, size in (("batched", batch_size), ("one_at_a_time", 1)):
        embedder.pipeline.batch_size = size
        embedder.embed_prepared(waves[:size])  # warm up
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 2 or done < 3 * size:
            group = [waves[(done + i) % len(waves)] for i in range(size)]
            embedder.embed_prepared(group)
            done += size
        result[label] = done / (time.perf_counter() - start)
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(args, db, batch_size: int, env_extra=None):
    port = free_port()
    model = ["--checkpoint", args.checkpoint] if args.checkpoint else ["--model", args.model, "--random-init"]
    env = dict(
        os.environ,
        REDIMNET_SERVICE_TOKEN=TOKEN,
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        **(env_extra or {}),
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "redimnet",
            "serve",
            *model,
            "--db",
            str(db),
            "--port",
            str(port),
            "--threads",
            str(args.threads),
            "--batch-size",
            str(batch_size),
            "--batch-wait-ms",
            str(args.batch_wait_ms),
            "--workers",
            str(args.workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_ready(process, url, args.ready_timeout)
    return process, url


def wait_until_ready(process, url: str, seconds: float) -> None:
    """Poll ``url``'s ``/v1/ready`` until it answers 200; kill the server and exit if it does not in time."""
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited: {process.stderr.read().decode()}")
        try:
            if httpx.get(f"{url}/v1/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit(f"the server did not become ready in {seconds:g} s")


def run_clients(count: int, loop) -> float:
    """Run ``loop(number)`` in ``count`` threads at once; returns the seconds until the last one ended."""
    started = time.perf_counter()
    workers = [threading.Thread(target=loop, args=(n,)) for n in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started


def count_statuses(statuses) -> dict:
    """``{status: how many}`` (statuses as text: an HTTP code or a connection error)."""
    counts: dict = {}
    for status in statuses:
        counts[str(status)] = counts.get(str(status), 0) + 1
    return counts


def run_load(args, data, batch_size: int) -> dict:
    import httpx

    from redimnet.speakers.sqlite import SpeakerDatabase

    folder = Path(tempfile.mkdtemp(prefix="redimnet-load-"))
    db = folder / "speakers.db"
    process, url = start_server(args, db, batch_size)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            for speaker in range(args.speakers):
                files = [("audio", (f"{i}.wav", b, "audio/wav")) for s, b, _ in data if s == speaker for i in [0]][:2]
                client.post(
                    "/v1/enroll", headers=auth, data={"speaker": f"enrolled-{speaker}"}, files=files
                ).raise_for_status()
        records, enrolled, lock = [], [], threading.Lock()
        stop_at = time.monotonic() + args.seconds

        def client_loop(number: int):
            rng = random.Random(number)
            with httpx.Client(base_url=url, timeout=120) as client:
                count = 0
                while time.monotonic() < stop_at:
                    draw = rng.random()
                    a, b = rng.sample(data, 2)
                    if draw < 0.45:
                        kind, embeddings = "verify", 2
                        files = [("audio", ("a.wav", a[1])), ("audio2", ("b.wav", b[1]))]
                        request = dict(url="/v1/verify", files=files)
                    elif draw < 0.90:
                        kind, embeddings = "identify", 1
                        request = dict(url="/v1/identify", files=[("audio", ("a.wav", a[1]))])
                    else:
                        kind, embeddings = "enroll", 1
                        name = f"client{number}-{count}"
                        request = dict(
                            url="/v1/enroll", headers=auth, data={"speaker": name}, files=[("audio", ("a.wav", a[1]))]
                        )
                    start = time.perf_counter()
                    try:
                        status = client.post(**request).status_code
                    except httpx.HTTPError as error:
                        status = f"connection error: {type(error).__name__}"
                    elapsed = time.perf_counter() - start
                    with lock:
                        records.append((kind, status, elapsed, embeddings))
                        if kind == "enroll" and status == 200:
                            enrolled.append(name)
                    count += 1

        wall = run_clients(args.clients, client_loop)
        with httpx.Client(base_url=url, timeout=30) as client:
            batching = client.get("/v1/info").json()["batching"]
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    with SpeakerDatabase(db) as database:
        integrity = database.check()
        names = {s.name for s in database.speakers()}
    missing = [name for name in enrolled if name not in names]
    statuses = count_statuses(r[1] for r in records)
    ok = [r for r in records if r[1] == 200]
    latency = {}
    for kind in ("verify", "identify", "enroll", "all"):
        times = np.array([r[2] for r in ok if kind in ("all", r[0])]) * 1000
        if times.size:
            latency[kind] = {
                "count": int(times.size),
                "p50_ms": float(np.percentile(times, 50)),
                "p95_ms": float(np.percentile(times, 95)),
                "p99_ms": float(np.percentile(times, 99)),
            }
    server_errors = sum(n for status, n in statuses.items() if not status.isdigit() or int(status) >= 500)
    return {
        "batch_size": batch_size,
        "clients": args.clients,
        "seconds": wall,
        "requests": len(records),
        "requests_per_s": len(ok) / wall,
        "embeddings_per_s": sum(r[3] for r in ok) / wall,
        "statuses": statuses,
        "server_errors": server_errors,
        "latency": latency,
        "batching": batching,
        "database_ok": bool(integrity) and not missing,
        "acknowledged_enrolments": len(enrolled),
        "missing_enrolments": len(missing),
    }


def report(result: dict) -> None:
    print(
        f"\nservice, batch size {result['batch_size']}, {result['clients']} clients, {result['seconds']:.1f} s: "
        f"{result['requests_per_s']:.2f} requests/s, {result['embeddings_per_s']:.2f} embeddings/s"
    )
    for kind, row in result["latency"].items():
        print(
            f"  {kind:<9} n={row['count']:<5} p50 {row['p50_ms']:7.0f} ms  p95 {row['p95_ms']:7.0f} ms  "
            f"p99 {row['p99_ms']:7.0f} ms"
        )
    batching = result["batching"]
    mean_batch = batching["waveforms"] / max(1, batching["batches"])
    print(
        f"  statuses {result['statuses']}; server errors {result['server_errors']}; mean model batch "
        f"{mean_batch:.1f} (largest {batching['largest_batch']})"
    )
    print(
        f"  database integrity {'ok' if result['database_ok'] else 'FAILED'}: "
        f"{result['acknowledged_enrolments']} acknowledged enrolments, {result['missing_enrolments']} missing"
    )


def percentiles(times_ms) -> dict:
    times = np.asarray(times_ms)
    return {
        "count": int(times.size),
        "p50_ms": float(np.percentile(times, 50)),
        "p95_ms": float(np.percentile(times, 95)),
        "p99_ms": float(np.percentile(times, 99)),
    }


def import_fill(fill: int, dim: int, fingerprint: str, workdir: Path, url: str, index_dir: dict) -> dict:
    """``fill`` random unit vectors into the store by ``redimnet speakers import`` (which builds the index)."""
    from redimnet.embedding.io import save_embeddings

    embeddings = workdir / f"fill-{fill}-{dim}.npz"
    if not embeddings.exists():
        rng = np.random.default_rng(fill)
        vectors = rng.standard_normal((fill, dim), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        save_embeddings(embeddings, [f"fill-{i:07d}/0" for i in range(fill)], vectors, model=fingerprint)
    started = time.perf_counter()
    imported = subprocess.run(
        [sys.executable, "-m", "redimnet", "speakers", "import", str(embeddings), "--db", url, "--json"],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **index_dir),
        check=False,
    )
    if imported.returncode != 0:
        raise SystemExit(f"import failed: {imported.stderr[-2000:]}")
    return dict(json.loads(imported.stdout), wall_s=time.perf_counter() - started)


def run_identify_at_scale(args) -> dict:
    """The ``identify`` scenario: ``--servers`` processes on one PostgreSQL store of ``--enrolled`` speakers."""
    import httpx
    import torch

    from redimnet.embedding.embedder import Embedder
    from redimnet.hub.pretrained import build
    from redimnet.models.checkpoint import load_checkpoint, save_checkpoint
    from redimnet.models.fingerprint import model_fingerprint

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if args.checkpoint:
        checkpoint = Path(args.checkpoint)
    else:  # the servers and this process must share the weights (the store remembers the model)
        torch.manual_seed(0)
        checkpoint = save_checkpoint(build(args.model).eval(), workdir / f"{args.model}-seed0.pt")
    args.checkpoint = str(checkpoint)
    model = load_checkpoint(checkpoint)
    fingerprint = model_fingerprint(model)
    embedder = Embedder(model, device="cpu")
    data = clips(4 * args.speakers, args.clip_seconds)
    real = {}  # speaker -> (enrolment clips, query clip)
    for speaker, wav, _ in data:
        real.setdefault(speaker, []).append(wav)
    dim = int(embedder.embed_dim)

    server_context = None
    url = args.db
    if url is None:
        from redimnet.testing.postgres import create_database, temporary_server

        server_context = temporary_server(fsync=True, settings={"shared_buffers": "256MB", "max_wal_size": "4GB"})
        url = create_database(server_context.__enter__(), "service_load")
    index_dir = {"REDIMNET_INDEX_DIR": str(Path(args.index_dir) if args.index_dir else workdir / "index")}
    processes = []
    result: dict = {"scenario": "identify", "enrolled": args.enrolled, "servers": args.servers}
    try:
        if args.reuse_store:
            result["import"] = {"reused": True}
        else:
            result["import"] = import_fill(args.enrolled - len(real), dim, fingerprint, workdir, url, index_dir)
            print(f"imported {args.enrolled - len(real):,} speakers: {result['import']}", flush=True)
        urls = []
        for _ in range(args.servers):
            process, server_url = start_server(args, url, args.batch_size, env_extra=index_dir)
            processes.append(process)
            urls.append(server_url)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(timeout=120) as client:
            for number, (speaker, wavs) in enumerate(sorted(real.items())):
                files = [("audio", (f"{i}.wav", w, "audio/wav")) for i, w in enumerate(wavs[:2])]
                client.post(
                    f"{urls[number % len(urls)]}/v1/enroll",
                    headers=auth,
                    data={"speaker": f"real-{speaker}"},
                    files=files,
                ).raise_for_status()
        queries = [(f"real-{speaker}", wavs[2]) for speaker, wavs in sorted(real.items())]
        records, lock = [], threading.Lock()
        stop_at = time.monotonic() + args.seconds

        def client_loop(number: int):
            with httpx.Client(timeout=120) as client:
                count = 0
                while time.monotonic() < stop_at:
                    name, wav = queries[(number + count) % len(queries)]
                    target = urls[(number + count) % len(urls)]
                    start = time.perf_counter()
                    try:
                        response = client.post(f"{target}/v1/identify", files=[("audio", ("q.wav", wav))])
                        status = response.status_code
                        first = response.json()["matches"][0]["speaker"] if status == 200 else None
                    except httpx.HTTPError as error:
                        status, first = f"connection error: {type(error).__name__}", None
                    with lock:
                        records.append((status, time.perf_counter() - start, first == name))
                    count += 1

        wall = run_clients(args.clients, client_loop)
        statuses = count_statuses(r[0] for r in records)
        ok = [r for r in records if r[0] == 200]
        # across servers: an enrolment through the first is identified by the second at once
        with httpx.Client(timeout=120) as client:
            wav = real[sorted(real)[0]][3]
            client.post(
                f"{urls[0]}/v1/enroll", headers=auth, data={"speaker": "late"}, files=[("audio", ("l.wav", wav))]
            ).raise_for_status()
            seen = client.post(f"{urls[-1]}/v1/identify", files=[("audio", ("l.wav", wav))]).json()["matches"][0]
            info = client.get(f"{urls[-1]}/v1/info").json()["database"]
        result.update(
            {
                "clients": args.clients,
                "seconds": wall,
                "requests": len(records),
                "requests_per_s": len(ok) / wall,
                "statuses": statuses,
                "errors": sum(n for status, n in statuses.items() if status != "200"),
                "latency": percentiles([r[1] * 1000 for r in ok]) if ok else {},
                "own_recording_first": float(np.mean([r[2] for r in ok])) if ok else 0.0,
                "enrolment_seen_by_the_other_server": seen["speaker"] == "late",
                "speakers_in_store": info["speakers"],
                "load": os.getloadavg(),
            }
        )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        if server_context is not None:
            server_context.__exit__(None, None, None)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="b0", help="preset with random weights (default b0)")
    parser.add_argument("--checkpoint", help="checkpoint file instead of --model")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clip-seconds", type=float, default=3.0)
    parser.add_argument("--speakers", type=int, default=8, help="speakers enrolled before the load starts")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batch-wait-ms", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="model threads, here and per server process (default 1: on a busy machine, more threads "
        "than free cores make PyTorch many times slower)",
    )
    parser.add_argument("--compare-unbatched", action="store_true", help="also serve with --batch-size 1")
    parser.add_argument("--scenario", choices=("mixed", "identify"), default="mixed")
    parser.add_argument("--enrolled", type=int, default=1_000_000, help="identify: speakers in the store")
    parser.add_argument("--servers", type=int, default=2, help="identify: server processes on the one database")
    parser.add_argument("--db", help="identify: a postgresql:// URL (default: a throwaway server)")
    parser.add_argument("--workdir", help="identify: where the fill embeddings and the speaker index go")
    parser.add_argument(
        "--reuse-store",
        action="store_true",
        help="identify: --db already holds the speakers (e.g. a database left by benchmarks/speaker_search.py "
        "--postgres): import nothing",
    )
    parser.add_argument("--index-dir", help="identify: where the servers find the saved speaker index")
    parser.add_argument("--ready-timeout", type=float, default=600.0, help="seconds a server may take to start")
    parser.add_argument("--json", metavar="OUT", help="write the figures as JSON")
    args = parser.parse_args()
    if args.clients < 1 or not 0 < args.seconds <= 600:
        parser.error("--clients must be at least 1 and --seconds from 0 to 600")

    if args.scenario == "identify":
        if args.reuse_store and not args.db:
            parser.error("--reuse-store needs --db (the database that holds the speakers)")
        if not args.workdir:
            parser.error("--scenario identify needs --workdir (the fill embeddings and the index are large)")
        result = run_identify_at_scale(args)
        latency = result["latency"]
        print(
            f"identify against {result['speakers_in_store']:,} speakers, {args.servers} servers on one PostgreSQL, "
            f"{args.clients} clients, {result['seconds']:.1f} s: {result['requests_per_s']:.2f} requests/s, "
            f"p50 {latency.get('p50_ms', 0):.0f} ms p95 {latency.get('p95_ms', 0):.0f} ms p99 "
            f"{latency.get('p99_ms', 0):.0f} ms; statuses {result['statuses']}; errors {result['errors']}; own "
            f"recording first {result['own_recording_first']:.3f}; enrolment seen by the other server: "
            f"{result['enrolment_seen_by_the_other_server']}; load {result['load'][0]:.1f}"
        )
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
        return 1 if result["errors"] or not result["enrolment_seen_by_the_other_server"] else 0

    data = clips(max(32, args.speakers * 4), args.clip_seconds)
    waves = [wave for _, _, wave in data]
    model = model_throughput(args, waves, args.batch_size, args.threads)
    print(
        f"model alone ({args.threads} threads, {args.clip_seconds:g} s clips): "
        f"{model['batched']:.2f} embeddings/s in batches of {args.batch_size}, "
        f"{model['one_at_a_time']:.2f} one at a time"
    )
    results = {"model": model, "service": [run_load(args, data, args.batch_size)]}
    report(results["service"][0])
    if args.compare_unbatched:
        results["service"].append(run_load(args, data, 1))
        report(results["service"][1])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    failed = any(r["server_errors"] or not r["database_ok"] for r in results["service"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
