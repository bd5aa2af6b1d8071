"""Write a large verification trial list for a folder of speakers.

Every same-speaker pair of utterances, and a given number of different-speaker pairs drawn at
random (without repeats), in the VoxCeleb format (``1|0 UTT_A UTT_B``, ids relative to the
folder).  The speaker of an utterance is its first path component (``SPEAKER/.../NAME.wav``).

Small trial lists cannot resolve small differences: with 630 target trials one trial moves the
EER by 0.16 points.  This list has tens of thousands of target trials for a folder of a few
dozen speakers with 30 utterances each.

    python scripts/make_trials.py voices/heldout-festflite heldout-festflite_all_trials.txt --nontarget 100000
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from redimnet.evaluation.score_norm import speaker_of

Trial = Tuple[int, str, str]


def utterances(folder: Path, ext: str = ".wav") -> List[str]:
    """Audio files below ``folder`` (relative, POSIX separators, sorted), at least one folder deep."""
    found = sorted(p.relative_to(folder).as_posix() for p in folder.rglob(f"*{ext}") if p.is_file())
    return [u for u in found if "/" in u]


def make_trials(utts: Sequence[str], nontarget: int, seed: int = 0) -> List[Trial]:
    """All same-speaker pairs of ``utts`` (targets, label 1), then ``nontarget`` different-speaker
    pairs (label 0) drawn with ``seed``, each pair at most once, sorted."""
    by_speaker: Dict[str, List[str]] = {}
    for utt in utts:
        by_speaker.setdefault(speaker_of(utt), []).append(utt)
    targets = [(1, a, b) for group in by_speaker.values() for a, b in itertools.combinations(sorted(group), 2)]
    sizes = [len(group) for group in by_speaker.values()]
    possible = (sum(sizes) ** 2 - sum(n * n for n in sizes)) // 2
    if nontarget > possible:
        raise ValueError(f"only {possible} different-speaker pairs exist, {nontarget} asked for")
    rng = random.Random(seed)
    ordered = sorted(utts)
    chosen: set = set()
    while len(chosen) < nontarget:
        a, b = rng.sample(ordered, 2)
        if speaker_of(a) != speaker_of(b):
            chosen.add((min(a, b), max(a, b)))
    return targets + [(0, a, b) for a, b in sorted(chosen)]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("folder", type=Path, help="SPEAKER/.../UTTERANCE audio files")
    parser.add_argument("output", type=Path, help="the trial list to write (must not exist)")
    parser.add_argument("--nontarget", type=int, default=100_000, help="different-speaker pairs (default 100000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the different-speaker draw (default 0)")
    parser.add_argument("--ext", default=".wav", help="audio file extension (default .wav)")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        parser.error(f"{args.folder} is not a folder")
    if args.output.exists():
        parser.error(f"{args.output} exists; give a new file name")
    if args.nontarget < 0:
        parser.error(f"--nontarget must be at least 0, got {args.nontarget}")
    utts = utterances(args.folder, args.ext)
    if len({speaker_of(u) for u in utts}) < 2:
        parser.error(f"{args.folder} needs at least two speaker folders with {args.ext} files")
    try:
        trials = make_trials(utts, args.nontarget, args.seed)
    except ValueError as error:
        parser.error(str(error))
    args.output.write_text("".join(f"{label} {a} {b}\n" for label, a, b in trials))
    targets = sum(label for label, _, _ in trials)
    print(f"{args.output}: {len(utts)} utterances, {targets} target and {len(trials) - targets} non-target trials")
    return 0


if __name__ == "__main__":
    sys.exit(main())
