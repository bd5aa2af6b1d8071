"""``redimnet diarize``: who spoke when, one RTTM and one JSON per recording.

For each input recording ``OUT_DIR/<recording>.rttm`` (standard RTTM,
speakers ``SPEAKER_01``, ``SPEAKER_02``, ... in order of first appearance,
or enrolled names with ``--db``) and ``OUT_DIR/<recording>.json``
(segments, per-speaker totals, timings) are written; ``--plot`` adds
``OUT_DIR/<recording>.png``.  With ``--reference REF.rttm`` the DER and JER of each
recording are printed and the plot shows the reference too.

A recording without speech (or whose speech windows are all digital
silence) gets an empty RTTM and a message (exit 0); silent windows inside
speech are left out and counted in the message and the JSON.
Unreadable recordings are listed and the others processed (exit 1).
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from .._utils.fileio import atomic_write
from .._utils.optional import require
from .._utils.validation import at_least, positive
from ..audio import SILENCE_FLOOR_DBFS
from ..models.fingerprint import model_fingerprint
from .common import UsageError, show
from .embed import add_embedder_arguments, embedder_from_arguments
from .outputs import DIARIZATION_JSON, EMBEDDINGS, FOLDER, PNG, RTTM, Inputs, check_output, output_below
from .vad import (
    SEGMENTATION_OPTIONS,
    add_segmentation_arguments,
    add_vad_arguments,
    collect_recordings,
    process_each,
    report_failures,
    segmenter_from_arguments,
    vad_from_arguments,
)


def register(subparsers) -> None:
    from ..diarization.diarizer import (
        DEFAULT_CLUSTER_SECONDS,
        DEFAULT_HOP,
        DEFAULT_MIN_CLEAN,
        DEFAULT_SPEAKER_EMBEDDINGS,
        DEFAULT_WINDOW,
        SPEAKER_EMBEDDINGS,
    )
    from ..diarization.methods import CLUSTERING_NAMES

    parser = subparsers.add_parser(
        "diarize",
        help="speaker diarization (who spoke when) to RTTM and JSON",
        description="Speaker diarization: voice activity, ReDimNet embeddings of sliding windows, clustering; "
        "with --segmentation, a segmentation network finds speech, speaker changes and overlapped speech "
        "(two speakers at once). "
        "Exit status: 0 all recordings processed, 1 some failed (the others are written), "
        "2 usage error.",
    )
    parser.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR", help="audio files and folders of audio files")
    parser.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="folder for the results")
    count = parser.add_argument_group("number of speakers (default: estimated, 1 to 20)")
    count.add_argument("--num-speakers", type=int, default=None, metavar="N", help="exactly N speakers")
    count.add_argument("--min-speakers", type=int, default=None, metavar="A", help="at least A speakers")
    count.add_argument("--max-speakers", type=int, default=None, metavar="B", help="at most B speakers")
    group = parser.add_argument_group("diarization")
    group.add_argument(
        "--clustering",
        default="auto",
        choices=["auto", *CLUSTERING_NAMES],
        help="how speakers are counted and grouped: vbx (Bayesian HMM clustering with the model's PLDA back-end), "
        "spectral (eigengap counting), ahc (agglomerative with a threshold); auto (default): vbx when the "
        "model has a back-end (--backend, or <weights>.diarization.npz next to a --checkpoint), else spectral",
    )
    group.add_argument(
        "--backend",
        metavar="B.npz",
        help="PLDA back-end of the model for --clustering vbx/auto (made with 'redimnet backend train' from "
        "window embeddings of known speakers, see --save-windows); default: <weights>.diarization.npz",
    )
    group.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="ahc: cosine similarity below which clusters are not merged (default 0.5)",
    )
    group.add_argument(
        "--window", type=float, default=DEFAULT_WINDOW, help=f"window seconds (default {DEFAULT_WINDOW})"
    )
    group.add_argument("--hop", type=float, default=DEFAULT_HOP, help=f"hop between windows (default {DEFAULT_HOP})")
    group.add_argument(
        "--db",
        metavar="DB",
        help="speaker database (redimnet enroll; a SQLite file or a postgresql:// URL): name clusters that match "
        "an enrolled speaker",
    )
    # the option's earlier name, kept working for existing scripts (not listed in --help)
    group.add_argument("--speakers-db", dest="db", metavar="DB", help=argparse.SUPPRESS)
    group.add_argument(
        "--name-threshold",
        type=float,
        default=0.5,
        help="with --db: cosine score a cluster needs to take a name (default 0.5)",
    )
    group.add_argument(
        "--reference",
        metavar="RTTM",
        help="reference RTTM (file or folder): print the DER and JER of each recording, plot it too",
    )
    group.add_argument("--plot", action="store_true", help="also write a timeline OUT_DIR/<recording>.png")
    group.add_argument(
        "--save-windows",
        metavar="W.npz",
        help="with --reference: also write the vectors the clustering works on (each window's embedding with "
        "its context) of the windows that one reference speaker speaks alone, with ids "
        "<recording>:<speaker>/<start>, for 'redimnet backend train' (a back-end for vbx)",
    )
    add_vad_arguments(parser)
    add_segmentation_arguments(parser)
    group = parser.add_argument_group("with --segmentation")
    group.add_argument(
        "--min-clean",
        type=float,
        default=None,
        metavar="S",
        help="the least speech of a local speaker (one chunk's speaker) that is embedded "
        f"(default {DEFAULT_MIN_CLEAN:g} s)",
    )
    group.add_argument(
        "--cluster-seconds",
        type=float,
        default=None,
        metavar="S",
        help="local speakers with less embedded speech are only assigned to the clusters the others make "
        f"(default {DEFAULT_CLUSTER_SECONDS:g} s)",
    )
    group.add_argument(
        "--embed-every",
        type=int,
        default=None,
        metavar="N",
        help="embed the local speakers of every N-th chunk only; the others follow the chunks beside them "
        "(2: about half as many embeddings; default 1)",
    )
    group.add_argument(
        "--speaker-embeddings",
        choices=SPEAKER_EMBEDDINGS,
        default=None,
        help="where the speakers come from: windows over the speech, as without --segmentation, overlapped "
        "speech going to the two local speakers there (windows); each local speaker's own clean speech "
        "(local; --min-clean, --cluster-seconds and --embed-every apply to it only); auto = windows with "
        f"--num-speakers, local without (default {DEFAULT_SPEAKER_EMBEDDINGS})",
    )
    add_embedder_arguments(parser)
    parser.set_defaults(handler=run, batch_size=32)


def _check_counts(args) -> None:
    if args.num_speakers is not None:
        if args.min_speakers is not None or args.max_speakers is not None:
            raise UsageError("give either --num-speakers or --min-speakers/--max-speakers, not both")
        at_least("--num-speakers", args.num_speakers, 1)
    low = 1 if args.min_speakers is None else args.min_speakers
    at_least("--min-speakers", low, 1)
    if args.max_speakers is not None and args.max_speakers < low:
        raise UsageError(f"--max-speakers ({args.max_speakers}) is smaller than --min-speakers ({low})")


def run(args) -> int:
    from ..audio.stream import AudioSource
    from ..diarization.der import DEFAULT_COLLAR, diarization_error
    from ..diarization.diarizer import Diarizer
    from ..diarization.segments import label_spans
    from ..embedding.io import save_embeddings
    from ..speakers.stores import is_url
    from .der import read_rttms

    _check_counts(args)
    if args.db and not is_url(args.db) and not Path(args.db).is_file():
        raise UsageError(f"--db {show(args.db)}: no such file; enrol speakers with redimnet enroll")
    references = read_rttms(args.reference) if args.reference else None
    if args.save_windows and references is None:
        raise UsageError("--save-windows needs --reference: the windows are labelled with its speakers")
    items, failures = collect_recordings(args.inputs)
    reference_files = sorted(Path(args.reference).rglob("*.rttm")) if args.reference else []
    inputs = Inputs(*(path for _, path in items), args.reference, *reference_files, args.db)
    output = check_output(args.output, FOLDER, inputs)
    windows_file = check_output(args.save_windows, EMBEDDINGS, inputs, "--save-windows") if args.save_windows else None
    if args.plot:
        require("matplotlib", "--plot")  # before the work
    vad = vad_from_arguments(args)
    pipeline = {}
    if args.min_clean is not None:
        positive("--min-clean", args.min_clean)
        pipeline["min_clean"] = args.min_clean
    if args.cluster_seconds is not None:
        at_least("--cluster-seconds", args.cluster_seconds, 0.0, " s")
        pipeline["cluster_seconds"] = args.cluster_seconds
    if args.embed_every is not None:
        at_least("--embed-every", args.embed_every, 1)
        pipeline["embed_every"] = args.embed_every
    if args.speaker_embeddings is not None:
        pipeline["speaker_embeddings"] = args.speaker_embeddings
    segmenter = segmenter_from_arguments(
        args, SEGMENTATION_OPTIONS + ("min_clean", "cluster_seconds", "embed_every", "speaker_embeddings")
    )
    embedder = embedder_from_arguments(args)
    diarizer = Diarizer(
        embedder,
        vad=vad,
        clustering=_clustering(args),
        window=args.window,
        hop=args.hop,
        batch_windows=max(args.batch_size, 1),
        speakers_db=args.db,
        name_threshold=args.name_threshold,
        keep_embeddings=bool(args.save_windows),
        segmentation=segmenter,
        **pipeline,
    )
    total_audio = total_time = 0.0
    saved_ids: list = []
    saved_rows: list = []

    def target(recording: str, suffix: str, kind):
        return output_below(output, recording, suffix, kind, inputs, "recording id")

    def work(recording: str, path: Path) -> None:
        nonlocal total_audio, total_time
        rttm, json_file = target(recording, ".rttm", RTTM), target(recording, ".json", DIARIZATION_JSON)
        picture = target(recording, ".png", PNG) if args.plot else None
        source = AudioSource(path, channel=args.channel, name=recording)
        result = diarizer.diarize(
            source,
            num_speakers=args.num_speakers,
            min_speakers=args.min_speakers or 1,
            max_speakers=args.max_speakers,
            recording=recording,
        )
        with atomic_write(rttm, mode="w") as stream:
            stream.write(result.to_rttm())
        with atomic_write(json_file, mode="w") as stream:
            stream.write(result.to_json() + "\n")
        total_audio += result.duration
        total_time += result.timings.get("total", 0.0)
        line = f"{show(path)}: "
        silent = result.silent_windows
        if not result:
            line += f"no speech found in {result.duration:.1f} s"
            if silent:
                line += f" (the {silent} window(s) over its speech regions are all below {SILENCE_FLOOR_DBFS:g} dBFS)"
            line += "; wrote an empty RTTM"
        else:
            # with overlap, segments cover some speech twice: count the speech regions instead
            speech = (
                sum(e - s for s, e in result.speech) if result.overlap is not None else sum(s.duration for s in result)
            )
            line += (
                f"{len(result.speakers)} speaker(s), {len(result)} segment(s), "
                f"{speech:.1f} s of speech in {result.duration:.1f} s "
                f"(real-time factor {result.timings['total'] / max(result.duration, 1e-9):.3f})"
            )
            if result.overlap is not None:
                line += f"; {sum(e - s for s, e in result.overlap):.1f} s overlapped"
            if result.speaker_count.get("uncertain"):
                line += "; the number of speakers is uncertain (speaker_count in the JSON says why)"
            if silent:
                line += f"; {silent} silent window(s) (below {SILENCE_FLOOR_DBFS:g} dBFS) left out"
        reference = None
        if references is not None:
            reference = references.get(recording)
            if reference is None:
                line += f"; no reference for {recording!r}"
            else:
                score = diarization_error(reference, result)
                der = f"{100 * score.der:.2f} %" if score.defined else "undefined (no reference speech to score)"
                line += f"; DER {der}, JER {100 * score.jer:.2f} % (collar {DEFAULT_COLLAR} s)"
                if args.save_windows and result.window_spans is not None and result.window_embeddings is not None:
                    labels = label_spans(reference, result.window_spans[:, 0], result.window_spans[:, 1])
                    for (start, _), label, row in zip(result.window_spans, labels, result.window_embeddings):
                        if label is not None:
                            saved_ids.append(f"{recording}:{label}/{start:.2f}")
                            saved_rows.append(row)
        print(line, file=sys.stderr)
        if picture is not None:
            from ..diarization.plot import plot_timeline

            plot_timeline(picture, result, reference, title=recording, duration=result.duration)

    process_each(items, work, failures)  # the output folder is made by the first file written into it
    if windows_file is not None:
        if not saved_rows:
            raise UsageError("--save-windows: no window lies within one reference speaker's speech; check --reference")
        save_embeddings(windows_file, saved_ids, np.stack(saved_rows), model=model_fingerprint(embedder.model))
        print(f"wrote {len(saved_rows)} labelled window embeddings to {show(windows_file)}", file=sys.stderr)
    if total_audio:
        print(f"diarized {total_audio:.1f} s of audio in {total_time:.1f} s into {output}", file=sys.stderr)
    return report_failures(failures)


def _clustering(args):
    """The clustering the arguments ask for, with the model's back-end where one is given or found."""
    from ..diarization.methods import make_clustering
    from ..diarization.vbx import backend_beside

    if args.threshold is not None and args.clustering != "ahc":
        raise UsageError("--threshold applies to --clustering ahc")
    backend = args.backend
    if backend is not None:
        if args.clustering not in ("auto", "vbx"):
            raise UsageError(f"--backend applies to --clustering vbx (or auto), not {args.clustering}")
        if not Path(backend).is_file():
            raise UsageError(f"--backend {backend}: no such file; make one with 'redimnet backend train'")
    elif args.clustering in ("auto", "vbx") and getattr(args, "checkpoint", None):
        beside = backend_beside(args.checkpoint)
        backend = str(beside) if beside.is_file() else None
    name = args.clustering
    if name == "auto":
        name = "vbx" if backend is not None else "spectral"
    return make_clustering(name, args.threshold, backend)
