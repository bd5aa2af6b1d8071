"""``redimnet embed``: one speaker embedding per audio file, written to .npz, .npy files or Kaldi ark/scp.

Inputs are files, folders (searched recursively for audio) and ``--list``
files in Kaldi ``wav.scp`` form.  Utterance ids: the path relative to the
folder given (extension kept), the file name for a file given directly, the
first column of a ``wav.scp``.

Output (``-o``): ``NAME.npz`` (see :mod:`redimnet.embedding.io`), a folder
of ``<id>.npy`` files, or ``NAME.ark`` / ``NAME.scp`` (Kaldi, needs the
optional ``kaldiio`` package).  Rerunning with the same output skips the ids
already there; the output is replaced atomically.  Files that fail are listed
at the end and in ``NAME.failed.tsv`` (path, reason).

Exit status: 0 every file embedded, 1 some files failed (the others are
written), 2 usage error (bad options, unusable model or output).

Files go through the one embedding pipeline (:mod:`redimnet.embedding.pipeline`):
decoding and resampling run block by block in ``--decode-workers`` processes (one
thread each) while the model runs in the main process, so memory does not
grow with the length of a recording.  Under ``torchrun --nproc_per_node N`` each
rank embeds a share of the files and rank 0 writes the merged output.
"""

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .._utils import distributed, threads
from .._utils.validation import at_least
from ..audio import TARGET_SAMPLE_RATE, AudioError, iter_inputs, read_scp
from ..embedding.embedder import PRECISIONS
from ..embedding.io import EmbeddingsOutput, open_output
from ..embedding.pipeline import expected_length
from ..models.fingerprint import model_fingerprint
from .common import Parser, UsageError, reason, show
from .models import add_model_arguments, model_from_arguments
from .outputs import Inputs, check_output

FLUSH_SECONDS = 300.0


# --- options shared by embed / verify / enroll / identify -----------------------------------------
def add_embedder_arguments(
    parser: argparse.ArgumentParser, max_seconds: float = 60.0, overlap_seconds: float = 10.0, window_note: str = ""
) -> None:
    """Model choice plus the :class:`redimnet.embedding.embedder.Embedder` options (``max_seconds`` and
    ``overlap_seconds``: the window defaults of this verb; ``window_note`` ends the --max-seconds help)."""
    add_model_arguments(parser)
    group = parser.add_argument_group("inference")
    group.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    group.add_argument(
        "--precision",
        default="float32",
        choices=PRECISIONS,
        help="float32 (default); float16/bfloat16: autocast (float16 on GPU only); int8: the network "
        "quantised to 8-bit integers on the CPU, needs redimnet[int8] (faster, embeddings within "
        "about 0.99 cosine of float32; the first run quantises the model and caches it)",
    )
    group.add_argument(
        "--int8-calibration",
        action="append",
        default=None,
        metavar="AUDIO",
        help="with --precision int8: audio files or folders of speech like yours to calibrate the "
        "quantisation on (repeatable; a few minutes is enough; default: speech shipped with the package)",
    )
    group.add_argument(
        "--max-seconds",
        type=float,
        default=max_seconds,
        help="longer recordings are cut into overlapping windows of this length whose "
        f"embeddings are averaged (default {max_seconds:g}){window_note}",
    )
    group.add_argument(
        "--overlap-seconds", type=float, default=overlap_seconds, help=f"window overlap (default {overlap_seconds:g})"
    )
    group.add_argument(
        "--channel", type=int, default=None, help="use this channel (0-based) instead of averaging all channels"
    )
    group.add_argument("--trim-silence", action="store_true", help="cut leading/trailing silence first")
    group.add_argument("--batch-size", type=int, default=16, help="most equal-length inputs per batch (default 16)")
    group.add_argument("--no-optimize", action="store_true", help="do not apply redimnet.fast.optimize to the model")
    threads.add_threads_argument(group)


def embedder_from_arguments(args):
    """The :class:`redimnet.embedding.embedder.Embedder` the arguments describe."""
    from ..embedding.embedder import Embedder

    at_least("--batch-size", args.batch_size, 1)
    if args.int8_calibration and args.precision != "int8":
        raise UsageError("--int8-calibration is only used with --precision int8")
    threads.configure(args.threads, workers=getattr(args, "decode_workers", 0))
    return Embedder(
        model_from_arguments(args),
        device=args.device,
        precision=args.precision,
        optimize=not args.no_optimize,
        max_seconds=args.max_seconds,
        overlap_seconds=args.overlap_seconds,
        channel=args.channel,
        trim_silence=args.trim_silence,
        batch_size=args.batch_size,
        calibration=args.int8_calibration,
        cache_dir=getattr(args, "cache_dir", None),
        tune_threads=threads.tunable(args.threads),
    )


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "embed",
        help="speaker embeddings of audio files",
        description="Write one speaker embedding per audio file. Exit status: 0 all files embedded, "
        "1 some files failed (listed in OUT.failed.tsv; the others are written), 2 usage error.",
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", metavar="FILE_OR_DIR", help="audio files and folders of audio files")
    parser.add_argument(
        "--list",
        action="append",
        default=[],
        metavar="WAV_SCP",
        help="Kaldi-style list: 'UTTERANCE_ID PATH' per line (repeatable)",
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="OUT.npz, a folder for <id>.npy files, or OUT.ark / OUT.scp (Kaldi, needs redimnet[kaldi])",
    )
    parser.add_argument(
        "--decode-workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        metavar="N",
        help="processes decoding audio beside the model (default min(2, CPUs); 0 decodes in the main process)",
    )
    # the option's earlier name, kept working (not listed: 'serve --workers' counts server processes)
    parser.add_argument("--workers", dest="decode_workers", type=int, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_embedder_arguments(parser)


# --- inputs ----------------------------------------------------------------------------------------
def collect_inputs(inputs: Sequence[str], lists: Sequence[str]) -> Tuple[List[Tuple[str, Path]], List[Tuple[str, str]]]:
    """``(items, failures)``: ``(id, path)`` to embed, and ``(path, reason)`` for inputs already known bad."""
    items: List[Tuple[str, Path]] = []
    failures: List[Tuple[str, str]] = []
    for name in inputs:
        try:
            items.extend(iter_inputs([name], problems=failures))
        except AudioError as error:
            failures.append((str(name), reason(error, name)))
        except OSError as error:
            failures.append((str(name), error.strerror or str(error)))
    for scp in lists:
        items.extend(read_scp(scp))
    seen: Dict[str, Path] = {}
    duplicates: List[str] = []
    for uid, path in items:
        if uid in seen:
            duplicates.append(f"{uid!r} ({seen[uid]} and {path})")
        seen[uid] = path
    if duplicates:
        raise UsageError(
            f"{len(duplicates)} duplicate utterance id(s): {'; '.join(duplicates[:3])}. Ids are file "
            "names for files given directly; give their common folder instead, or use --list"
        )
    return items, failures


# --- the work --------------------------------------------------------------------------------------
def embed_items(
    embedder, items: Sequence[Tuple[str, Path]], workers: int, progress: bool, flush=None
) -> Tuple[Dict[str, np.ndarray], List[Tuple[str, str]], float]:
    """Embed ``items`` with the embedding pipeline (:meth:`redimnet.embedding.embedder.Embedder.run`).

    Returns ``(results by id, failures (path, reason), seconds of audio)``.
    """
    from tqdm import tqdm

    results: Dict[str, np.ndarray] = {}
    failures: List[Tuple[str, str]] = []
    audio_seconds = 0.0
    last_flush = time.monotonic()
    bar = tqdm(total=len(items), unit="file", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    try:
        for result in embedder.run([path for _, path in items], workers=workers):
            uid, path = items[result.index]
            if result.error is not None:
                failures.append((str(path), result.error))
            else:
                results[uid] = result.embedding
                audio_seconds += result.samples / TARGET_SAMPLE_RATE
            bar.update(1)
            if flush is not None and time.monotonic() - last_flush > FLUSH_SECONDS:
                flush(results)
                last_flush = time.monotonic()
    except KeyboardInterrupt:
        if flush is not None and results:
            flush(results)  # a rerun resumes from here
        raise
    finally:
        bar.close()
    return results, failures, audio_seconds


def _refuse_unwritable(output: EmbeddingsOutput, items: Sequence[Tuple[str, Path]]):
    """``(items the output can store, (path, reason) for the others)``: checked before any work is spent."""
    kept, refused = [], []
    for uid, path in items:
        why = output.refusal(uid)
        if why is None:
            kept.append((uid, path))
        else:
            refused.append((str(path), why))
    return kept, refused


def run(args) -> int:
    world = distributed.current_world()
    distributed.init(world)
    try:
        return _run(args, world)
    finally:
        distributed.finish(world)


def _run(args, world: distributed.World) -> int:
    at_least("--decode-workers", args.decode_workers, 0)
    if not args.inputs and not args.list:
        raise UsageError("nothing to embed: give audio files, folders or --list wav.scp")
    items, failures = collect_inputs(args.inputs, args.list)
    output = open_output(check_output(args.output, None, Inputs(*(path for _, path in items), *args.list)))
    done = output.done()
    todo = [(uid, path) for uid, path in items if uid not in done]
    skipped = len(items) - len(todo)
    todo, refused = _refuse_unwritable(output, todo)
    failures += refused
    todo.sort(key=lambda item: expected_length(item[1]))  # equal lengths end up in the same batch
    mine = distributed.shard(todo, world)
    started = time.monotonic()
    results: Dict[str, np.ndarray] = {}
    seconds = 0.0
    if todo:
        if world.distributed and (args.device or "cuda").startswith("cuda") and ":" not in (args.device or ""):
            import torch

            if torch.cuda.is_available():  # one GPU per rank
                args.device = f"cuda:{world.local_rank % torch.cuda.device_count()}"
        embedder = embedder_from_arguments(args)
        output.set_model(model_fingerprint(embedder.model))
        flush = output.write if not world.distributed else None
        results, bad, seconds = embed_items(
            embedder, mine, args.decode_workers, progress=world.is_main and not args.no_progress, flush=flush
        )
        failures += bad
    gathered = distributed.gather((results, failures, seconds), world)
    if not world.is_main:
        return int(distributed.broadcast(None, world))
    results, failures, seconds = {}, [], 0.0
    for part_results, part_failures, part_seconds in gathered:
        results.update(part_results)
        failures.extend(part_failures)
        seconds += part_seconds
    if results:
        paths = {uid: path for uid, path in items}
        for uid, why in output.write(results):  # normally none: refused ids were never embedded
            failures.append((str(paths.get(uid, uid)), why))
            results.pop(uid, None)
    failed_file = output.write_failures(failures)
    elapsed = max(time.monotonic() - started, 1e-9)
    summary = f"embedded {len(results)} file(s)"
    if results:
        summary += (
            f" ({seconds:.1f} s of audio) in {elapsed:.1f} s: {len(results) / elapsed:.2f} files/s, "
            f"{seconds / elapsed:.1f} s of audio per second"
        )
    if skipped:
        summary += f"; {skipped} already in {output.path}, skipped"
    print(summary, file=sys.stderr)
    if failures:
        print(f"{len(failures)} input(s) failed:", file=sys.stderr)
        for path, why in failures[:20]:
            print(f"  {show(path)}: {show(why)}", file=sys.stderr)
        if len(failures) > 20:
            print(f"  ... and {len(failures) - 20} more", file=sys.stderr)
        print(f"failures listed in {show(failed_file)}", file=sys.stderr)
    status = 1 if failures else 0
    distributed.broadcast(status, world)
    return status


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m redimnet.cli.embed ...``: the verb on its own (e.g. under torchrun)."""
    from . import program_ending, program_started, run_handler

    parser = Parser(prog="redimnet embed", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    if argv is not None:
        return run_handler(run, args)
    program_started()  # the program itself (this module is imported): see redimnet.cli.main
    try:
        return run_handler(run, args)
    finally:
        program_ending()


if __name__ == "__main__":
    sys.exit(main())
