"""Speaker search at scale: import, index, identify and AS-Norm cohort cost, SQLite and PostgreSQL.

    python benchmarks/speaker_search.py --speakers REAL.npz [--utt2spk FILE] --workdir DIR
        [--sizes 10000,100000,1000000] [--stores sqlite,postgresql] [--queries 1000]
        [--json OUT.json]
    python benchmarks/speaker_search.py --table OUT.json [MORE.json ...]     # the Markdown table

The enrolled speakers are real speakers of a trained model plus random ones to fill:

* ``--speakers REAL.npz``: embeddings written by ``redimnet embed`` (ids ``speaker/...``, or
  ``--utt2spk``).  Each speaker's first ``--enrol`` recordings (default 3) are enrolled, the others
  are the queries (``--query-part tune|heldout``: one of two fixed halves of them, so that parameters
  chosen on one half are reported on the other).  Without it, ``--proxy`` makes a stand-in (speakers
  in an anisotropic cone, see :func:`proxy_speakers`); say so when you report such figures.
* Made-up speakers (``fill-NNNNNNN``, one recording each; first in the file, so the real speakers are
  imported and indexed after them) fill the store up to each size: ``--fill uniform``
  (default): random unit vectors, no structure (a graph index's worst case); ``--fill gaussian``: speakers
  drawn from a Gaussian fitted to the real speakers' enrolments (:class:`GaussianFill`), so the store looks
  like one model's speakers throughout.  Report which.  ``--fill-seed`` draws another store of the same size.

For each store and size, each step runs in a fresh process (so its memory is its own):

1. ``import``: ``redimnet speakers import`` of the embeddings file into a new store, which also
   builds and saves the speaker index (both times reported, and the peak resident memory).
2. ``identify``: a new process opens the store (loading and checking the saved index), then runs
   the queries one after another with ``identify(top=5)`` on one thread: p50 / p99 latency,
   recall@1 and @5 against exact search over the same speaker means, resident memory after the
   queries and peak.  The same with the exact index (``REDIMNET_SPEAKER_INDEX=exact``), for
   comparison, up to ``--exact-up-to`` speakers.

``--cohort 100000`` also measures AS-Norm's cost per trial against a cohort of that many speakers
(top-300 cohort scores of both sides of a trial; exact matrix products and the HNSW index).

PostgreSQL runs on a throwaway server (:mod:`redimnet.testing.postgres`, fsync on) in a temporary
folder, or on the server of ``--postgres URL`` (databases ``speakers_SIZE``, left in place).  The
machine's load average is recorded before and after every step: on a shared machine compare figures of
one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOP = 5


# --- the data ------------------------------------------------------------------------------------------------
def units(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def proxy_speakers(speakers: int = 2000, per: int = 6, dim: int = 192, seed: int = 0):
    """A stand-in for a trained model's speakers: centres in an anisotropic cone (pairwise cosine about
    0.2), recordings around them (same-speaker cosine about 0.75).  ``(ids, embeddings)``."""
    rng = np.random.default_rng(seed)
    spectrum = 1.0 / np.sqrt(np.arange(1, dim + 1))
    basis = np.linalg.qr(rng.standard_normal((dim, dim)))[0]
    scale = np.sqrt((spectrum**2).sum())
    mu = units(rng.standard_normal((1, dim)))[0]
    centres = units(0.5 * mu + (rng.standard_normal((speakers, dim)) * spectrum) @ basis.T / scale)
    ids, rows = [], []
    for k in range(speakers):
        noise = (rng.standard_normal((per, dim)) * spectrum) @ basis.T / scale
        rows.append(units(centres[k] + 0.6 * noise + 0.3 * units(rng.standard_normal((per, dim)))))
        ids += [f"proxy{k:05d}/utt{u}" for u in range(per)]
    return np.asarray(ids), np.concatenate(rows)


def real_speakers(args):
    """``(enrol ids, enrol embeddings, query embeddings, query speaker names)`` from the real speakers."""
    from redimnet.embedding.io import load_embeddings
    from redimnet.speakers.bulk import speaker_names

    if args.speakers:
        ids, embeddings = load_embeddings(args.speakers)
        utt2spk = None
        if args.utt2spk:
            from redimnet.evaluation.trials import read_utt2spk

            utt2spk = read_utt2spk(args.utt2spk)
        speakers = speaker_names(ids.tolist(), utt2spk)
    else:
        ids, embeddings = proxy_speakers()
        speakers = [i.split("/")[0] for i in ids.tolist()]
    by_speaker: Dict[str, List[int]] = {}
    for row, speaker in enumerate(speakers):
        by_speaker.setdefault(speaker, []).append(row)
    enrol_ids, enrol_rows, query_rows, query_names = [], [], [], []
    for speaker, rows in sorted(by_speaker.items()):
        if len(rows) <= args.enrol:
            continue  # needs recordings left over for queries
        enrol_rows += rows[: args.enrol]
        enrol_ids += [f"{speaker}/{ids[r]}" if args.utt2spk else str(ids[r]) for r in rows[: args.enrol]]
        query_rows += rows[args.enrol :]
        query_names += [speaker] * (len(rows) - args.enrol)
    if not query_rows:
        raise SystemExit("no speaker has more than --enrol recordings: nothing to query with")
    pick = np.random.default_rng(1).permutation(len(query_rows))
    half = len(pick) // 2
    pick = {"all": pick, "tune": pick[:half], "heldout": pick[half:]}[args.query_part][: args.queries]
    return (
        enrol_ids,
        embeddings[enrol_rows].astype(np.float32),
        embeddings[np.asarray(query_rows)[pick]].astype(np.float32),
        [query_names[i] for i in pick],
    )


class GaussianFill:
    """Made-up speakers like the real ones: a speaker's centre is drawn from a Gaussian fitted to the real
    speakers' enrolment means (their mean and between-speaker covariance), and its one recording is that
    centre plus within-speaker noise (the covariance of the real recordings around their speaker's mean);
    unit length, like an embedding."""

    def __init__(self, enrol_ids, enrol_vectors):
        speakers = np.array([i.split("/")[0] for i in enrol_ids])
        vectors = units(np.asarray(enrol_vectors, dtype=np.float64)).astype(np.float64)
        _, inverse = np.unique(speakers, return_inverse=True)
        inverse = inverse.reshape(-1)
        centres = np.stack([vectors[inverse == k].mean(axis=0) for k in range(inverse.max() + 1)])
        dim = vectors.shape[1]
        self.mean = centres.mean(axis=0)
        ridge = 1e-6 * np.eye(dim)  # fewer speakers than dimensions: keep the factors defined
        self.between = np.linalg.cholesky(np.cov(centres.T) + ridge)
        self.within = np.linalg.cholesky(np.cov((vectors - centres[inverse]).T) + ridge)

    def __call__(self, rng: np.random.Generator, count: int) -> np.ndarray:
        dim = self.mean.shape[0]
        centres = self.mean + rng.standard_normal((count, dim)) @ self.between.T
        return units(centres + rng.standard_normal((count, dim)) @ self.within.T)


def uniform_fill(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    """Random unit vectors: no structure at all (the hardest case for a graph index, see the docs)."""
    return units(rng.standard_normal((count, dim), dtype=np.float32))


def store_file(
    workdir: Path, size: int, enrol_ids, enrol_vectors, fill_kind: str = "uniform", seed: Optional[int] = None
) -> Path:
    """The embeddings file to import: made-up speakers (``fill-NNNNNNN``, one recording each; ``fill_kind``
    ``uniform`` or ``gaussian``, drawn with ``seed``, by default ``size``) up to ``size`` speakers, then the real
    speakers' enrolment recordings (written once per size and seed).

    The real speakers come last: the import writes speakers in the order of the file, so they are indexed
    after a million unrelated vectors, the hard case for a graph index (a store that grows for years).
    That is also the order of the names, in which earlier versions of the import wrote every file."""
    from redimnet.embedding.io import save_embeddings

    name = f"speakers-{size}" if fill_kind == "uniform" else f"speakers-{fill_kind}-{size}"
    name += "" if seed is None else f"-seed{seed}"
    path = workdir / f"{name}-real-last.npz"
    real = len({i.split("/")[0] for i in enrol_ids})
    if size < real:
        raise SystemExit(f"--sizes {size} is smaller than the {real} real speakers")
    if not path.exists():
        fill = size - real
        rng = np.random.default_rng(size if seed is None else seed)
        dim = enrol_vectors.shape[1]
        draw = GaussianFill(enrol_ids, enrol_vectors) if fill_kind == "gaussian" else None
        vectors = np.empty((fill + len(enrol_ids), dim), dtype=np.float32)
        for start in range(0, fill, 100_000):
            count = min(100_000, fill - start)
            block = draw(rng, count) if draw is not None else uniform_fill(rng, count, dim)
            vectors[start : start + count] = block
        vectors[fill:] = enrol_vectors
        ids = [f"fill-{i:07d}/0" for i in range(fill)] + list(enrol_ids)
        save_embeddings(path, ids, vectors)
    return path


def speaker_means(path: Path):
    """``(names, unit means)`` of the speakers in an embeddings file, as the store computes them."""
    from redimnet.embedding.io import load_embeddings

    ids, vectors = load_embeddings(path)
    names = np.array([i.split("/", 1)[0] for i in ids.tolist()])
    unique, inverse = np.unique(names, return_inverse=True)
    sums = np.zeros((unique.size, vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, inverse.reshape(-1), units(vectors).astype(np.float64))
    return unique, units(sums)


def exact_top(means: np.ndarray, queries: np.ndarray, k: int = TOP) -> np.ndarray:
    """Rows of the exact top-``k`` speakers of each query."""
    q = units(queries)
    out = np.empty((q.shape[0], k), dtype=np.int64)
    for start in range(0, q.shape[0], 64):
        scores = q[start : start + 64] @ means.T
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        out[start : start + 64] = np.take_along_axis(top, order, axis=1)
    return out


# --- the steps, each in its own process ------------------------------------------------------------------------
def memory() -> Dict[str, float]:
    status = dict(
        line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("Vm")
    )
    return {key: int(status[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM") if key in status}


def step_import(location: str, embeddings: str, build: str = "index") -> dict:
    from redimnet.speakers import index as index_module
    from redimnet.speakers.bulk import import_embeddings
    from redimnet.speakers.stores import open_store

    checks = {"reattach_s": 0.0, "reattach_cpu_s": 0.0, "reinserted": 0}
    reattach = index_module.HnswIndex._reattach

    def timed_reattach(self, keys, vectors, threads):  # the check after each parallel insertion, timed
        started, cpu = time.perf_counter(), time.process_time()
        lost = reattach(self, keys, vectors, threads)
        checks["reattach_s"] += time.perf_counter() - started
        checks["reattach_cpu_s"] += time.process_time() - cpu
        checks["reinserted"] += lost
        return lost

    index_module.HnswIndex._reattach = timed_reattach  # type: ignore[method-assign]
    with open_store(location) as db:
        started, cpu = time.perf_counter(), time.process_time()
        report = import_embeddings(db, embeddings)
        imported, import_cpu = time.perf_counter() - started, time.process_time() - cpu
        started, cpu = time.perf_counter(), time.process_time()
        kind = db.prepare_index() if build == "index" else None
        db.save_index()
        indexed, index_cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "speakers": report.speakers,
        "recordings": report.recordings,
        "import_s": imported,
        "import_cpu_s": import_cpu,
        "speakers_per_s": report.speakers / imported,
        "index": kind,
        "index_s": indexed,
        "index_cpu_s": index_cpu,
        **checks,
        "memory_mb": memory(),
    }


def step_identify(location: str, queries: str, backend: str = "") -> dict:
    from redimnet.speakers.stores import open_store

    data = np.load(queries)
    vectors = data["queries"]
    timed_backend = {}
    with open_store(location, create=False) as db:
        started = time.perf_counter()
        kind = db.prepare_index()
        opened = time.perf_counter() - started
        loads, builds = db._index.loads, db._index.builds
        db.identify(vectors[0], top=TOP)  # first query: connection caches
        latencies, cpu_times, results = [], [], []
        for vector in vectors:
            started, cpu = time.perf_counter(), time.thread_time()
            found = db.identify(vector, top=TOP)
            latencies.append(time.perf_counter() - started)
            cpu_times.append(time.thread_time() - cpu)
            results.append([name for name, _ in found])
        if backend:  # identification through a back-end: the shortlist from the index, rescored
            timed_backend = time_backend(db, backend, vectors[: min(200, len(vectors))])
    from redimnet.speakers.vectors import HNSW_EXPANSION_ADD, HNSW_EXPANSION_IDENTIFY

    return {
        "index": kind,
        "ef": HNSW_EXPANSION_IDENTIFY,
        "ef_construction": HNSW_EXPANSION_ADD,
        "open_s": opened,
        "index_loaded": bool(loads),
        "index_built": bool(builds),
        "latencies_ms": (np.asarray(latencies) * 1000).tolist(),
        "cpu_ms": (np.asarray(cpu_times) * 1000).tolist(),
        "results": results,
        **timed_backend,
        "memory_mb": memory(),
    }


def time_backend(db, backend: str, vectors: np.ndarray) -> dict:
    """Latency of ``Scorer(backend).rank`` (top 5, the default shortlist) over ``vectors``."""
    from redimnet.evaluation.backend import Backend
    from redimnet.speakers.scorer import BACKEND_CANDIDATES, Scorer

    scorer = Scorer(Backend.load(backend))
    scorer.rank(vectors[0], db, TOP, "")
    latencies, cpu_times = [], []
    for vector in vectors:
        started, cpu = time.perf_counter(), time.thread_time()
        scorer.rank(vector, db, TOP, "")
        latencies.append(time.perf_counter() - started)
        cpu_times.append(time.thread_time() - cpu)
    ms, cpu_ms = np.asarray(latencies) * 1000, np.asarray(cpu_times) * 1000
    return {
        "backend_candidates": BACKEND_CANDIDATES,
        "backend_p50_ms": float(np.percentile(ms, 50)),
        "backend_p99_ms": float(np.percentile(ms, 99)),
        "backend_cpu_p50_ms": float(np.percentile(cpu_ms, 50)),
    }


def backend_agreement(path: str, backend: str, enrol: int, shortlists: List[int]) -> dict:
    """How often the back-end's best match over every speaker is in (and first of) the cosine shortlist.

    The speakers of ``path`` (never seen by the back-end) are enrolled in a temporary SQLite store (their
    first ``enrol`` recordings); their other recordings are the queries.
    """
    import tempfile

    from redimnet.embedding.io import load_embeddings
    from redimnet.evaluation.backend import Backend
    from redimnet.speakers.bulk import import_arrays, speaker_names
    from redimnet.speakers.scorer import Scorer
    from redimnet.speakers.sqlite import SpeakerDatabase

    ids, vectors = load_embeddings(path)
    speakers = speaker_names(ids.tolist())
    rows: Dict[str, List[int]] = {}
    for row, speaker in enumerate(speakers):
        rows.setdefault(speaker, []).append(row)
    enrolled = {s: r[:enrol] for s, r in rows.items() if len(r) > enrol}
    queries = [(s, q) for s, r in rows.items() if s in enrolled for q in r[enrol:]]
    chosen = [r for s in sorted(enrolled) for r in enrolled[s]]
    scorer = Scorer(Backend.load(backend))
    result: dict = {"speakers": len(enrolled), "queries": len(queries)}
    with tempfile.TemporaryDirectory() as folder, SpeakerDatabase(Path(folder) / "s.db") as db:
        import_arrays(db, [str(ids[r]) for r in chosen], vectors[chosen], [speakers[r] for r in chosen])
        everyone = len(enrolled)
        full = [scorer.rank(vectors[q], db, 1, "", candidates=everyone)[0][0] for _, q in queries]
        cosine = [db.identify(vectors[q], top=1)[0][0] for _, q in queries]
        result["backend_accuracy"] = float(np.mean([f == s for f, (s, _) in zip(full, queries)]))
        result["cosine_accuracy"] = float(np.mean([c == s for c, (s, _) in zip(cosine, queries)]))
        for k in shortlists:
            short = [scorer.rank(vectors[q], db, 1, "", candidates=k)[0][0] for _, q in queries]
            result[f"top1_agreement_{k}"] = float(np.mean([a == b for a, b in zip(short, full)]))
    return result


def step_cohort(cohort_size: int, trials: int, top_k: int) -> dict:
    """AS-Norm statistics of both sides of ``trials`` trials against a cohort: exact and through the index."""
    from redimnet.evaluation.score_norm import cohort_statistics
    from redimnet.speakers.index import HnswIndex

    rng = np.random.default_rng(5)
    ids, embeddings = proxy_speakers(speakers=2000, per=6)
    cohort = np.concatenate([units(embeddings[::2]), units(rng.standard_normal((cohort_size, 192)))])[:cohort_size]
    tests = units(embeddings[1::2][: 2 * trials])
    result = {"cohort": cohort_size, "trials": trials, "top_k": top_k}
    index: Optional[HnswIndex] = None
    for method in ("exact", "index"):
        if method == "index":
            index = HnswIndex(192)
            started = time.perf_counter()
            index.upsert(np.arange(cohort.shape[0]), cohort, threads=os.cpu_count() or 1)
            result["index_build_s"] = time.perf_counter() - started
        cohort_statistics(tests[:4], cohort, top_k, index=index)  # warm up
        started, cpu = time.perf_counter(), time.process_time()
        for one in range(trials):  # each trial on its own, both sides new: the worst case
            cohort_statistics(tests[2 * one : 2 * one + 2], cohort, top_k, index=index)
        result[f"{method}_ms_per_trial"] = (time.perf_counter() - started) / trials * 1000
        result[f"{method}_cpu_ms_per_trial"] = (time.process_time() - cpu) / trials * 1000
        # an evaluation: all utterances at once, each in about 8 trials (as in VoxCeleb1-O)
        started, cpu = time.perf_counter(), time.process_time()
        cohort_statistics(tests, cohort, top_k, index=index)
        result[f"{method}_batch_ms_per_trial"] = (time.perf_counter() - started) / (4 * tests.shape[0]) * 1000
        result[f"{method}_batch_cpu_ms_per_trial"] = (time.process_time() - cpu) / (4 * tests.shape[0]) * 1000
    exact_means, exact_stds = cohort_statistics(tests, cohort, top_k)
    index_means, index_stds = cohort_statistics(tests, cohort, top_k, index=index)
    result["index_max_abs_error"] = float(
        max(np.abs(exact_means - index_means).max(), np.abs(exact_stds - index_stds).max())
    )
    result["memory_mb"] = memory()
    return result


def run_step(name: str, *arguments: str, env: Optional[dict] = None) -> dict:
    """Run a step in a new process (``python THIS _step NAME ...``); returns its JSON."""
    command = [sys.executable, __file__, "_step", name, *arguments]
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    environment.update(env or {})
    load_before = os.getloadavg()
    output = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    if output.returncode != 0:
        raise SystemExit(f"step {name} failed:\n{output.stderr[-4000:]}")
    result = json.loads(output.stdout.strip().splitlines()[-1])
    result["load_before"], result["load_after"] = load_before, os.getloadavg()
    return result


# --- the run -----------------------------------------------------------------------------------------------
def machine() -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    total = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line))
    import usearch

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(total / 1024**2, 1),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "usearch": usearch.__version__,
        "sqlite": __import__("sqlite3").sqlite_version,
    }


def summarise(identify: dict, names: np.ndarray, truth: np.ndarray) -> dict:
    latencies = np.asarray(identify["latencies_ms"])
    expected = [[names[j] for j in row] for row in truth]
    got = identify["results"]
    return {
        "index": identify["index"],
        "ef": identify.get("ef"),
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "cpu_p50_ms": float(np.percentile(identify["cpu_ms"], 50)),
        "cpu_p99_ms": float(np.percentile(identify["cpu_ms"], 99)),
        "recall_at_1": float(np.mean([g[:1] == e[:1] for g, e in zip(got, expected)])),
        "recall_at_5": float(np.mean([len(set(g) & set(e)) / TOP for g, e in zip(got, expected)])),
        "open_s": identify["open_s"],
        "index_loaded": identify["index_loaded"],
        "rss_mb": identify["memory_mb"]["VmRSS"],
        "peak_rss_mb": identify["memory_mb"]["VmHWM"],
        "load": [identify["load_before"][0], identify["load_after"][0]],
        **{k: v for k, v in identify.items() if k.startswith("backend_")},
    }


def describe_import(i: dict) -> str:
    return (
        f"import {i['import_s']:7.1f} s (CPU {i['import_cpu_s']:.1f} s, {i['speakers_per_s']:,.0f}/s, "
        f"peak {i['memory_mb']['VmHWM']:.0f} MB, load {i['load_before'][0]:.1f}-{i['load_after'][0]:.1f})"
    )


def describe(row: dict) -> str:
    i, s = row["import"], row["identify"]
    return (
        f"{row['store']:10s} {row.get('fill', 'uniform'):8s} {row['size']:>9,}  {describe_import(i)}  "
        f"index {i['index']} "
        f"{i['index_s']:.1f} s (CPU {i['index_cpu_s']:.1f} s; reachability check {i.get('reattach_s', 0):.1f} s, "
        f"{i.get('reinserted', 0)} reinserted)  identify p50 {s['p50_ms']:.2f} ms p99 "
        f"{s['p99_ms']:.2f} ms (CPU {s['cpu_p50_ms']:.2f} / {s['cpu_p99_ms']:.2f})  recall@1 "
        f"{s['recall_at_1']:.3f} @5 {s['recall_at_5']:.3f}  RSS {s['rss_mb']:.0f} MB (peak "
        f"{s['peak_rss_mb']:.0f})  load {s['load'][0]:.1f}-{s['load'][1]:.1f}"
        + (
            f"  back-end (shortlist {s['backend_candidates']}) p50 {s['backend_p50_ms']:.2f} ms p99 "
            f"{s['backend_p99_ms']:.2f} ms (CPU p50 {s['backend_cpu_p50_ms']:.2f})"
            if "backend_p50_ms" in s
            else ""
        )
    )


def table(paths: List[str]) -> str:
    """The Markdown table of one or more results files."""
    lines = [
        "| store | fill | speakers | import s (CPU s) | speakers/s | index | index build s (CPU s) | "
        "identify p50 / p99 ms (CPU p50 / p99) | recall@1 / @5 | RSS MB (peak) | exact index p50 / p99 ms | load |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for path in paths:
        for row in json.loads(Path(path).read_text())["runs"]:
            if "identify" not in row:  # --import-only
                continue
            i, s = row["import"], row["identify"]
            exact = row.get("identify_exact")
            lines.append(
                f"| {row['store']} | {row.get('fill', 'uniform')} | {row['size']:,} | "
                f"{i['import_s']:.1f} ({i['import_cpu_s']:.1f}) | "
                f"{i['speakers_per_s']:,.0f} | {i['index']} | {i['index_s']:.1f} ({i['index_cpu_s']:.1f}) | "
                f"{s['p50_ms']:.2f} / {s['p99_ms']:.2f} ({s['cpu_p50_ms']:.2f} / {s['cpu_p99_ms']:.2f}) | "
                f"{s['recall_at_1']:.3f} / {s['recall_at_5']:.3f} | {s['rss_mb']:.0f} ({s['peak_rss_mb']:.0f}) | "
                + (f"{exact['p50_ms']:.2f} / {exact['p99_ms']:.2f}" if exact else "")
                + f" | {s['load'][0]:.0f}-{s['load'][1]:.0f} |"
            )
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--table":
        print(table(sys.argv[2:]))
        return 0
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", metavar="REAL.npz", help="embeddings of real speakers (redimnet embed)")
    parser.add_argument("--utt2spk", metavar="FILE", help="speaker of each embedding id (default: first folder)")
    parser.add_argument("--proxy", action="store_true", help="without --speakers: the stand-in speakers")
    parser.add_argument("--enrol", type=int, default=3, help="recordings enrolled per real speaker (default 3)")
    parser.add_argument("--sizes", default="10000,100000,1000000", help="store sizes in speakers")
    parser.add_argument("--stores", default="sqlite,postgresql", help="sqlite, postgresql or both")
    parser.add_argument(
        "--fill", choices=("uniform", "gaussian"), default="uniform", help="how the made-up speakers are drawn"
    )
    parser.add_argument("--fill-seed", type=int, help="random seed of the made-up speakers (default: the store size)")
    parser.add_argument("--queries", type=int, default=1000, help="identify queries per store and size")
    parser.add_argument(
        "--query-part",
        choices=("all", "tune", "heldout"),
        default="all",
        help="which recordings the queries are drawn from: all those not enrolled, or one of two fixed halves of "
        "them (tune: to choose parameters on; heldout: to report on)",
    )
    parser.add_argument("--exact-up-to", type=int, default=100_000, help="also time the exact index up to this size")
    parser.add_argument("--cohort", type=int, default=100_000, help="AS-Norm cohort size (0: skip)")
    parser.add_argument("--trials", type=int, default=200, help="AS-Norm trials timed")
    parser.add_argument("--top-k", type=int, default=300, help="AS-Norm cohort top-k")
    parser.add_argument("--workdir", required=True, help="where the data files and SQLite stores go (large)")
    parser.add_argument("--import-only", action="store_true", help="time the import alone (no index, no queries)")
    parser.add_argument("--backend", metavar="B.npz", help="also time identification through this back-end")
    parser.add_argument(
        "--backend-speakers",
        metavar="HELDOUT.npz",
        help="with --backend: speakers the back-end never saw, to measure how often its best match over every "
        "speaker is the best of the cosine shortlist",
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="a running PostgreSQL server (postgresql://user@host:port/db) to create the stores on, instead of a "
        "throwaway one; its databases are left there (e.g. for benchmarks/service_load.py --db)",
    )
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args()
    if not args.speakers and not args.proxy:
        parser.error("give --speakers REAL.npz (a trained model's embeddings), or --proxy for the stand-in")
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    stores = args.stores.split(",")
    results: dict = {"machine": machine(), "arguments": vars(args), "runs": []}
    print(f"machine: {results['machine']}")
    enrol_ids, enrol_vectors, queries, query_names = real_speakers(args)
    print(f"real speakers: {len(set(i.split('/')[0] for i in enrol_ids))}, queries: {len(queries)}")
    query_file = workdir / "queries.npz"
    np.savez(query_file, queries=queries)
    if args.backend and args.backend_speakers:
        shortlists = "5,10,20,50,100"
        agreement = run_step("agreement", args.backend_speakers, args.backend, str(args.enrol), shortlists)
        results["backend_agreement"] = agreement
        print(f"back-end shortlist agreement: {json.dumps(agreement)}", flush=True)
    if args.cohort:
        cohort = run_step("cohort", str(args.cohort), str(args.trials), str(args.top_k))
        results["cohort"] = cohort
        print(f"AS-Norm, cohort {args.cohort}, top-{args.top_k}: {json.dumps(cohort)}")
    server = None
    try:
        for store in stores:
            url = None
            if store == "postgresql" and args.postgres:
                url = args.postgres
            elif store == "postgresql":
                from redimnet.testing.postgres import temporary_server

                server = temporary_server(fsync=True, settings={"shared_buffers": "256MB", "max_wal_size": "4GB"})
                url = server.__enter__()
            for size in sizes:
                embeddings = store_file(workdir, size, enrol_ids, enrol_vectors, args.fill, args.fill_seed)
                names, means = speaker_means(embeddings)
                truth = exact_top(means, queries)
                if store == "sqlite":
                    location = str(workdir / f"store-{size}.db")
                    for stale in workdir.glob(f"store-{size}.db*"):
                        stale.unlink()
                else:
                    from redimnet.testing.postgres import create_database

                    location = create_database(url, f"speakers_{size}")
                index_dir = {"REDIMNET_INDEX_DIR": str(workdir / f"index-{store}-{size}")}
                build = "no-index" if args.import_only else "index"
                imported = run_step("import", location, str(embeddings), build, env=index_dir)
                row = {
                    "store": store,
                    "size": size,
                    "fill": args.fill,
                    "fill_seed": size if args.fill_seed is None else args.fill_seed,
                    "queries": args.query_part,
                    "import": imported,
                }
                if args.import_only:
                    results["runs"].append(row)
                    print(f"{store:10s} {size:>9,}  {describe_import(imported)}", flush=True)
                    continue
                identified = run_step("identify", location, str(query_file), args.backend or "", env=index_dir)
                row["identify"] = summarise(identified, names, truth)
                if size <= args.exact_up_to:
                    exact_env = dict(index_dir, REDIMNET_SPEAKER_INDEX="exact")
                    row["identify_exact"] = summarise(
                        run_step("identify", location, str(query_file), env=exact_env), names, truth
                    )
                results["runs"].append(row)
                print(describe(row), flush=True)
                if "identify_exact" in row:
                    e = row["identify_exact"]
                    print(f"{'':10s} {'':>9}  exact index: identify p50 {e['p50_ms']:.2f} ms p99 {e['p99_ms']:.2f} ms")
                if args.json:
                    Path(args.json).write_text(json.dumps(results, indent=2))
            if server is not None:
                server.__exit__(None, None, None)
                server = None
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_step":
        name, rest = sys.argv[2], sys.argv[3:]
        if name == "import":
            out = step_import(*rest)
        elif name == "identify":
            out = step_identify(*rest)
        elif name == "agreement":
            out = backend_agreement(rest[0], rest[1], int(rest[2]), [int(k) for k in rest[3].split(",")])
        else:
            out = step_cohort(int(rest[0]), int(rest[1]), int(rest[2]))
        print(json.dumps(out))
        sys.exit(0)
    sys.exit(main())
