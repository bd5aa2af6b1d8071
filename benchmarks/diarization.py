"""Diarization benchmark: speed per stage, peak memory, and DER on synthetic conversations.

Run from the project root (needs ``pip install -e ".[diarize]"``)::

    python benchmarks/diarization.py speed --model b0 --minutes 60            # real-time factors, peak RSS
    python benchmarks/diarization.py quality --model b0 --speakers 2,4,6      # DER vs an MFCC baseline
    python benchmarks/diarization.py memory --hours 10                          # the length-dependent stages

``speed`` writes (or reuses, in ``--workdir``) a synthetic conversation of
``--minutes`` and diarizes it in a fresh subprocess, reporting the seconds
and real-time factor (seconds of work per second of audio) of each stage --
voice activity (including its decoding pass), decoding for the embedding
pass, window embeddings, clustering -- and the subprocess's peak resident
memory (``ru_maxrss``).

``memory`` writes a ``--hours`` conversation (clips reused, so it is quick
to make) and measures, each in a fresh subprocess, the peak memory and time
of the stages whose work grows with the length: voice activity over the
file, and clustering (with window context) plus frame scoring into segments
of as many window embeddings as that much speech gives (synthetic embeddings
of six speakers taking turns; the embedding stage itself holds one batch of
windows whatever the length, see ``speed``).

``quality`` generates ``--conversations`` conversations per speaker count
and scores, with a 0.25 s collar, the ReDimNet pipeline and the same
pipeline with MFCC statistics in place of the network (same VAD, windows
and clustering; the baseline's dimensions are standardised per recording),
each with the speaker count estimated and given (oracle), plus the
fraction of recordings whose speaker count was estimated exactly, the
confusion part of DER (the only part the embeddings change) and every
conversation's DER.  ``--no-context`` clusters each window alone.  With
``--model NAME`` and no ``--checkpoint`` the network has *random weights*
(no download); its DER says little about a trained model -- give
``--checkpoint`` (e.g. ``tests/data/diarization/redimnet_synthetic.pt``,
trained on synthetic voices) for meaningful numbers.

``matrix`` is the development matrix: every embedding model (``--models``
names among the shipped test model, ``--models-json FILE`` entries and
``--add-model NAME=CKPT``) on conversations simulated
(:mod:`redimnet.testing.simulation`) from voices no model was trained on,
per source and part: ``festflite-*`` (festival/flite voices, recorded from
real speakers), ``espeak-*`` (espeak-ng variants), ``synth-*`` (the synthetic
generator), each in a ``tune`` part (for tuning) and a ``heldout`` part
(never tuned on), plus ``long-heldout`` (1 h and 3 h in which the same
held-out voices recur).  Each part holds 1-8 speakers, 30 s to 12 min,
pitch-shifted siblings as distinct speakers, single-speaker recordings and
monologues with one interjection; every speaker and every turn has its own
channel.  ``--voices DIR`` is the corpora folder written by
``scripts/make_tts_voices.py``; recordings (and voice activity) are kept in
``--workdir`` and reused.  Per model x source it reports DER with the count
estimated and given, JER, and how many counts were exact (collar 0.25 s
each side, overlap scored), with ``--clustering NAME`` (any name
``redimnet diarize --clustering`` takes) and, unless ``--vad`` says
otherwise, the energy voice activity detector (it finds the simulated
speech, where Silero misses much of the synthetic voices under channel
noise, so the matrix measures the speaker count, not the detector);
``--quick`` runs six short recordings per source, ``--sources`` a subset::

    python benchmarks/diarization.py matrix --voices VOICES --models-json MODELS/models.json \
        --workdir /tmp/matrix --clustering spectral --json m.json --markdown m.md

Results are printed as JSON (``--json FILE`` also writes them; ``matrix``
prints its table and ``--markdown FILE`` writes it).
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _conversation(workdir: Path, speakers: int, seconds: float, seed: int, pool: int = 0) -> Path:
    from redimnet.testing.synth import generate_conversation

    path = workdir / f"conv-{speakers}spk-{int(seconds)}s-seed{seed}-pool{pool}.wav"
    if not path.exists() or not path.with_suffix(".rttm").exists():
        generate_conversation(path, speakers=speakers, seconds=seconds, seed=seed, pool=pool)
    return path


def _embedder(args):
    import torch

    import redimnet

    if args.checkpoint:
        model = redimnet.load_checkpoint(args.checkpoint)
    else:
        torch.manual_seed(0)
        model = redimnet.build(args.model).eval()
    return redimnet.Embedder(model, device="cpu", batch_size=args.batch_size)


def run_once(args) -> dict:
    """Diarize one file in this process and report timings and peak memory (the subprocess side of ``speed``)."""
    import torch

    from redimnet.diarization import Diarizer
    from redimnet.diarization.methods import make_clustering

    if args.threads:
        torch.set_num_threads(args.threads)
    embedder = _embedder(args)
    clustering = make_clustering(
        args.clustering if args.clustering != "auto" else ("vbx" if args.backend else "spectral"), backend=args.backend
    )
    diarizer = Diarizer(embedder, vad=args.vad, clustering=clustering, batch_windows=args.batch_size)
    load_before = os.getloadavg()
    started, cpu_started = time.perf_counter(), time.process_time()
    result = diarizer.diarize(args.file)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    duration = result.duration
    stages = {k: round(v, 3) for k, v in result.timings.items()}
    return {
        "file": Path(args.file).name,
        "audio_seconds": round(duration, 1),
        "windows": result.windows,
        "speakers": len(result.speakers),
        "seconds": stages,
        "wall": round(wall, 2),
        "rtf": {k: round(v / duration, 5) for k, v in result.timings.items()},
        "cpu_seconds": round(cpu, 2),  # this process's CPU time: what a shared machine's load does not inflate
        "cpu_rtf": round(cpu / duration, 5),
        "load_average": {"before": [round(v, 2) for v in load_before], "after": [round(v, 2) for v in os.getloadavg()]},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": torch.get_num_threads(),
    }


def stage_once(args) -> dict:
    """One stage alone on a long recording, in this process: ``vad`` over the file, or ``cluster``
    (clustering with window context, then frame scoring into segments) on as many synthetic window
    embeddings as the recording would give (the subprocess side of ``memory``)."""
    import numpy as np

    from redimnet.diarization import AudioSource, Diarizer, SpectralClustering
    from redimnet.diarization.diarizer import DEFAULT_HOP, DEFAULT_WINDOW, plan_windows
    from redimnet.diarization.vad import make_vad

    started = time.perf_counter()
    if args.stage == "vad":
        source = AudioSource(args.file)
        regions = make_vad(args.vad).regions(source)
        detail = {
            "audio_seconds": round(source.duration, 1),
            "regions": len(regions),
            "speech_seconds": round(sum(e - s for s, e in regions), 1),
        }
    else:
        # turns of one speaker, eight windows each (1.5 s every 0.75 s), 1.25 s apart
        rng = np.random.default_rng(0)
        centres = rng.standard_normal((6, 192))
        turns = [(8.0 * r, 8.0 * r + 6.75) for r in range(args.windows // 8)]
        windows = plan_windows(turns, DEFAULT_WINDOW, DEFAULT_HOP)
        speaker = rng.integers(6, size=len(turns))[windows.region]
        embeddings = (centres[speaker] + 1.5 * rng.standard_normal((len(speaker), 192))).astype(np.float32)
        if args.clustering == "vbx":  # a back-end fitted on 200 other speakers of the same kind
            from redimnet.diarization.vbx import VBxClustering
            from redimnet.evaluation.backend import train_backend

            others = np.repeat(np.arange(200), 10)
            population = rng.standard_normal((200, 192))[others] + 1.5 * rng.standard_normal((len(others), 192))
            clustering = VBxClustering(train_backend(population, others))
        else:
            clustering = SpectralClustering()
        labels = clustering.cluster(embeddings, regions=windows.region)
        scores = clustering.centroid_scores(embeddings, labels)
        segments = Diarizer.segments_from_scores(turns, windows, scores, [str(k) for k in range(scores.shape[1])])
        detail = {
            "windows": len(speaker),
            "speakers_found": len({s.label for s in segments}),
            "segments": len(segments),
        }
    detail.update(
        {
            "stage": args.stage,
            "seconds": round(time.perf_counter() - started, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
    )
    return detail


def memory(args) -> dict:
    """Peak memory of the length-dependent stages on ``--hours`` of audio, each in a fresh subprocess."""
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="diarization-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    path = _conversation(workdir, 4, args.hours * 3600, seed=0, pool=20)
    generated = time.perf_counter() - started
    windows = int(args.hours * 3600 * 0.75 / 0.75)  # about 75 % speech, one window per 0.75 s of it
    results = []
    for stage in ("vad", "cluster"):
        command = [
            sys.executable,
            __file__,
            "stage",
            "--stage",
            stage,
            "--file",
            str(path),
            "--vad",
            args.vad,
            "--windows",
            str(windows),
            "--clustering",
            args.clustering,
        ]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), file=sys.stderr)
    return {
        "machine": _machine(),
        "hours": args.hours,
        "generation_seconds": round(generated, 1),
        "file_mb": round(path.stat().st_size / 2**20),
        "stages": results,
    }


def speed(args) -> dict:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="diarization-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    seconds = args.minutes * 60
    started = time.perf_counter()
    path = _conversation(workdir, 4, seconds, seed=0, pool=20 if seconds > 600 else 0)
    generated = time.perf_counter() - started
    results = []
    for model in (args.models or "b0,b2").split(","):
        command = [
            sys.executable,
            __file__,
            "once",
            "--file",
            str(path),
            "--model",
            model,
            "--vad",
            args.vad,
            "--clustering",
            args.clustering,
            "--batch-size",
            str(args.batch_size),
        ]
        if args.threads:
            command += ["--threads", str(args.threads)]
        if args.checkpoint:
            command += ["--checkpoint", args.checkpoint]
        if args.backend:
            command += ["--backend", args.backend]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        entry = json.loads(output.strip().splitlines()[-1])
        entry["model"] = model
        results.append(entry)
        print(json.dumps(entry), file=sys.stderr)
    return {
        "machine": _machine(),
        "clustering": args.clustering,
        "backend": args.backend,
        "generation_seconds": round(generated, 1),
        "runs": results,
    }


def quality(args) -> dict:
    import torch

    from redimnet.diarization import Diarizer, SpectralClustering, read_rttm
    from redimnet.diarization.baseline import MFCCStatsEmbedder
    from redimnet.diarization.clustering import AgglomerativeClustering
    from redimnet.diarization.der import DERScore, diarization_error
    from redimnet.diarization.vad import make_vad

    if args.threads:
        torch.set_num_threads(args.threads)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="diarization-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    vad = make_vad(args.vad)

    def clustering(standardise: bool):
        method = SpectralClustering() if args.clustering == "spectral" else AgglomerativeClustering()
        method.standardise = standardise
        return method

    systems = {
        "redimnet": Diarizer(_embedder(args), vad=vad, clustering=clustering(False), context=not args.no_context),
        "mfcc-baseline": Diarizer(
            MFCCStatsEmbedder(), vad=vad, clustering=clustering(True), context=not args.no_context
        ),
    }
    table = {}
    for speakers in [int(k) for k in args.speakers.split(",")]:
        scores = {(name, mode): DERScore() for name in systems for mode in ("estimated", "oracle")}
        exact = {name: 0 for name in systems}
        each: dict = {name: {"der_estimated": [], "der_oracle": [], "speakers_found": []} for name in systems}
        for number in range(args.conversations):
            path = _conversation(workdir, speakers, args.seconds, seed=100 + number)
            reference = read_rttm(path.with_suffix(".rttm"))[path.stem]
            for name, diarizer in systems.items():
                estimated = diarizer.diarize(path)
                oracle = diarizer.diarize(path, num_speakers=speakers)
                score_estimated = diarization_error(reference, estimated)
                score_oracle = diarization_error(reference, oracle)
                scores[name, "estimated"] += score_estimated
                scores[name, "oracle"] += score_oracle
                exact[name] += len(estimated.speakers) == speakers
                each[name]["der_estimated"].append(round(100 * score_estimated.der, 2))
                each[name]["der_oracle"].append(round(100 * score_oracle.der, 2))
                each[name]["speakers_found"].append(len(estimated.speakers))
                print(
                    f"{path.name} {name}: estimated {len(estimated.speakers)} speakers, DER "
                    f"{100 * score_estimated.der:.1f} % / oracle {100 * score_oracle.der:.1f} %",
                    file=sys.stderr,
                )

        def percent(score, part):
            return round(100 * getattr(score, part) / score.total, 2)

        table[speakers] = {
            name: {
                "der_estimated": round(100 * scores[name, "estimated"].der, 2),
                "der_oracle": round(100 * scores[name, "oracle"].der, 2),
                "confusion_estimated": percent(scores[name, "estimated"], "confusion"),
                "confusion_oracle": percent(scores[name, "oracle"], "confusion"),
                "missed": percent(scores[name, "oracle"], "missed"),
                "false_alarm": percent(scores[name, "oracle"], "false_alarm"),
                "count_accuracy": round(exact[name] / args.conversations, 3),
                "per_conversation": each[name],
            }
            for name in systems
        }
    return {
        "machine": _machine(),
        "weights": args.checkpoint or f"{args.model} random init",
        "vad": args.vad,
        "clustering": args.clustering,
        "window_context": not args.no_context,
        "conversations_per_count": args.conversations,
        "seconds_each": args.seconds,
        "collar": 0.25,
        "der_percent": table,
    }


# --- the development matrix: embedding models x conversation sources ---------------------------------
SHIPPED_MODELS = {
    "shipped-synthetic": ROOT / "tests" / "data" / "diarization" / "redimnet_synthetic.pt",
    "shipped-tts": ROOT / "tests" / "data" / "diarization" / "redimnet_tts.pt",
}
# (name, speakers, seconds, style, overlap, sibling pairs): one recording each, per source and part
MATRIX_SCENARIOS = [
    ("1spk-30s", 1, 30, "dialogue", 0.0, 0),
    ("1spk-120s", 1, 120, "dialogue", 0.0, 0),
    ("2spk-60s", 2, 60, "dialogue", 0.05, 0),
    ("2spk-120s-sibling", 2, 120, "dialogue", 0.05, 1),
    ("2spk-240s", 2, 240, "dialogue", 0.05, 0),
    ("3spk-120s", 3, 120, "dialogue", 0.05, 0),
    ("3spk-240s-sibling", 3, 240, "dialogue", 0.05, 1),
    ("4spk-180s", 4, 180, "dialogue", 0.05, 0),
    ("4spk-420s-sibling", 4, 420, "dialogue", 0.05, 1),
    ("6spk-480s-sibling", 6, 480, "dialogue", 0.05, 1),
    ("8spk-720s-siblings", 8, 720, "dialogue", 0.05, 2),
    ("monologue-120s", 2, 120, "monologue", 0.0, 0),
    ("monologue-300s", 2, 300, "monologue", 0.0, 0),
]
QUICK_SCENARIOS = {"1spk-30s", "2spk-60s", "2spk-120s-sibling", "3spk-120s", "4spk-180s", "monologue-120s"}
# long recordings in which the same voices recur all along: held-out voices of all three engines
LONG_SCENARIOS = [("long-1h-6spk", 6, 3600, "dialogue", 0.05, 0), ("long-3h-9spk", 9, 10800, "dialogue", 0.05, 0)]
ENGINES = ("festflite", "espeak", "synth")
MATRIX_SOURCES = [f"{engine}-{part}" for part in ("tune", "heldout") for engine in ENGINES] + ["long-heldout"]
SYNTH_SEEDS = {"tune": 21, "heldout": 23}  # voices of redimnet.synth; no model was trained on these seeds


def _identity(name: str) -> str:
    """The voice a speaker of the TTS corpora comes from: ``ff-awb-p+4-t1`` and ``ff-awb-p+0-t1`` -> ``ff-awb``."""
    import re

    match = re.match(r"^(.*)-p[+-]?\d", name)
    return match.group(1) if match else name


def _voice_pools(engine: str, part: str, voices) -> list:
    """Speakers of one engine and part, grouped by the voice they come from (the voice itself first)."""
    from redimnet.testing.simulation import ShiftedSpeaker, SyntheticSpeaker, speakers_from_folder

    if engine == "synth":
        pools = []
        for index in range(40):
            base = SyntheticSpeaker(SYNTH_SEEDS[part], index)
            pools.append([base] + [ShiftedSpeaker(base, shift) for shift in (-5, 4)])
        return pools
    if voices is None:
        raise SystemExit(f"source {engine}-{part} needs --voices DIR (the corpora made by scripts/make_tts_voices.py)")
    folder = Path(voices) / f"{part}-{engine}"
    if not folder.is_dir():
        raise SystemExit(f"{folder}: missing; build it with scripts/make_tts_voices.py {voices}")
    groups: dict = {}
    for speaker in speakers_from_folder(folder):
        groups.setdefault(_identity(speaker.name), []).append(speaker)
    original = ("-p+0-", "-p50")
    return [
        sorted(group, key=lambda s: not any(tag in s.name + "-" for tag in original))
        for _, group in sorted(groups.items())
    ]


def _pick_speakers(pools: list, count: int, siblings: int, rng) -> list:
    """``count`` speakers: distinct voices, except ``siblings`` pairs of a voice and its shifted sibling
    (more when there are fewer voices than speakers)."""
    siblings = max(siblings, count - len(pools))
    voices = [pools[i] for i in rng.permutation(len(pools))[: count - siblings]]
    chosen = [group[0] for group in voices]
    for group in voices[:siblings]:
        chosen.append(group[1 + int(rng.integers(len(group) - 1))])
    return chosen


def matrix_recordings(args) -> list:
    """Write (or reuse, in ``--workdir``) every recording of the chosen sources; their descriptions."""
    import numpy as np

    from redimnet.testing.simulation import ConversationSimulator

    workdir = Path(args.workdir or "diarization-matrix")
    sources = args.sources.split(",") if args.sources else MATRIX_SOURCES
    unknown = sorted(set(sources) - set(MATRIX_SOURCES))
    if unknown:
        raise SystemExit(f"unknown source(s) {', '.join(unknown)}; choose from {', '.join(MATRIX_SOURCES)}")
    if args.quick:
        sources = [s for s in sources if s != "long-heldout"]
    recordings = []
    for source in sources:
        engine, part = source.rsplit("-", 1)
        if engine == "long":
            pools_by_engine = [_voice_pools(e, part, args.voices) for e in ENGINES]
            scenarios = LONG_SCENARIOS
        else:
            pools_by_engine = [_voice_pools(engine, part, args.voices)]
            scenarios = [s for s in MATRIX_SCENARIOS if not args.quick or s[0] in QUICK_SCENARIOS]
        for index, (name, count, seconds, style, overlap, siblings) in enumerate(scenarios):
            if args.longest is not None and seconds > args.longest:
                continue  # left out (the index, and so each kept recording's seed, is unchanged)
            seed = 1000 * (MATRIX_SOURCES.index(source) + 1) + index
            rng = np.random.default_rng(seed)
            if len(pools_by_engine) == 1:
                speakers = _pick_speakers(pools_by_engine[0], count, siblings, rng)
            else:  # the same number of voices from each engine
                speakers = []
                for offset, pools in enumerate(pools_by_engine):
                    share = count // len(pools_by_engine) + (offset < count % len(pools_by_engine))
                    speakers += _pick_speakers(pools, share, 0, rng)
            path = workdir / source / f"{name}.wav"
            if not path.exists() or not path.with_suffix(".rttm").exists():
                started = time.perf_counter()
                simulator = ConversationSimulator(speakers, overlap=overlap, style=style, turn_variation=0.5)
                simulator.write(path, seconds, seed=seed, recording=name)
                print(f"wrote {path} in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
            recordings.append(
                {
                    "source": source,
                    "part": part,
                    "name": name,
                    "path": str(path),
                    "speakers": count,
                    "seconds": seconds,
                    "style": style,
                    "overlap": overlap,
                    "voices": [s.name for s in speakers],
                }
            )
    return recordings


class _CachedVAD:
    """Voice activity once per recording (kept next to it), whichever model embeds it next; ``path``
    names the recording about to be diarized."""

    def __init__(self, vad):
        self.vad = vad
        self.name = getattr(vad, "name", "vad")
        self.path: Optional[Path] = None

    def regions(self, source):
        if self.path is None:
            return self.vad.regions(source)
        cache = self.path.with_suffix(f".vad-{self.name}.json")
        if cache.exists():
            return [tuple(r) for r in json.loads(cache.read_text())]
        regions = self.vad.regions(source)
        partial = cache.with_suffix(f".{os.getpid()}.partial")  # runs side by side never read half a file
        partial.write_text(json.dumps([list(r) for r in regions]))
        os.replace(partial, cache)
        return regions


def _matrix_clustering(name: str, checkpoint: str):
    """The clustering ``name`` for one model: ``auto``/``vbx`` with the back-end shipped next to its weights
    (``<weights>.diarization.npz``), as ``redimnet diarize`` picks it."""
    from redimnet.diarization.methods import make_clustering
    from redimnet.diarization.vbx import backend_beside

    beside = backend_beside(checkpoint)
    backend = str(beside) if beside.is_file() else None
    if name == "auto":
        name = "vbx" if backend else "spectral"
    return make_clustering(name, backend=backend)


def _backend_name(checkpoint: str) -> Optional[str]:
    from redimnet.diarization.vbx import backend_beside

    beside = backend_beside(checkpoint)
    return beside.name if beside.is_file() else None


def _matrix_models(args) -> dict:
    models = {name: str(path) for name, path in SHIPPED_MODELS.items() if path.exists()}
    if args.models_json:
        for name, entry in json.loads(Path(args.models_json).read_text()).items():
            models[name] = str(Path(args.models_json).parent / entry["checkpoint"])
    for item in args.add_model or []:
        name, _, path = item.partition("=")
        if not path:
            raise SystemExit(f"--add-model expects NAME=CHECKPOINT, got {item!r}")
        models[name] = path
    if args.models:
        chosen = args.models.split(",")
        missing = [m for m in chosen if m not in models]
        if missing:
            raise SystemExit(f"unknown model(s) {', '.join(missing)}; known: {', '.join(models)}")
        models = {m: models[m] for m in chosen}
    return models


def _cell(rows: list) -> dict:
    from redimnet.diarization.der import DERScore

    estimated, given = DERScore(), DERScore()
    for row in rows:
        estimated += DERScore(**row["score_estimated"])
        given += DERScore(**row["score_given"])
    exact = sum(r["speakers_found"] == r["speakers"] for r in rows)

    def share(score, part):
        return round(100 * getattr(score, part) / score.total, 2) if score.total else 0.0

    return {
        "recordings": len(rows),
        "hours": round(sum(r["seconds"] for r in rows) / 3600, 2),
        "der_estimated": round(100 * estimated.der, 2),
        "der_given": round(100 * given.der, 2),
        "jer_estimated": round(100 * estimated.jer, 2),
        "jer_given": round(100 * given.jer, 2),
        "count_exact": exact,
        "count_exact_rate": round(exact / len(rows), 3) if rows else 0.0,
        "count_mean_abs_error": round(
            sum(abs(r["speakers_found"] - r["speakers"]) for r in rows) / max(len(rows), 1), 2
        ),
        "bound_met": 100 * estimated.der <= 1.3 * 100 * given.der + 1.0,
        "missed_given": share(given, "missed"),
        "false_alarm_given": share(given, "false_alarm"),
        "confusion_estimated": share(estimated, "confusion"),
        "confusion_given": share(given, "confusion"),
    }


def matrix(args) -> dict:
    """DER (count estimated and given), JER and exact counts of every model on every source."""
    import torch

    import redimnet
    from redimnet.diarization import Diarizer, read_rttm
    from redimnet.diarization.der import diarization_error
    from redimnet.diarization.vad import make_vad
    from redimnet.testing.embedding_cache import CachedEmbedder

    torch.set_num_threads(args.threads or 1)
    recordings = matrix_recordings(args)
    vad = _CachedVAD(make_vad(args.vad))
    if args.prepare_only:  # recordings and their voice activity, for later runs
        from redimnet.diarization import AudioSource

        for recording in recordings:
            vad.path = Path(recording["path"])
            vad.regions(AudioSource(recording["path"], name=recording["name"]))
        return {"recordings": recordings}
    models = _matrix_models(args)
    rows = []
    for model_name, checkpoint in models.items():
        embedder = CachedEmbedder(redimnet.Embedder(redimnet.load_checkpoint(checkpoint), device="cpu"))
        diarizer = Diarizer(embedder, vad=vad, clustering=_matrix_clustering(args.clustering, checkpoint))
        diarizer.keep_embeddings = bool(args.count_bound)
        for recording in recordings:
            path = Path(recording["path"])
            kept = Path(args.embedding_cache or ".") / model_name / recording["source"] / f"{recording['name']}.npz"
            if args.embedding_cache:
                embedder.load(kept)
            else:
                embedder.cache.clear()
            vad.path = path
            reference = read_rttm(path.with_suffix(".rttm"))[recording["name"]]
            started = time.perf_counter()
            estimated = diarizer.diarize(path, recording=recording["name"])
            given = diarizer.diarize(path, num_speakers=recording["speakers"], recording=recording["name"])
            seconds = time.perf_counter() - started
            if args.embedding_cache:
                embedder.save(kept)
            score_estimated, score_given = diarization_error(reference, estimated), diarization_error(reference, given)
            keep = ("total", "missed", "false_alarm", "confusion", "speakers", "speaker_error")
            row = {
                "model": model_name,
                **{k: recording[k] for k in ("source", "part", "name", "speakers", "seconds", "style")},
                "speakers_found": len(estimated.speakers),
                "der_estimated": round(100 * score_estimated.der, 2),
                "der_given": round(100 * score_given.der, 2),
                "score_estimated": {k: getattr(score_estimated, k) for k in keep},
                "score_given": {k: getattr(score_given, k) for k in keep},
                "wall_seconds": round(seconds, 1),
            }
            if args.count_bound:
                row["speaker_llrs"] = _speaker_llrs(diarizer.clustering, estimated, reference)
            rows.append(row)
            print(
                f"{model_name} {recording['source']}/{recording['name']}: {row['speakers_found']} of "
                f"{recording['speakers']} speakers, DER {row['der_estimated']} % (given {row['der_given']} %), "
                f"{seconds:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    return _matrix_result(args, models, recordings, rows)


def _speaker_llrs(clustering, result, reference) -> dict:
    """What a threshold on the PLDA likelihood ratio faces in one recording when the clusters are the TRUE
    speakers (windows of one reference speaker alone): ``between``, the largest log-likelihood ratio that two
    different speakers are one (-inf with one speaker); ``within``, the smallest that the two halves of one
    speaker (its windows split in two by average linkage) are one. A threshold ``t`` with
    ``between < t <= within`` is the only kind that merges no two speakers and splits none (VBx back-end only)."""
    import numpy as np

    from redimnet.diarization.segments import label_spans
    from redimnet.diarization.vbx import _average_linkage_labels, same_speaker_llr

    if not hasattr(clustering, "space"):
        raise SystemExit("--count-bound needs the VBx back-end (--clustering auto or vbx, with a back-end)")
    spans = result.window_spans
    truth = np.array([label or "" for label in label_spans(reference, spans[:, 0], spans[:, 1])])
    z, phi = clustering.space.project(result.window_embeddings)
    speakers = [s for s in np.unique(truth) if s and np.count_nonzero(truth == s) >= 2]
    between, within = -np.inf, np.inf
    for i, first in enumerate(speakers):
        for second in speakers[i + 1 :]:
            between = max(between, same_speaker_llr(z, phi, truth == first, truth == second, clustering.fa))
        rows = np.flatnonzero(truth == first)
        halves = _average_linkage_labels(result.window_embeddings[rows], 2)
        within = min(within, same_speaker_llr(z, phi, rows[halves == 0], rows[halves == 1], clustering.fa))
    return {k: float(v) if np.isfinite(v) else None for k, v in (("between", between), ("within", within))}


def _or(value, default):
    return default if value is None else value


def _count_bound(rows: list) -> dict:
    """Per model and part: how many counts the best single likelihood-ratio threshold gets right with the true
    speakers as clusters (chosen on those very recordings: an upper bound), and how many recordings any
    threshold of their own would get right (``None`` in a row: no such pair, i.e. infinite)."""
    inf = float("inf")
    bound = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        for part in ("tune", "heldout"):
            chosen = [
                {"between": _or(r["speaker_llrs"]["between"], -inf), "within": _or(r["speaker_llrs"]["within"], inf)}
                for r in rows
                if r["model"] == model and r["part"] == part and "speaker_llrs" in r
            ]
            if not chosen:
                continue
            edges = sorted({v for r in chosen for v in (r["between"], r["within"]) if abs(v) != inf})
            candidates = edges + [e + 1e-6 for e in edges]
            right = [sum(r["between"] < t <= r["within"] for r in chosen) for t in candidates] or [len(chosen)]
            best = max(range(len(right)), key=right.__getitem__)
            bound[f"{model} | {part}"] = {
                "recordings": len(chosen),
                "best_single_threshold_right": right[best],
                "threshold": round(candidates[best], 2) if candidates else None,
                "right_with_a_threshold_of_their_own": sum(r["between"] < r["within"] for r in chosen),
            }
    return bound


def _matrix_result(args, models: dict, recordings: list, rows: list) -> dict:
    cells = {}
    for model_name in models:
        mine = [r for r in rows if r["model"] == model_name]
        for source in dict.fromkeys(r["source"] for r in mine):
            cells[f"{model_name} | {source}"] = _cell([r for r in mine if r["source"] == source])
        for part in ("tune", "heldout"):
            chosen = [r for r in mine if r["part"] == part]
            if chosen:
                cells[f"{model_name} | all {part}"] = _cell(chosen)
    return {
        "machine": _machine(),
        "clustering": args.clustering,
        "backends": {m: _backend_name(c) for m, c in models.items()},
        "vad": args.vad,
        "collar": 0.25,
        "quick": bool(args.quick),
        "models": models,
        "recordings": recordings,
        "cells": cells,
        "rows": rows,
        **({"count_bound": _count_bound(rows)} if any("speaker_llrs" in r for r in rows) else {}),
    }


def matrix_merge(args) -> dict:
    """One matrix from the JSON of several runs (e.g. one per model, run side by side)."""
    models: dict = {}
    recordings: dict = {}
    rows: list = []
    for path in args.merge:
        part = json.loads(Path(path).read_text())
        if part.get("clustering") != args.clustering:
            raise SystemExit(f"{path}: clustering {part.get('clustering')!r}, not {args.clustering!r}")
        models.update(part["models"])
        recordings.update({(r["source"], r["name"]): r for r in part["recordings"]})
        rows += part["rows"]
    args.vad = json.loads(Path(args.merge[0]).read_text())["vad"]
    return _matrix_result(args, models, list(recordings.values()), rows)


def matrix_markdown(result: dict) -> str:
    """The matrix as a markdown table (tuning sources, then held-out ones, then the pooled rows)."""
    lines = [
        f"Clustering `{result['clustering']}`, VAD `{result['vad']}`, collar 0.25 s each side, overlap scored; "
        f"DER/JER in %, count exact = recordings whose estimated speaker count is the true one; "
        f"bound = DER estimated <= 1.3 x DER given + 1; missed and false alarm with the count given.",
        "",
        "| model | source | recordings | hours | DER est. | DER given | count exact | JER est. | JER given | bound "
        "| missed | false alarm | confusion est. | confusion given |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = sorted(result["cells"].items(), key=lambda item: ("heldout" in item[0], "all " in item[0], item[0]))
    for key, cell in order:
        model, source = key.split(" | ")
        lines.append(
            f"| {model} | {source} | {cell['recordings']} | {cell['hours']} | {cell['der_estimated']} | "
            f"{cell['der_given']} | {cell['count_exact']}/{cell['recordings']} | {cell['jer_estimated']} | "
            f"{cell['jer_given']} | {'yes' if cell['bound_met'] else 'no'} | {cell['missed_given']} | "
            f"{cell['false_alarm_given']} | {cell['confusion_estimated']} | {cell['confusion_given']} |"
        )
    return "\n".join(lines) + "\n"


def _machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["speed", "quality", "memory", "matrix", "once", "stage"])
    parser.add_argument("--model", default="b0", help="preset (random weights unless --checkpoint)")
    parser.add_argument(
        "--models", help="speed: presets to time, comma-separated (default b0,b2); matrix: model names to run"
    )
    parser.add_argument("--checkpoint", help="a trained checkpoint to use instead of random weights")
    parser.add_argument("--minutes", type=float, default=10.0, help="speed: length of the conversation")
    parser.add_argument("--speakers", default="2,4,6", help="quality: speaker counts")
    parser.add_argument("--conversations", type=int, default=3, help="quality: conversations per speaker count")
    parser.add_argument("--seconds", type=float, default=180.0, help="quality: length of each conversation")
    parser.add_argument("--vad", help="auto, silero or energy (default: auto; matrix: energy)")
    parser.add_argument("--clustering", default="spectral", help="a clustering method's name (diarize --clustering)")
    parser.add_argument(
        "--backend",
        help="speed: the model's PLDA back-end for --clustering vbx (e.g. made with diarize --save-windows)",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="windows per batch")
    parser.add_argument(
        "--no-context", action="store_true", help="quality: cluster each window alone (without its neighbours)"
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--workdir", help="where conversations are written and reused")
    parser.add_argument("--file", help="once/stage: the recording")
    parser.add_argument("--hours", type=float, default=10.0, help="memory: length of the recording")
    parser.add_argument("--stage", choices=["vad", "cluster"], help="stage: which stage")
    parser.add_argument("--windows", type=int, default=0, help="stage cluster: how many windows")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--voices", help="matrix: the corpora made by scripts/make_tts_voices.py")
    parser.add_argument("--sources", help=f"matrix: comma-separated subset of {','.join(MATRIX_SOURCES)}")
    parser.add_argument("--models-json", help="matrix: models.json (name -> checkpoint relative to the file)")
    parser.add_argument("--add-model", action="append", metavar="NAME=CKPT", help="matrix: one more model")
    parser.add_argument("--quick", action="store_true", help="matrix: six short recordings per source, no long ones")
    parser.add_argument("--markdown", help="matrix: also write the table here")
    parser.add_argument(
        "--embedding-cache",
        metavar="DIR",
        help="matrix: keep every recording's window embeddings here (per model), so runs with another "
        "--clustering skip the network",
    )
    parser.add_argument("--longest", type=float, metavar="S", help="matrix: leave out recordings longer than S seconds")
    parser.add_argument(
        "--prepare-only", action="store_true", help="matrix: write the recordings and their voice activity, then stop"
    )
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="matrix: one table from the JSON of several runs")
    parser.add_argument(
        "--count-bound",
        action="store_true",
        help="matrix (VBx): also the best count any single likelihood-ratio threshold could reach with the true "
        "speakers as clusters (an upper bound for threshold-based counting with the model's back-end)",
    )
    args = parser.parse_args()
    if args.vad is None:
        # the matrix measures the speaker count: the energy detector finds the simulated speech (Silero misses
        # much of the synthetic voices under channel noise); --vad auto measures the default pipeline instead
        args.vad = "energy" if args.mode == "matrix" else "auto"
    if args.mode in ("once", "stage"):
        print(json.dumps(run_once(args) if args.mode == "once" else stage_once(args)))
        return 0
    run = matrix_merge if args.mode == "matrix" and args.merge else None
    result = (run or {"speed": speed, "quality": quality, "memory": memory, "matrix": matrix}[args.mode])(args)
    text = json.dumps(result, indent=2)
    if args.mode == "matrix" and not args.prepare_only:
        table = matrix_markdown(result)
        print(table)
        for key, bound in result.get("count_bound", {}).items():
            print(
                f"{key}: the best single threshold counts {bound['best_single_threshold_right']}/{bound['recordings']} "
                f"right with the true speakers as clusters; {bound['right_with_a_threshold_of_their_own']} could be "
                "right with a threshold of their own"
            )
        if args.markdown:
            Path(args.markdown).write_text(table)
    else:
        print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
