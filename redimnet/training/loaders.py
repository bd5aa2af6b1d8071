"""The training data as the loop sees it: the training list, the augmenter and one loader per epoch."""

from __future__ import annotations

from typing import Any, Dict, Iterator, Optional, cast

import torch

from ..errors import RedimnetError
from .augment import AugmentationSettings, Augmenter
from .config import TrainingConfig
from .data import (
    CropDataset,
    EpochSampler,
    ShardDataset,
    collate_examples,
    read_csv_list,
    read_kaldi_lists,
    read_shard_index,
)
from .process import Process


def read_training_list(config: TrainingConfig):
    """``(utterances or None for shards, number of items, speaker of each item)``."""
    data = config.data
    if data.shards:
        _, counts, speakers = read_shard_index(data.shards)
        return None, sum(counts), speakers
    # the configuration's checks: exactly one of shards, wav_scp (with utt2spk) and csv
    utterances = (
        read_kaldi_lists(data.wav_scp, cast(str, data.utt2spk)) if data.wav_scp else read_csv_list(cast(str, data.csv))
    )
    return utterances, len(utterances), [u.speaker for u in utterances]


def make_augmenter(config) -> Optional[Augmenter]:
    """The noise / reverberation augmenter a config's ``augment`` section asks for, or None (any task's config)."""
    aug = config.augment
    if not (aug.noise or aug.rir) or aug.prob == 0:
        return None
    settings = AugmentationSettings(
        prob=aug.prob,
        noise_dir=aug.noise,
        rir_dir=aug.rir,
        snr=dict(aug.snr),
        babble_speakers=(aug.babble_speakers[0], aug.babble_speakers[1]),
    )
    return Augmenter(settings, config.data.sample_rate)


def make_loader(
    config: TrainingConfig,
    utterances,
    labels,
    maker,
    process: Process,
    epoch: int,
    start_step: int,
    steps_per_epoch: int,
) -> torch.utils.data.DataLoader:
    """The loader of ``epoch`` from ``start_step`` on (this process's share; shards or a list)."""
    data, seed = config.data, config.train.seed
    # The loader's own generator seeds its workers, so the global RNG is left untouched.
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    common: Dict[str, Any] = dict(
        batch_size=data.batch_size,
        collate_fn=collate_examples,
        num_workers=data.num_workers,
        pin_memory=process.device.type == "cuda",
        drop_last=True,
        generator=generator,
        persistent_workers=False,
    )
    if data.num_workers > 0:
        common["prefetch_factor"] = 2
    if data.shards:
        shards = ShardDataset(
            data.shards, labels, maker, seed, data.batch_size, process.rank, process.size, data.shuffle_buffer
        )
        shards.set_epoch(epoch, start_step)
        return torch.utils.data.DataLoader(shards, **common)
    dataset = CropDataset(utterances, labels, maker, seed)
    sampler = EpochSampler(
        len(dataset), data.batch_size, steps_per_epoch, seed, epoch, process.rank, process.size, start_step
    )
    return torch.utils.data.DataLoader(dataset, sampler=sampler, **common)


def batches(loader) -> Iterator[dict]:
    """The loader's batches; an error raised in a DataLoader worker is re-raised with its own message only."""
    iterator = iter(loader)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except RedimnetError as error:
            message = _worker_message(error)
            if message is None:
                raise
            raise type(error)(message) from None
        yield batch


def _worker_message(error: Exception) -> Optional[str]:
    """The original message of an exception the DataLoader re-raised from a worker (with its traceback)."""
    text = str(error)
    if not text.startswith("Caught "):
        return None
    marker = f"{type(error).__name__}: "
    for line in reversed(text.splitlines()):
        head, found, message = line.partition(marker)
        if found and (not head or head.endswith(".")):
            return message
    return None
