"""``redimnet prepare DATA_DIR -o OUT_DIR [--shards]``: training lists for a VoxCeleb-layout folder."""

import argparse
import sys
from pathlib import Path


def register(subparsers):
    parser = subparsers.add_parser(
        "prepare", help="write wav.scp / utt2spk (and tar shards) for a speaker/video/utt.wav folder",
        description="Scan a VoxCeleb-layout folder (SPEAKER/VIDEO/UTTERANCE.wav) and write Kaldi-style lists "
                    "(wav.scp, utt2spk, spk2utt) and a CSV list into OUT_DIR; with --shards also pack the audio "
                    "into tar shards for streaming (OUT_DIR/shards/shards.json).")
    parser.add_argument("data_dir", metavar="DATA_DIR", help="folder with SPEAKER/VIDEO/UTTERANCE audio files")
    parser.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="where the lists go")
    parser.add_argument("--ext", default=".wav,.flac", help="audio file extensions (default: .wav,.flac)")
    parser.add_argument("--shards", action="store_true", help="also write tar shards (OUT_DIR/shards)")
    parser.add_argument("--utts-per-shard", type=int, default=1000, metavar="N",
                        help="utterances per shard (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffled shard order")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..training.data import scan_voxceleb_folder, write_kaldi_lists, write_shards

    if args.utts_per_shard < 1:
        raise UsageError(f"--utts-per-shard must be at least 1, got {args.utts_per_shard}")
    extensions = tuple(e if e.startswith(".") else f".{e}" for e in args.ext.lower().split(",") if e)
    utterances = scan_voxceleb_folder(args.data_dir, extensions)
    out = Path(args.output)
    wav_scp, utt2spk = write_kaldi_lists(utterances, out)
    with open(out / "list.csv", "w", encoding="utf-8", newline="") as handle:
        import csv
        writer = csv.writer(handle)
        writer.writerow(["utt", "path", "speaker"])
        writer.writerows((u.utt, u.path, u.speaker) for u in utterances)
    speakers = len({u.speaker for u in utterances})
    print(f"{len(utterances)} utterances of {speakers} speakers: {wav_scp}, {utt2spk}, {out / 'list.csv'}")
    if args.shards:
        index = write_shards(utterances, out / "shards", args.utts_per_shard, args.seed,
                             progress=sys.stderr.isatty())
        print(f"shards: {index}")
    return 0
