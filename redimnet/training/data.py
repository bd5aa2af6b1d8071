"""Training lists (Kaldi wav.scp + utt2spk, CSV, tar shards) and the datasets that read them.

Every example's crop, speed factor and augmentation come from a random
generator seeded with ``(seed, epoch, position)``, so the data a step sees
depends only on the step, not on worker scheduling: a resumed run sees exactly
the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO, Dict, Iterator, List, Optional, Sequence, Tuple, Union, cast

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, Sampler

from .._utils.fileio import atomic_write
from ..audio.lists import read_table
from ..audio.read import AudioError, audio_info, read_excerpt
from ..errors import RedimnetError
from .augment import Augmenter, change_speed, random_crop

PathLike = Union[str, os.PathLike]
SHARD_INDEX = "shards.json"
SHARD_FORMAT = "redimnet-shards-1"
MAX_RETRIES = 20


class DataError(RedimnetError):
    """A training list or shard set is malformed."""


@dataclass(frozen=True)
class Utterance:
    utt: str
    path: str
    speaker: str


# --------------------------------------------------------------------------- lists


def read_kaldi_lists(wav_scp: PathLike, utt2spk: PathLike) -> List[Utterance]:
    """Utterances of a ``wav.scp`` (``<utt> <path>``) and ``utt2spk`` (``<utt> <speaker>``) pair.

    Relative audio paths are taken relative to the folder of ``wav.scp``.
    """
    paths = read_table(wav_scp, ("UTTERANCE_ID", "PATH"), DataError, "wav.scp")
    speakers = read_table(utt2spk, ("UTTERANCE_ID", "SPEAKER"), DataError, "utt2spk")
    missing = [u for u in paths if u not in speakers]
    if missing:
        raise DataError(f"{utt2spk}: no speaker for {len(missing)} utterance(s) of {wav_scp}, e.g. {missing[0]!r}")
    base = Path(wav_scp).resolve().parent
    for utt, path in paths.items():
        if path.endswith("|"):
            raise DataError(f"{wav_scp}: utterance {utt!r} is a command pipe ({path!r}); only file paths are supported")
    return [
        Utterance(utt, str(base / path) if not os.path.isabs(path) else path, speakers[utt])
        for utt, path in paths.items()
    ]


def read_csv_list(path: PathLike) -> List[Utterance]:
    """Utterances of a CSV file with a header naming the columns ``utt``, ``path`` and ``speaker``."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            needed = [c for c in ("utt", "path", "speaker") if c not in columns]
            if needed:
                raise DataError(
                    f"{path}: the header must name the columns utt, path, speaker; missing "
                    f"{', '.join(needed)} (found {', '.join(columns) or 'nothing'})"
                )
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"cannot read CSV list {path}: {error}") from None
    base = Path(path).resolve().parent
    out, seen = [], set()
    for number, row in enumerate(rows, 2):
        if not row.get("utt") or not row.get("path") or not row.get("speaker"):
            raise DataError(f"{path}:{number}: empty utt, path or speaker")
        if row["utt"] in seen:
            raise DataError(f"{path}:{number}: utterance id {row['utt']!r} appears twice")
        seen.add(row["utt"])
        audio = row["path"] if os.path.isabs(row["path"]) else str(base / row["path"])
        out.append(Utterance(row["utt"], audio, row["speaker"]))
    if not out:
        raise DataError(f"CSV list {path} lists no utterances")
    return out


@dataclass
class FolderScan:
    """What :func:`scan_data_folder` found: the usable utterances and the files it refused, with reasons."""

    utterances: List[Utterance]
    refused: List[Tuple[str, str]]


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _check_audio_header(path: Path) -> Optional[str]:
    """Why ``path`` cannot be decoded as audio, or None when soundfile can open it."""
    import soundfile

    try:
        info = soundfile.info(str(path))
    except Exception as error:  # soundfile raises several types for unreadable input
        return f"not decodable audio ({str(error).splitlines()[0] if str(error) else type(error).__name__})"
    if info.frames <= 0:
        return "audio file with no samples"
    return None


def scan_data_folder(
    root: PathLike,
    extensions: Sequence[str] = (".wav", ".flac"),
    follow_symlinks: bool = False,
    check_audio: bool = True,
) -> FolderScan:
    """Utterances of a ``speaker/video/utterance.wav`` folder; ids are paths relative to ``root``.

    Nothing outside ``root`` is read unless ``follow_symlinks``: a symbolic link
    (to a file or a folder) whose target lies outside ``root`` is refused, as are
    broken links, link loops and anything that is not a regular file, and so
    are files directly in ``root`` and paths with white space or control
    characters (Kaldi lists cannot hold them).  With ``check_audio`` every file
    must open as audio (its header is read).  Refused files are returned with
    the reason, never listed as utterances; only a folder with no usable file
    at all raises :class:`DataError`.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder")
    real_root = root.resolve()
    extensions = tuple(e.lower() for e in extensions)
    found: List[Tuple[str, Path]] = []  # (id relative to root, real path)
    refused: List[Tuple[str, str]] = []
    visited = {real_root}

    def refuse_link(path: Path, target: Path, kind: str) -> bool:
        if follow_symlinks or _inside(target, real_root):
            return False
        refused.append(
            (str(path), f"symbolic link to a {kind} outside {root} ({target}); use --follow-symlinks to accept it")
        )
        return True

    def walk(folder: Path, relative: str):
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as error:
            refused.append((str(folder), f"cannot list this folder: {error.strerror or error}"))
            return
        for entry in entries:
            path = Path(entry.path)
            rel = f"{relative}{entry.name}"
            link = entry.is_symlink()
            try:
                target = path.resolve(strict=True) if link else path
            except (OSError, RuntimeError) as error:  # dangling link or a loop
                if path.suffix.lower() in extensions or not link:
                    reason = (
                        "symbolic link loop"
                        if isinstance(error, RuntimeError) or getattr(error, "errno", None) == 40
                        else "broken symbolic link (its target does not exist)"
                    )
                    refused.append((str(path), reason))
                continue
            if target.is_dir():
                if link and refuse_link(path, target, "folder"):
                    continue
                if link and _inside(target, real_root) and not follow_symlinks:
                    continue  # its files are listed under their own path inside root
                real = target.resolve()
                if real in visited:
                    refused.append((str(path), f"folder already scanned as {real} (symbolic link loop or duplicate)"))
                    continue
                visited.add(real)
                walk(path, rel + "/")
                continue
            if path.suffix.lower() not in extensions:
                continue
            if link and refuse_link(path, target, "file"):
                continue
            if not target.is_file():
                refused.append((str(path), "not a regular file"))
                continue
            found.append((rel, target))

    walk(root, "")
    utterances = []
    for relative, target in found:
        where = root / relative
        problem: Optional[str]
        if "/" not in relative:
            problem = f"audio directly in {root}; expected the layout speaker/video/utterance.wav"
        elif any(c.isspace() or not c.isprintable() for c in relative):
            problem = "white space or a control character in the path; Kaldi lists cannot hold it, rename the file"
        else:
            problem = _check_audio_header(target) if check_audio else None
        if problem:
            refused.append((str(where), problem))
            continue
        utterances.append(Utterance(relative, str(target), relative.split("/", 1)[0]))
    if not utterances:
        raise DataError(
            f"no usable audio files ({', '.join(extensions)}) under {root}"
            + (f"; {len(refused)} refused, e.g. {refused[0][0]}: {refused[0][1]}" if refused else "")
        )
    return FolderScan(utterances, refused)


def scan_voxceleb_folder(
    root: PathLike, extensions: Sequence[str] = (".wav", ".flac"), follow_symlinks: bool = False
) -> List[Utterance]:
    """The utterances of :func:`scan_data_folder` (refused files are left out)."""
    return scan_data_folder(root, extensions, follow_symlinks).utterances


def write_kaldi_lists(utterances: Sequence[Utterance], folder: PathLike) -> Tuple[Path, Path]:
    """Write ``wav.scp``, ``utt2spk`` and ``spk2utt`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    wav_scp, utt2spk, spk2utt = folder / "wav.scp", folder / "utt2spk", folder / "spk2utt"
    wav_scp.write_text("".join(f"{u.utt} {u.path}\n" for u in utterances), encoding="utf-8")
    utt2spk.write_text("".join(f"{u.utt} {u.speaker}\n" for u in utterances), encoding="utf-8")
    by_speaker: Dict[str, List[str]] = {}
    for u in utterances:
        by_speaker.setdefault(u.speaker, []).append(u.utt)
    spk2utt.write_text("".join(f"{s} {' '.join(us)}\n" for s, us in sorted(by_speaker.items())), encoding="utf-8")
    return wav_scp, utt2spk


def speaker_labels(speakers: Sequence[str]) -> Dict[str, int]:
    """Class index of every speaker name (sorted order)."""
    return {name: index for index, name in enumerate(sorted(set(speakers)))}


# --------------------------------------------------------------------------- examples


@dataclass
class ExampleMaker:
    """Turns audio into one training example: crop, speed change (a new class), augmentation."""

    crop_samples: int
    sample_rate: int
    num_speakers: int
    speed_factors: Tuple[float, ...] = ()
    augmenter: Optional[Augmenter] = None

    @property
    def num_classes(self) -> int:
        return self.num_speakers * (1 + len(self.speed_factors))

    def choose_speed(self, rng: np.random.Generator) -> Tuple[float, int]:
        """``(factor, class offset group)``; every factor is equally likely, 1.0 included."""
        choice = int(rng.integers(1 + len(self.speed_factors)))
        return (1.0 if choice == 0 else self.speed_factors[choice - 1]), choice

    def needed_samples(self, factor: float) -> int:
        return int(math.ceil(self.crop_samples * factor)) + 32

    def make(self, wave: np.ndarray, speaker: int, rng: np.random.Generator) -> Tuple[np.ndarray, int]:
        factor, group = self.choose_speed(rng)
        return self.finish(wave, speaker, factor, group, rng)

    def finish(
        self, wave: np.ndarray, speaker: int, factor: float, group: int, rng: np.random.Generator
    ) -> Tuple[np.ndarray, int]:
        wave = random_crop(wave, self.needed_samples(factor), rng)
        wave = random_crop(change_speed(wave, factor), self.crop_samples, rng)
        if self.augmenter is not None:
            wave = self.augmenter(wave, rng)
        return np.ascontiguousarray(wave, dtype=np.float32), speaker + group * self.num_speakers


def example_rng(seed: int, epoch: int, position: int, stream: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, position, stream])


def collate_examples(items: List[dict]) -> dict:
    """Stack waves and labels; add up the failed reads the items report."""
    return {
        "wave": torch.from_numpy(np.stack([item["wave"] for item in items])),
        "label": torch.tensor([item["label"] for item in items], dtype=torch.long),
        "failed": sum(item["failed"] for item in items),
        "attempted": sum(item["failed"] + 1 for item in items),
        "failed_paths": [p for item in items for p in item["failed_paths"]],
    }


class CropDataset(Dataset):
    """Random-access training examples from a list of files.

    Indexed by ``(epoch, position, index)`` triples (from :class:`EpochSampler`).
    A file that cannot be read is replaced by another one and reported in the
    example's ``failed`` count.
    """

    def __init__(self, utterances: Sequence[Utterance], labels: Dict[str, int], maker: ExampleMaker, seed: int):
        self.utterances = list(utterances)
        self.labels = labels
        self.maker = maker
        self.seed = seed

    def __len__(self) -> int:
        return len(self.utterances)

    def _load(self, utt: Utterance, factor: float, rng: np.random.Generator) -> np.ndarray:
        needed = self.maker.needed_samples(factor)
        frames, rate, _ = audio_info(utt.path)
        needed_in_file = int(math.ceil(needed * rate / self.maker.sample_rate)) + 16
        if frames > 2 * needed_in_file:  # long file: read only a window
            start = int(rng.integers(0, frames - needed_in_file + 1))
            return read_excerpt(utt.path, self.maker.sample_rate, frames=needed_in_file, start=start)
        return read_excerpt(utt.path, self.maker.sample_rate)

    def __getitem__(self, key: Tuple[int, int, int]) -> dict:
        epoch, position, index = key
        rng = example_rng(self.seed, epoch, position)
        failed_paths = []
        for attempt in range(MAX_RETRIES):
            utt = self.utterances[(index + attempt * 7919) % len(self.utterances)]
            factor, group = self.maker.choose_speed(rng)
            try:
                wave = self._load(utt, factor, rng)
            except AudioError as error:
                failed_paths.append(str(error))
                continue
            wave, label = self.maker.finish(wave, self.labels[utt.speaker], factor, group, rng)
            return {"wave": wave, "label": label, "failed": len(failed_paths), "failed_paths": failed_paths}
        raise DataError(f"{MAX_RETRIES} audio files in a row could not be read, e.g. {failed_paths[0]}")


class EpochSampler(Sampler):
    """The ``(epoch, position, index)`` keys one process reads in one epoch, from step ``start_step`` on.

    The order is a permutation seeded by ``(seed, epoch)``, the same on every
    process; process ``rank`` of ``world_size`` takes every ``world_size``-th batch.
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        steps: int,
        seed: int,
        epoch: int,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
    ):
        self.num_items, self.batch_size, self.steps = num_items, batch_size, steps
        self.seed, self.epoch, self.rank, self.world_size, self.start_step = seed, epoch, rank, world_size, start_step

    def __len__(self) -> int:
        return max(0, self.steps - self.start_step) * self.batch_size

    def __iter__(self) -> Iterator[Tuple[int, int, int]]:
        rng = np.random.default_rng([self.seed, self.epoch, 1234567])
        needed = self.steps * self.batch_size * self.world_size
        order = np.concatenate([rng.permutation(self.num_items) for _ in range(-(-needed // self.num_items))])
        for step in range(self.start_step, self.steps):
            first = (step * self.world_size + self.rank) * self.batch_size
            for position in range(first, first + self.batch_size):
                yield self.epoch, position, int(order[position])


# --------------------------------------------------------------------------- shards


def _audio_bytes(utt: Utterance) -> bytes:
    """The bytes of an utterance's file, refused unless they decode as audio."""
    import soundfile

    try:
        with open(utt.path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise DataError(f"cannot read {utt.path} for {utt.utt!r}: {error.strerror or error}") from None
    try:
        soundfile.info(io.BytesIO(data))
    except Exception as error:  # soundfile raises several types for undecodable input
        raise DataError(
            f"{utt.path} (utterance {utt.utt!r}) is not decodable audio, so it is not packed: "
            f"{str(error).splitlines()[0] if str(error) else type(error).__name__}"
        ) from None
    return data


def write_shards(
    utterances: Sequence[Utterance], folder: PathLike, per_shard: int = 1000, seed: int = 0, progress: bool = False
) -> Path:
    """Pack utterances (audio bytes as they are) into tar shards in random order.

    Each example is two members, ``KEY.json`` (``{"utt", "speaker"}``) then
    ``KEY.<ext>`` (the audio file).  ``shards.json`` lists the shards, their
    sizes and the speakers.  Every file is written atomically (:func:`redimnet._utils.fileio.atomic_write`).
    Every file must decode as audio (:class:`DataError` otherwise); list the
    utterances with :func:`scan_data_folder`, which refuses links that lead
    outside the data folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(seed).permutation(len(utterances))
    shards = []
    iterator = range(0, len(order), per_shard)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="shards", unit="shard")
    for first in iterator:
        name = f"shard-{first // per_shard:06d}.tar"
        with atomic_write(folder / name) as stream, tarfile.open(fileobj=stream, mode="w") as archive:
            chunk = order[first : first + per_shard]
            for index in chunk:
                utt = utterances[int(index)]
                key = f"{int(index):09d}"
                meta = json.dumps({"utt": utt.utt, "speaker": utt.speaker}).encode("utf-8")
                audio = _audio_bytes(utt)
                for member, data in ((f"{key}.json", meta), (f"{key}{Path(utt.path).suffix.lower() or '.wav'}", audio)):
                    info = tarfile.TarInfo(member)
                    info.size, info.mode = len(data), 0o644
                    archive.addfile(info, io.BytesIO(data))
        shards.append({"path": name, "count": int(len(chunk))})
    index = {
        "format": SHARD_FORMAT,
        "num_utterances": len(utterances),
        "shards": shards,
        "speakers": sorted({u.speaker for u in utterances}),
    }
    index_path = folder / SHARD_INDEX
    with atomic_write(index_path, mode="w") as stream:
        stream.write(json.dumps(index, indent=1))
    return index_path


def _shard_entry(entry, number: int, folder: Path, index_path: Path) -> Tuple[Path, int]:
    """One ``shards`` entry of an index as ``(path inside folder, count)``; refuses paths leading out."""
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not entry["path"]:
        raise DataError(f"{index_path}: shards[{number}] must be an object with a non-empty 'path', got {entry!r}")
    count = entry.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise DataError(f"{index_path}: shards[{number}] ({entry['path']!r}) needs a whole 'count' >= 0, got {count!r}")
    name = entry["path"]
    pure = PurePosixPath(name)
    if (
        pure.is_absolute()
        or PureWindowsPath(name).drive
        or "\\" in name
        or ".." in pure.parts
        or any(ord(c) < 32 for c in name)
    ):
        raise DataError(
            f"{index_path}: shards[{number}] path {name!r} leads outside the index's folder; "
            "shard paths must be relative names inside it (as 'redimnet prepare --shards' writes)"
        )
    return folder / pure, count


def _check_shard_file(path: Path, index_path: Path):
    """Cheap checks of a shard before streaming it: a regular file, whole tar blocks, a tar header first."""
    if not path.is_file():
        raise DataError(f"{index_path}: shard file missing: {path}")
    size = path.stat().st_size
    if size == 0 or size % 512:
        raise DataError(
            f"shard {path} is truncated or not a tar file ({size} bytes, not a whole number of "
            "512-byte tar blocks); write the shards again with 'redimnet prepare --shards'"
        )
    try:
        with open(path, "rb") as handle:
            tarfile.TarInfo.frombuf(handle.read(512), tarfile.ENCODING, "surrogateescape")
    except (tarfile.TarError, OSError) as error:
        raise DataError(
            f"shard {path} is not a tar file ({error}); write the shards again with 'redimnet prepare --shards'"
        ) from None


def read_shard_index(path: PathLike) -> Tuple[List[Path], List[int], List[str]]:
    """``(shard paths, counts, speakers)`` of a shard folder or its ``shards.json``.

    Every shard must be named relative to the index's folder (no absolute paths,
    no ``..``); a malformed index or a shard that is not a tar file raises
    :class:`DataError` naming the file.
    """
    path = Path(path)
    if path.is_dir():
        path = path / SHARD_INDEX
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read shard index {path}: {error}; write it with 'redimnet prepare --shards'") from None
    if not isinstance(index, dict) or index.get("format") != SHARD_FORMAT:
        raise DataError(f"{path} is not a redimnet shard index (format {SHARD_FORMAT!r})")
    entries, speakers = index.get("shards"), index.get("speakers")
    if not isinstance(entries, list) or not entries:
        raise DataError(f'{path}: \'shards\' must be a non-empty list of {{"path", "count"}} objects')
    if not isinstance(speakers, list) or not speakers or not all(isinstance(s, str) and s for s in speakers):
        raise DataError(f"{path}: 'speakers' must be a non-empty list of speaker names")
    shards, counts = [], []
    for number, entry in enumerate(entries):
        shard, count = _shard_entry(entry, number, path.parent, path)
        _check_shard_file(shard, path)
        shards.append(shard)
        counts.append(count)
    return shards, counts, list(speakers)


def _tar_records(path: Path, expected: Optional[int] = None) -> Iterator[Tuple[dict, bytes, str]]:
    """``(metadata, audio bytes, where)`` of every example of a shard, read sequentially.

    A shard that is not a readable tar file, holds malformed metadata or ends
    before its ``expected`` number of examples raises :class:`DataError`.
    """
    count = 0
    try:
        with tarfile.open(path, "r|") as archive:
            meta, meta_key = None, None
            for member in archive:
                if not member.isfile():
                    continue
                key, _, ext = member.name.partition(".")
                data = cast(IO[bytes], archive.extractfile(member)).read()  # a regular file: never None
                if ext == "json":
                    try:
                        meta = json.loads(data.decode("utf-8"))
                    except ValueError as error:
                        raise DataError(f"shard {path}: member {member.name} is not valid JSON ({error})") from None
                    if not isinstance(meta, dict):
                        raise DataError(f"shard {path}: member {member.name} must hold a JSON object")
                    meta_key = key
                elif meta is not None and key == meta_key:
                    count += 1
                    yield meta, data, f"{path}:{member.name}"
                    meta = None
    except (tarfile.TarError, EOFError, OSError, UnicodeDecodeError) as error:
        raise DataError(
            f"shard {path} is truncated or corrupt after {count} example(s) ({error}); "
            "write the shards again with 'redimnet prepare --shards'"
        ) from None
    if expected is not None and count < expected:
        raise DataError(
            f"shard {path} is truncated: {count} of its {expected} examples (per shards.json) "
            "are there; write the shards again with 'redimnet prepare --shards'"
        )


class ShardDataset(IterableDataset):
    """Training examples streamed from tar shards (sequential reads only).

    Each DataLoader worker of each process reads its own share of the shards
    (in a per-epoch random order) through a shuffle buffer, cycling if needed,
    so every process can take any number of steps.  ``skip_batches`` fast-forwards
    a resumed epoch without decoding audio.
    """

    def __init__(
        self,
        index: PathLike,
        labels: Dict[str, int],
        maker: ExampleMaker,
        seed: int,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        shuffle_buffer: int = 2000,
    ):
        self.shards, self.counts, _ = read_shard_index(index)
        self.labels, self.maker, self.seed, self.batch_size = labels, maker, seed, batch_size
        self.rank, self.world_size, self.shuffle_buffer = rank, world_size, shuffle_buffer
        self.epoch, self.skip_batches = 0, 0

    def set_epoch(self, epoch: int, skip_batches: int = 0):
        self.epoch, self.skip_batches = epoch, skip_batches

    def _raw_stream(self, worker: int, workers: int) -> Iterator[Tuple[dict, bytes, str]]:
        consumer, consumers = self.rank * workers + worker, self.world_size * workers
        rng = np.random.default_rng([self.seed, self.epoch, consumer, 7])
        for cycle in range(10**9):
            order = np.random.default_rng([self.seed, self.epoch, cycle, 11]).permutation(len(self.shards))
            mine = order[consumer::consumers] if len(order) >= consumers else order[[consumer % len(order)]]
            buffer: List[Tuple[dict, bytes, str]] = []
            for shard in mine:
                for record in _tar_records(self.shards[int(shard)], self.counts[int(shard)]):
                    if len(buffer) < self.shuffle_buffer:
                        buffer.append(record)
                        continue
                    slot = int(rng.integers(len(buffer)))
                    yield buffer[slot]
                    buffer[slot] = record
            rng.shuffle(buffer)
            yield from buffer

    def __iter__(self) -> Iterator[dict]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        # The DataLoader takes batches from workers 0, 1, 2, ... in turn, starting at 0 on every new
        # iterator; a resumed epoch rotates the roles so that batch number skip_batches comes first.
        worker = (worker + self.skip_batches) % workers
        skip = max(0, -(-(self.skip_batches - worker) // workers)) * self.batch_size
        failed_paths: List[str] = []
        for count, (meta, data, where) in enumerate(self._raw_stream(worker, workers)):
            if count < skip:
                continue
            rng = example_rng(self.seed, self.epoch, count, stream=1 + self.rank * workers + worker)
            name = meta.get("speaker")
            speaker = self.labels.get(name) if isinstance(name, str) else None
            try:
                if speaker is None:
                    raise AudioError(f"{where}: speaker {meta.get('speaker')!r} is not in the shard index")
                factor, group = self.maker.choose_speed(rng)
                wave = read_excerpt(data, self.maker.sample_rate)
            except AudioError as error:
                failed_paths.append(f"{where}: {error}")
                continue
            wave, label = self.maker.finish(wave, speaker, factor, group, rng)
            yield {"wave": wave, "label": label, "failed": len(failed_paths), "failed_paths": failed_paths}
            failed_paths = []
