"""``redimnet prepare DATA_DIR -o OUT_DIR [--shards]``: training lists for a VoxCeleb-layout folder."""

import argparse
import dataclasses
import os
import sys

from .._utils.validation import at_least
from .outputs import FOLDER, TEXT_LIST, Inputs, check_output

REFUSED_LIST = "refused.tsv"


def register(subparsers):
    parser = subparsers.add_parser(
        "prepare",
        help="write wav.scp / utt2spk (and tar shards) for a speaker/video/utt.wav folder",
        description="Scan a VoxCeleb-layout folder (SPEAKER/VIDEO/UTTERANCE.wav) and write Kaldi-style lists "
        "(wav.scp, utt2spk, spk2utt) and a CSV list into OUT_DIR; with --shards also pack the audio "
        "into tar shards for streaming (OUT_DIR/shards/shards.json). Files that cannot be used "
        f"(symbolic links leading outside DATA_DIR, broken links, undecodable audio) are left out and "
        f"listed in OUT_DIR/{REFUSED_LIST}; the exit status is then 1.",
        epilog="exit status: 0 all files listed, 1 some files refused (listed in OUT_DIR/refused.tsv; the others "
        "are written), 2 usage or data error.",
    )
    parser.add_argument("data_dir", metavar="DATA_DIR", help="folder with SPEAKER/VIDEO/UTTERANCE audio files")
    parser.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="where the lists go")
    parser.add_argument("--ext", default=".wav,.flac", help="audio file extensions (default: .wav,.flac)")
    parser.add_argument("--shards", action="store_true", help="also write tar shards (OUT_DIR/shards)")
    parser.add_argument(
        "--utts-per-shard", type=int, default=1000, metavar="N", help="utterances per shard (default 1000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffled shard order")
    parser.add_argument(
        "--follow-symlinks",
        action="store_true",
        help="also accept symbolic links (to files or folders) whose target lies outside DATA_DIR; "
        "by default they are refused, so that nothing outside DATA_DIR is listed or packed",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import csv

    from .._utils.fileio import atomic_write
    from .._utils.names import printable
    from ..training.data import scan_data_folder, write_kaldi_lists, write_shards

    at_least("--utts-per-shard", args.utts_per_shard, 1)
    extensions = tuple(e if e.startswith(".") else f".{e}" for e in args.ext.lower().split(",") if e)
    scan = scan_data_folder(args.data_dir, extensions, follow_symlinks=args.follow_symlinks)
    # absolute paths: the lists are read from anywhere (relative ones count from the list's folder)
    utterances = [dataclasses.replace(u, path=os.path.abspath(u.path)) for u in scan.utterances]
    inputs = Inputs(*(u.path for u in utterances))
    out = check_output(args.output, FOLDER, inputs)
    for name in ("wav.scp", "utt2spk", "spk2utt", "list.csv", REFUSED_LIST):
        check_output(out / name, TEXT_LIST, inputs, option="")
    wav_scp, utt2spk = write_kaldi_lists(utterances, out)
    with open(out / "list.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["utt", "path", "speaker"])
        writer.writerows((u.utt, u.path, u.speaker) for u in utterances)
    speakers = len({u.speaker for u in utterances})
    print(f"{len(utterances)} utterances of {speakers} speakers: {wav_scp}, {utt2spk}, {out / 'list.csv'}")
    refused_path = out / REFUSED_LIST
    if scan.refused:
        with atomic_write(refused_path, mode="w") as stream:
            stream.write("path\treason\n" + "".join(f"{printable(p)}\t{printable(r)}\n" for p, r in scan.refused))
        for path, reason in scan.refused[:5]:
            print(f"redimnet: refused {printable(path)}: {printable(reason)}", file=sys.stderr)
        more = f" ({len(scan.refused) - 5} more)" if len(scan.refused) > 5 else ""
        print(
            f"redimnet: {len(scan.refused)} file(s) refused{more}, not listed or packed; see {refused_path}",
            file=sys.stderr,
        )
    elif refused_path.exists():
        refused_path.unlink()
    if args.shards:
        index = write_shards(utterances, out / "shards", args.utts_per_shard, args.seed, progress=sys.stderr.isatty())
        print(f"shards: {index}")
    return 1 if scan.refused else 0
