"""``redimnet vad``: speech regions of audio files, as RTTM with the label ``speech``.

With ``--segmentation MODEL`` the regions come from a segmentation network
instead of a voice activity detector, and ``--overlap`` writes the regions
where two or more people speak at once (label ``overlap``) instead.

``-o OUT.rttm`` writes one RTTM file for all recordings; any other ``-o``
is a folder receiving ``<recording>.rttm`` per input.  The recording id is
the input's id without its extension, ``/`` replaced by ``_``.  Exit
status: 0 every file processed, 1 some files failed (listed; the others are
written), 2 usage error.
"""

import argparse
import sys
from pathlib import Path
from typing import Callable, Dict, List, Tuple

from .._utils import threads
from .._utils.fileio import atomic_write
from .._utils.validation import at_least, within
from ..audio.read import AudioError, iter_inputs
from ..errors import RedimnetError
from .common import UsageError, show
from .outputs import FOLDER, RTTM, Inputs, check_output, output_below

DESCRIPTION = (
    "Find speech in audio files and write it as RTTM (label 'speech'). Exit status: 0 all files "
    "processed, 1 some files failed (the others are written), 2 usage error."
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "vad", help="voice activity detection (speech regions as RTTM)", description=DESCRIPTION
    )
    parser.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR", help="audio files and folders of audio files")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="OUT.rttm (one file for all recordings) or a folder (one RTTM per recording)",
    )
    parser.add_argument("--channel", type=int, default=None, help="use this channel (0-based) instead of the mean")
    add_vad_arguments(parser)
    add_segmentation_arguments(parser)
    parser.add_argument(
        "--overlap",
        action="store_true",
        help="write overlapped speech (two or more speakers at once, label 'overlap') instead of speech; "
        "needs --segmentation",
    )
    threads.add_threads_argument(parser)
    parser.set_defaults(handler=run)


def add_segmentation_arguments(parser: argparse.ArgumentParser) -> None:
    """The segmentation network and its overlap decision (shared with ``redimnet diarize``)."""
    from ..diarization.segmented import DEFAULT_MIN_OVERLAP, DEFAULT_OVERLAP_THRESHOLD

    group = parser.add_argument_group("segmentation (speech, speaker changes and overlap from a network)")
    group.add_argument(
        "--segmentation",
        metavar="MODEL",
        default=None,
        help="a segmentation network (trained with 'redimnet train --config segmentation_small'); "
        "replaces the voice activity detector",
    )
    group.add_argument(
        "--segmentation-step",
        type=float,
        default=None,
        metavar="S",
        help="seconds between the network's chunks (default: half a chunk)",
    )
    group.add_argument(
        "--overlap-threshold",
        type=float,
        default=None,
        metavar="P",
        help="a frame is overlapped only where the network gives two or more speakers together at least "
        "this probability, averaged over the chunks covering it, 0-1 "
        f"(default {DEFAULT_OVERLAP_THRESHOLD:g}; higher: less overlap found, less false overlap)",
    )
    group.add_argument(
        "--min-overlap",
        type=float,
        default=None,
        metavar="S",
        help=f"overlapped speech shorter than this counts as one speaker (default {DEFAULT_MIN_OVERLAP:g} s)",
    )


SEGMENTATION_OPTIONS = ("segmentation_step", "overlap_threshold", "min_overlap")


def segmenter_from_arguments(args, needing: Tuple[str, ...] = SEGMENTATION_OPTIONS):
    """The :class:`~redimnet.diarization.segmented.Segmenter` of ``--segmentation`` (None without it);
    the options named in ``needing`` are refused without it."""
    if args.segmentation is None:
        for name in needing:
            if getattr(args, name) is not None:
                raise UsageError(f"--{name.replace('_', '-')} needs --segmentation MODEL")
        return None
    from ..diarization.segmentation import load_segmentation
    from ..diarization.segmented import Segmenter

    if args.overlap_threshold is not None:
        within("--overlap-threshold", args.overlap_threshold, 0.0, 1.0)
    if args.min_overlap is not None:
        at_least("--min-overlap", args.min_overlap, 0.0, " s")
    if not Path(args.segmentation).is_file():
        raise UsageError(f"--segmentation {args.segmentation}: no such file")
    decision = {
        name: getattr(args, name) for name in ("overlap_threshold", "min_overlap") if getattr(args, name) is not None
    }
    return Segmenter(load_segmentation(args.segmentation), step=args.segmentation_step, **decision)


def add_vad_arguments(parser: argparse.ArgumentParser) -> None:
    """The detector and its thresholds (shared with ``redimnet diarize``)."""
    from ..diarization.vad import DEFAULT_MIN_SILENCE, DEFAULT_MIN_SPEECH, DEFAULT_PAD, VAD_NAMES

    group = parser.add_argument_group("voice activity detection")
    group.add_argument(
        "--vad",
        default="auto",
        choices=VAD_NAMES,
        help="detector: silero (needs redimnet[diarize]), energy, or auto = silero when installed, "
        "else energy (default auto)",
    )
    group.add_argument(
        "--vad-threshold",
        type=float,
        default=None,
        help="silero: speech probability that starts speech (default 0.5; speech ends 0.15 lower)",
    )
    group.add_argument(
        "--energy-margin",
        type=float,
        default=None,
        metavar="DB",
        help="energy: dB above the recording's noise floor that starts speech (default 12; speech ends 4 dB lower)",
    )
    group.add_argument(
        "--min-speech",
        type=float,
        default=DEFAULT_MIN_SPEECH,
        metavar="S",
        help=f"drop speech shorter than this (default {DEFAULT_MIN_SPEECH} s)",
    )
    group.add_argument(
        "--min-silence",
        type=float,
        default=DEFAULT_MIN_SILENCE,
        metavar="S",
        help=f"bridge pauses shorter than this (default {DEFAULT_MIN_SILENCE} s)",
    )
    group.add_argument(
        "--speech-pad",
        type=float,
        default=DEFAULT_PAD,
        metavar="S",
        help=f"widen every region by this on both sides (default {DEFAULT_PAD} s)",
    )


def vad_from_arguments(args):
    from ..diarization.vad import make_vad

    for name in ("min_speech", "min_silence", "speech_pad"):
        value = getattr(args, name)
        at_least(f"--{name.replace('_', '-')}", value, 0, " seconds")
    return make_vad(
        args.vad,
        threshold=args.vad_threshold,
        margin_db=args.energy_margin,
        min_speech=args.min_speech,
        min_silence=args.min_silence,
        pad=args.speech_pad,
    )


def recording_id(uid: str) -> str:
    """RTTM recording id of an input id: no extension, ``/`` and white space as ``_``."""
    stem = uid.rsplit(".", 1)[0] if "." in Path(uid).name else uid
    return "_".join(stem.replace("/", "_").split()) or "recording"


def collect_recordings(inputs) -> Tuple[List[Tuple[str, Path]], List[Tuple[str, str]]]:
    """``(recording id, path)`` for the inputs, and ``(input, reason)`` for inputs that cannot be listed."""
    items: List[Tuple[str, Path]] = []
    failures: List[Tuple[str, str]] = []
    seen: Dict[str, Path] = {}
    for name in inputs:
        try:
            for uid, path in iter_inputs([name], problems=failures):
                recording = recording_id(uid)
                if recording in seen:
                    raise UsageError(
                        f"two inputs give the recording id {recording!r} ({seen[recording]} and "
                        f"{path}); rename one or give their common folder"
                    )
                seen[recording] = path
                items.append((recording, path))
        except AudioError as error:
            failures.append((str(name), str(error)))
    return items, failures


def process_each(items, work: Callable[[str, Path], None], failures: List[Tuple[str, str]]) -> None:
    """Run ``work`` per recording; a recording's audio or input error is listed, the others go on."""
    for recording, path in items:
        try:
            work(recording, path)
        except RedimnetError as error:
            text = str(error)
            for prefix in (f"{path}: ", f"{recording}: "):  # the listing names the file already
                if text.startswith(prefix):
                    text = text[len(prefix) :]
                    break
            failures.append((str(path), text))
        except MemoryError:
            failures.append((str(path), "out of memory"))


def report_failures(failures) -> int:
    if not failures:
        return 0
    print(f"{len(failures)} input(s) failed:", file=sys.stderr)
    for path, reason in failures:
        print(f"  {show(path)}: {show(reason)}", file=sys.stderr)
    return 1


def run(args) -> int:
    from ..audio.stream import AudioSource
    from ..diarization.segments import Segment, format_rttm

    threads.configure(args.threads)
    segmenter = segmenter_from_arguments(args)
    if args.overlap and segmenter is None:
        raise UsageError(
            "--overlap needs --segmentation MODEL (a network trained with 'redimnet train --config segmentation_small')"
        )
    if segmenter is not None:
        from ..diarization.segmented import SegmentationVAD

        vad = SegmentationVAD(segmenter, min_speech=args.min_speech, min_silence=args.min_silence)
    else:
        vad = vad_from_arguments(args)
    label = "overlap" if args.overlap else "speech"
    items, failures = collect_recordings(args.inputs)
    inputs = Inputs(*(path for _, path in items))
    single = Path(args.output).suffix.lower() == ".rttm"
    output = check_output(args.output, RTTM if single else FOLDER, inputs)
    texts = []

    def work(recording: str, path: Path) -> None:
        target = output if single else output_below(output, recording, ".rttm", RTTM, inputs, "recording id")
        source = AudioSource(path, channel=args.channel, name=recording)
        if segmenter is not None:
            speech_regions, overlap_regions = vad.analyse(source)
            regions = overlap_regions if args.overlap else speech_regions
            segments = [Segment(round(s, 3), round(e, 3), label) for s, e in regions]
            speech = sum(e - s for s, e in speech_regions)
            overlapped = sum(e - s for s, e in overlap_regions)
            summary = (
                f"{len(speech_regions)} speech region(s), {speech:.1f} s of {source.duration:.1f} s, "
                f"{overlapped:.1f} s overlapped ({len(overlap_regions)} region(s))"
            )
        else:
            segments = vad.segments(source)
            speech = sum(s.duration for s in segments)
            summary = f"{len(segments)} speech region(s), {speech:.1f} s of {source.duration:.1f} s"
        text = format_rttm(segments, recording)
        print(f"{show(path)}: {summary}" + ("" if speech else " (no speech found)"), file=sys.stderr)
        if single:
            texts.append(text)
        else:
            with atomic_write(target, mode="w") as stream:
                stream.write(text)

    process_each(items, work, failures)
    if single and (texts or not failures):
        with atomic_write(output, mode="w") as stream:
            stream.write("".join(texts))
    return report_failures(failures)
