"""Overlapped speech: what a segmentation network changes in diarization, on held-out conversations.

Run from the project root::

    python benchmarks/segmentation.py quality --segmentation SEG.pt --checkpoint EMB.pt \
        --voices VOICES --part heldout --workdir /tmp/overlap-bench --json quality.json
    python benchmarks/segmentation.py speed --segmentation SEG.pt --model b0 --hours 1 --threads 1

``quality`` simulates (:mod:`redimnet.testing.simulation`, written once
into ``--workdir`` and reused) two sets of conversations of 2-4 speakers
from voices of the ``--part`` (``tune`` for tuning, ``heldout`` for
reporting) of the corpora made by ``scripts/make_tts_voices.py``
(festival/flite and espeak-ng voices) and of the synthetic generator:

* *overlap-rich*: the simulator asked for 25 % of the speech overlapped (the
  measured share of every conversation is reported; the set's is about 20 %),
* *overlap-free*: no overlap.

Held-out conversations use their own channels: every band (full, telephone,
random) and rooms with RT60 0.45-0.8 s (``ChannelSpace(rt60=(0.45, 0.8))``);
the tune part draws RT60 0.15-0.7 s.  The ``segmentation_small`` recipe draws
its training channels from broad ranges that hold both (every band, RT60
0.1-1.0 s; before, full and random bands and RT60 0.15-0.45 s, which left the
held-out channels unheard).  Each conversation is
diarized by the embedding-only pipeline (``--vad``, spectral clustering)
and with the segmentation network (``--segmentation``), each with the
number of speakers estimated and given; the report has, per set, DER (and
its parts) and JER with a 0.25 s collar and overlap scored, summed over the
conversations, and the segmentation network's overlap detection: precision
and recall of the time it marks as overlapped (two or more speakers)
against the reference's, exactly, without a collar.

``speed`` writes (or reuses) one conversation of ``--hours`` (held-out
voices, 6 speakers, 10 % overlap) and diarizes it with the segmentation
network in a fresh subprocess with ``--threads`` torch threads, reporting
the seconds and real-time factor of each stage (wall clock), the process's
CPU time for the whole diarization and its real-time factor (``cpu_rtf``:
on a loaded machine the wall clock says more about the other jobs than
about the pipeline) and the subprocess's peak resident memory
(``ru_maxrss``).  ``--file`` diarizes that recording instead (e.g. a
ten-hour one made by joining copies of the one-hour one).  Speed does not depend on the weights:
``--model b0`` without ``--checkpoint`` has random weights.

Results are printed as JSON (``--json FILE`` also writes them).
"""

import argparse
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ENGINES = ("festflite", "espeak", "synth")
# (name, speakers, seconds): one conversation of each per engine and set
CONVERSATIONS = [("2spk-a", 2, 120), ("2spk-b", 2, 180), ("3spk-a", 3, 150), ("3spk-b", 3, 210), ("4spk", 4, 240)]
SETS = {"overlap-rich": 0.25, "overlap-free": 0.0}
HELD_OUT_RT60 = (0.45, 0.8)  # reverberation of the held-out part


def _matrix_module():
    """``benchmarks/diarization.py`` (its voice pools: the same held-out voices as the diarization matrix)."""
    spec = importlib.util.spec_from_file_location("diarization_benchmark", Path(__file__).with_name("diarization.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def conversations(args) -> list:
    """Write (or reuse) the conversations of ``--part``; their descriptions."""
    import numpy as np

    from redimnet.testing.simulation import ChannelSpace, ConversationSimulator

    matrix = _matrix_module()
    workdir = Path(args.workdir)
    space = ChannelSpace(rt60=HELD_OUT_RT60) if args.part == "heldout" else ChannelSpace()
    found = []
    for number, engine in enumerate(ENGINES):
        pools = matrix._voice_pools(engine, args.part, args.voices)
        for set_number, (name, overlap) in enumerate(SETS.items()):
            for index, (label, count, seconds) in enumerate(CONVERSATIONS[: args.conversations]):
                seed = 7000 + 1000 * number + 100 * set_number + index + (0 if args.part == "heldout" else 50)
                rng = np.random.default_rng(seed)
                speakers = matrix._pick_speakers(pools, count, 0, rng)
                path = workdir / args.part / name / f"{engine}-{label}.wav"
                if not path.exists() or not path.with_suffix(".rttm").exists():
                    simulator = ConversationSimulator(
                        speakers, overlap=overlap, turn_variation=0.5, channel_space=space, turn_seconds=4.0
                    )
                    simulator.write(path, seconds, seed=seed, recording=path.stem)
                found.append({"set": name, "engine": engine, "path": str(path), "speakers": count, "seconds": seconds})
    return found


def _embedder(args):
    """The diarization benchmark's embedder (``--checkpoint``, else ``--model`` with seeded random weights)."""
    return _matrix_module()._embedder(argparse.Namespace(**vars(args), batch_size=32))


def _overlap_decision(args) -> dict:
    """``Segmenter`` arguments of ``--overlap-threshold`` (``none``: the most probable class) and ``--min-overlap``."""
    from redimnet.diarization.segmented import DEFAULT_MIN_OVERLAP, DEFAULT_OVERLAP_THRESHOLD

    threshold = DEFAULT_OVERLAP_THRESHOLD if args.overlap_threshold is None else args.overlap_threshold
    return {
        "overlap_threshold": None if threshold == "none" else float(threshold),
        "min_overlap": DEFAULT_MIN_OVERLAP if args.min_overlap is None else args.min_overlap,
    }


def _speaker_embeddings(args) -> dict:
    """The diarizer's ``speaker_embeddings`` argument of ``--speaker-embeddings`` (default: its own)."""
    from redimnet.diarization.diarizer import DEFAULT_SPEAKER_EMBEDDINGS

    return {"speaker_embeddings": args.speaker_embeddings or DEFAULT_SPEAKER_EMBEDDINGS}


def quality(args) -> dict:
    import torch

    from redimnet.diarization import Diarizer, read_rttm
    from redimnet.diarization.der import DERScore, diarization_error
    from redimnet.diarization.segmentation import load_segmentation
    from redimnet.diarization.segmented import Segmenter
    from redimnet.diarization.segments import intersection_seconds, overlap_regions
    from redimnet.diarization.vad import make_vad

    torch.set_num_threads(args.threads or 1)
    recordings = conversations(args)
    embedder = _embedder(args)
    segmenter = Segmenter(load_segmentation(args.segmentation), step=args.step, **_overlap_decision(args))
    systems = {
        "embeddings only": Diarizer(embedder, vad=make_vad(args.vad)),
        "with segmentation": Diarizer(
            embedder,
            segmentation=segmenter,
            min_clean=args.min_clean,
            cluster_seconds=args.cluster_seconds,
            embed_every=args.embed_every,
            **_speaker_embeddings(args),
        ),
    }
    if args.only_segmentation:
        del systems["embeddings only"]
    rows = []
    for item in recordings:
        path = Path(item["path"])
        reference = read_rttm(path.with_suffix(".rttm"))[path.stem]
        union = sum(e - s for s, e in overlap_regions(reference, 1))
        truth = overlap_regions(reference)
        row = dict(item, overlap_share=round(sum(e - s for s, e in truth) / union, 4) if union else 0.0)
        for system, diarizer in systems.items():
            for count in ("estimated", "given"):
                result = diarizer.diarize(path, num_speakers=item["speakers"] if count == "given" else None)
                score = diarization_error(reference, result, collar=0.25)
                row[f"{system}, {count}"] = {
                    **{k: getattr(score, k) for k in ("total", "missed", "false_alarm", "confusion")},
                    "speakers": score.speakers,
                    "speaker_error": score.speaker_error,
                    "speakers_found": len(result.speakers),
                    "seconds": result.timings.get("total", 0.0),
                }
                if system == "with segmentation" and count == "given":
                    found = [list(r) for r in result.overlap or []]
                    row["overlap_found"] = sum(e - s for s, e in found)
                    row["overlap_true"] = sum(e - s for s, e in truth)
                    row["overlap_hit"] = intersection_seconds(found, truth)
        parts = ("total", "missed", "false_alarm", "confusion")
        ders = [
            f"{k} DER {100 * DERScore(**{x: v[x] for x in parts}).der:.1f}"
            for k, v in row.items()
            if isinstance(v, dict)
        ]
        print(
            f"{path.parent.name}/{path.name}: overlap {100 * row['overlap_share']:.1f} %, " + ", ".join(ders),
            file=sys.stderr,
        )
        rows.append(row)
    table = {}
    for name in SETS:
        members = [r for r in rows if r["set"] == name]
        cell = {"conversations": len(members), "hours": round(sum(r["seconds"] for r in members) / 3600, 3)}
        union = sum(r["overlap_true"] for r in members)
        speech = sum(r["with segmentation, given"]["total"] for r in members)
        cell["overlap_percent_of_speech_time"] = round(100 * union / max(speech, 1e-9), 2)
        found, hit = sum(r["overlap_found"] for r in members), sum(r["overlap_hit"] for r in members)
        cell["overlap_precision"] = round(hit / found, 3) if found else None
        cell["overlap_recall"] = round(hit / union, 3) if union else None
        cell["overlap_found_seconds"], cell["overlap_true_seconds"] = round(found, 1), round(union, 1)
        for system in systems:
            for count in ("estimated", "given"):
                total = DERScore()
                for r in members:
                    total += DERScore(
                        **{k: v for k, v in r[f"{system}, {count}"].items() if k in DERScore.__dataclass_fields__}
                    )
                exact = sum(r[f"{system}, {count}"]["speakers_found"] == r["speakers"] for r in members)
                cell[f"{system}, {count}"] = {
                    "der": round(100 * total.der, 2),
                    "missed": round(100 * total.missed / total.total, 2),
                    "false_alarm": round(100 * total.false_alarm / total.total, 2),
                    "confusion": round(100 * total.confusion / total.total, 2),
                    "jer": round(100 * total.jer, 2),
                    "count_exact": exact,
                }
        table[name] = cell
    return {
        "part": args.part,
        "segmentation": args.segmentation,
        "embedding_model": args.checkpoint or f"{args.model} (random weights)",
        "vad": args.vad,
        "step": args.step,
        **_overlap_decision(args),
        "min_clean": args.min_clean,
        "cluster_seconds": args.cluster_seconds,
        "embed_every": args.embed_every,
        "speaker_embeddings": _speaker_embeddings(args)["speaker_embeddings"],
        "collar": 0.25,
        "machine": _machine(),
        "sets": table,
        "conversations": rows,
    }


def _long_conversation(args) -> Path:
    import numpy as np

    from redimnet.testing.simulation import ChannelSpace, ConversationSimulator

    matrix = _matrix_module()
    path = Path(args.workdir) / f"long-{args.hours:g}h.wav"
    if not path.exists() or not path.with_suffix(".rttm").exists():
        rng = np.random.default_rng(99)
        speakers = []
        for engine in ENGINES:
            speakers += matrix._pick_speakers(matrix._voice_pools(engine, "heldout", args.voices), 2, 0, rng)
        simulator = ConversationSimulator(speakers, overlap=0.1, channel_space=ChannelSpace(rt60=HELD_OUT_RT60))
        started = time.perf_counter()
        simulator.write(path, args.hours * 3600, seed=99, recording=path.stem)
        print(f"wrote {path} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return path


def run_once(args) -> dict:
    """Diarize one file in this process; timings and peak memory (the subprocess side of ``speed``)."""
    import torch

    from redimnet.diarization import Diarizer
    from redimnet.diarization.segmented import make_segmenter

    torch.set_num_threads(args.threads or 1)
    segmenter = make_segmenter(args.segmentation, args.step, **_overlap_decision(args))
    diarizer = Diarizer(
        _embedder(args), segmentation=segmenter, embed_every=args.embed_every, **_speaker_embeddings(args)
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    result = diarizer.diarize(args.file, num_speakers=6)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "duration": result.duration,
        "wall": wall,
        "cpu_seconds": round(cpu, 2),
        "cpu_rtf": round(cpu / result.duration, 5),
        "timings": result.timings,
        "rtf": {k: v / result.duration for k, v in result.timings.items()},
        "local_speakers_embedded": result.windows,
        "speakers": len(result.speakers),
        "overlap_seconds": sum(e - s for s, e in result.overlap or []),
        "peak_rss_mb": round(peak, 1),
    }


def speed(args) -> dict:
    path = Path(args.file) if args.file else _long_conversation(args)
    command = [sys.executable, __file__, "once", "--file", str(path), "--segmentation", args.segmentation]
    command += ["--model", args.model, "--threads", str(args.threads or 1)]
    command += ["--checkpoint", args.checkpoint] if args.checkpoint else []
    command += ["--step", str(args.step)] if args.step else []
    command += ["--overlap-threshold", str(args.overlap_threshold)] if args.overlap_threshold is not None else []
    command += ["--min-overlap", str(args.min_overlap)] if args.min_overlap is not None else []
    command += ["--embed-every", str(args.embed_every)]
    command += ["--speaker-embeddings", args.speaker_embeddings] if args.speaker_embeddings else []
    before = os.getloadavg()
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    return {
        "hours": round(result["duration"] / 3600, 3),
        "file": str(path),
        "model": args.checkpoint or f"{args.model} (random weights)",
        "threads": args.threads or 1,
        **result,
        "load_before": [round(x, 2) for x in before],
        "machine": _machine(),
    }


def _machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("mode", choices=["quality", "speed", "once"])
    parser.add_argument("--segmentation", required=True, help="the segmentation network")
    parser.add_argument("--checkpoint", help="embedding model (default: --model with random weights)")
    parser.add_argument("--model", default="b0")
    parser.add_argument("--voices", help="the corpora made by scripts/make_tts_voices.py")
    parser.add_argument("--part", choices=["tune", "heldout"], default="heldout")
    parser.add_argument("--conversations", type=int, default=len(CONVERSATIONS), help="per engine and set (1-5)")
    parser.add_argument("--workdir", default="segmentation-bench", help="conversations are written here and reused")
    parser.add_argument("--vad", default="auto", help="the embedding-only pipeline's VAD")
    parser.add_argument("--step", type=float, default=None, help="seconds between segmentation chunks")
    parser.add_argument(
        "--overlap-threshold",
        default=None,
        help="the segmenter's overlap_threshold (a number or none; default: its own)",
    )
    parser.add_argument("--min-overlap", type=float, default=None, help="the segmenter's min_overlap, seconds")
    parser.add_argument("--min-clean", type=float, default=1.0)
    parser.add_argument("--embed-every", type=int, default=1, help="the diarizer's embed_every")
    parser.add_argument("--cluster-seconds", type=float, default=2.0)
    parser.add_argument(
        "--speaker-embeddings",
        choices=["auto", "windows", "local"],
        default=None,
        help="the diarizer's speaker_embeddings (default: its own)",
    )
    parser.add_argument(
        "--only-segmentation", action="store_true", help="quality: leave out the embedding-only pipeline (tuning)"
    )
    parser.add_argument("--hours", type=float, default=1.0, help="speed: length of the recording")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--file", help="once, speed: the recording (speed: instead of writing one of --hours)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if args.mode == "once":
        print(json.dumps(run_once(args)))
        return 0
    result = {"quality": quality, "speed": speed}[args.mode](args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
