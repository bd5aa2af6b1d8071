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

Results are printed as JSON (``--json FILE`` also writes them).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _conversation(workdir: Path, speakers: int, seconds: float, seed: int, pool: int = 0) -> Path:
    from redimnet.synth import generate_conversation

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

    if args.threads:
        torch.set_num_threads(args.threads)
    embedder = _embedder(args)
    diarizer = Diarizer(embedder, vad=args.vad, clustering=args.clustering, batch_windows=args.batch_size)
    started = time.perf_counter()
    result = diarizer.diarize(args.file)
    wall = time.perf_counter() - started
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
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": torch.get_num_threads(),
    }


def stage_once(args) -> dict:
    """One stage alone on a long recording, in this process: ``vad`` over the file, or ``cluster``
    (clustering with window context, then frame scoring into segments) on as many synthetic window
    embeddings as the recording would give (the subprocess side of ``memory``)."""
    import numpy as np

    from redimnet.diarization import AudioSource, Diarizer, SpectralClustering
    from redimnet.diarization.pipeline import DEFAULT_HOP, DEFAULT_WINDOW, plan_windows
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
    for model in args.models.split(","):
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
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        entry = json.loads(output.strip().splitlines()[-1])
        entry["model"] = model
        results.append(entry)
        print(json.dumps(entry), file=sys.stderr)
    return {"machine": _machine(), "generation_seconds": round(generated, 1), "runs": results}


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


def _machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["speed", "quality", "memory", "once", "stage"])
    parser.add_argument("--model", default="b0", help="preset (random weights unless --checkpoint)")
    parser.add_argument("--models", default="b0,b2", help="speed: presets to time, comma-separated")
    parser.add_argument("--checkpoint", help="a trained checkpoint to use instead of random weights")
    parser.add_argument("--minutes", type=float, default=10.0, help="speed: length of the conversation")
    parser.add_argument("--speakers", default="2,4,6", help="quality: speaker counts")
    parser.add_argument("--conversations", type=int, default=3, help="quality: conversations per speaker count")
    parser.add_argument("--seconds", type=float, default=180.0, help="quality: length of each conversation")
    parser.add_argument("--vad", default="auto", help="auto, silero or energy")
    parser.add_argument("--clustering", default="spectral", choices=["spectral", "ahc"])
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
    args = parser.parse_args()
    if args.mode in ("once", "stage"):
        print(json.dumps(run_once(args) if args.mode == "once" else stage_once(args)))
        return 0
    result = {"speed": speed, "quality": quality, "memory": memory}[args.mode](args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
