"""Training examples and loss of the segmentation network (:mod:`redimnet.diarization.segmentation`).

An example is one chunk of audio and, for every frame, which of up to ``local_speakers``
local speakers speak in it.  Two sources make them:

* :class:`AnnotatedChunks`: random chunks of annotated recordings (audio + RTTM, the
  AMI / VoxConverse / DIHARD layout): a user's own data;
* :class:`SimulatedChunks`: chunks of conversations simulated on the fly by
  :class:`redimnet.testing.simulation.ConversationSimulator` from single-speaker
  recordings (a Kaldi-style list or a folder per speaker), with overlaps, pauses, a
  channel per speaker and per turn (band, room, noise) and background noise.

Both derive the frame labels the same way (:func:`frame_activity`): frame ``j`` of a chunk
starting at ``t`` is active for a speaker whose reference speech covers ``t + (j + 1/2)``
frames; the speakers most present in the chunk become its local speakers, in random order.
Speech of a speaker beyond ``local_speakers``, and frames with more than ``max_simultaneous``
speakers, cannot be expressed in the powerset and are left out of the loss (``valid`` False).

The loss (:class:`PowersetLoss`) is the cross-entropy of the powerset classes under the order
of the local speakers that makes it smallest, chosen per chunk among all orders
(permutation-invariant training).  Every example is a pure function of ``(seed, epoch,
position)`` (as in :mod:`redimnet.training.data`), so resumed runs repeat exactly.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union, cast

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..audio import AudioError
from ..audio.read import audio_info, read_excerpt
from ..diarization.powerset import Powerset
from ..diarization.segmentation import SegmentationConfig
from ..diarization.segments import Segment
from .augment import AUDIO_EXTENSIONS, Augmenter
from .config import SegmentationTrainingConfig
from .data import MAX_RETRIES, DataError, example_rng

PathLike = Union[str, os.PathLike]


# --------------------------------------------------------------------------- labels


def frame_activity(
    segments: Sequence[Segment],
    start: float,
    frames: int,
    frame_seconds: float,
    powerset: Powerset,
    rng: Optional[np.random.Generator] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """``activity [frames, local speakers]`` (int8, 0/1) and ``valid [frames]`` (bool) of the chunk
    of ``frames`` frames starting at ``start`` seconds (see the module documentation).

    ``rng``: shuffles the order of the local speakers (None: most present first).
    """
    centres = start + (np.arange(frames) + 0.5) * frame_seconds
    by_label: Dict[str, np.ndarray] = {}
    end = start + frames * frame_seconds
    for segment in segments:
        if segment.end <= start or segment.start >= end:
            continue
        row = by_label.setdefault(segment.label, np.zeros(frames, dtype=bool))
        a, b = np.searchsorted(centres, [segment.start, segment.end])
        row[a:b] = True
    rows = sorted(by_label.values(), key=lambda r: -int(r.sum()))
    rows = [r for r in rows if r.any()]
    kept, dropped = rows[: powerset.speakers], rows[powerset.speakers :]
    activity = np.zeros((frames, powerset.speakers), dtype=np.int8)
    order = rng.permutation(powerset.speakers) if rng is not None else np.arange(powerset.speakers)
    for slot, row in zip(order, kept):
        activity[:, slot] = row
    valid = activity.sum(axis=1) <= powerset.max_simultaneous
    for row in dropped:
        valid &= ~row
    return activity, valid


# --------------------------------------------------------------------------- annotated recordings


@dataclass
class AnnotatedRecording:
    """One recording of a user's annotated data: its id, audio file, length and reference segments."""

    recording: str
    path: Path
    seconds: float
    segments: List[Segment]


def read_annotations(rttm: PathLike, audio_dir: Optional[PathLike] = None, wav_scp: Optional[PathLike] = None):
    """The annotated recordings of an RTTM file (or a folder of ``*.rttm``) and their audio.

    The audio of recording ``ID`` is ``audio_dir/ID.wav`` (or ``.flac``, ``.ogg``, ``.mp3``; the
    AMI / VoxConverse / DIHARD layout), or the path ``wav_scp`` gives for ``ID`` (``<ID> <path>``
    per line).  A recording of the RTTM without audio is an error naming it, as is audio that
    cannot be read.
    """
    from .._utils.names import UnsafeNameError, check_relative_id
    from ..audio import read_scp
    from ..diarization.segments import RTTMError, read_rttm

    rttm = Path(rttm)
    if rttm.is_dir():
        files = sorted(rttm.rglob("*.rttm"))
        if not files:
            raise DataError(f"{rttm}: no *.rttm files in this folder")
    else:
        files = [rttm]
    references: Dict[str, List[Segment]] = {}
    for file in files:
        try:
            for recording, segments in read_rttm(file).items():
                references.setdefault(recording, []).extend(segments)
        except RTTMError as error:
            raise DataError(str(error)) from None
    if not references:
        raise DataError(f"{rttm}: no SPEAKER lines, so no annotated speech to train on")
    listed = dict(read_scp(wav_scp)) if wav_scp else {}
    recordings = []
    for recording, segments in sorted(references.items()):
        path: Optional[Path] = None
        if wav_scp:
            path = listed.get(recording)
        else:
            try:  # an id naming a file below the folder (links inside it may lead elsewhere: corpora of links)
                check_relative_id(recording, "recording id")
            except UnsafeNameError as error:
                raise DataError(f"{rttm}: {error}") from None
            for extension in AUDIO_EXTENSIONS:
                candidate = Path(audio_dir or ".") / (recording + extension)
                if candidate.is_file():
                    path = candidate
                    break
        if path is None:
            where = f"in {wav_scp}" if wav_scp else f"in {audio_dir} ({', '.join(AUDIO_EXTENSIONS)})"
            raise DataError(f"{rttm}: no audio for recording {recording!r} {where}")
        try:
            frames, rate, _ = audio_info(path)
        except AudioError as error:
            raise DataError(f"recording {recording!r}: {error}") from None
        recordings.append(AnnotatedRecording(recording, Path(path), frames / rate, sorted(segments)))
    return recordings


def _finish(wave: np.ndarray, samples: int, augmenter: Optional[Augmenter], rng: np.random.Generator) -> np.ndarray:
    """``wave`` cut or zero-padded to ``samples``, then augmented."""
    wave = np.asarray(wave, dtype=np.float32)[:samples]
    if len(wave) < samples:
        wave = np.pad(wave, (0, samples - len(wave)))
    if augmenter is not None:
        wave = augmenter(wave, rng)
    return np.ascontiguousarray(wave, dtype=np.float32)


class AnnotatedChunks(Dataset):
    """Random chunks of annotated recordings, indexed by ``(epoch, position, index)`` keys.

    ``index`` picks a recording in proportion to its length (each recording owns one index per
    chunk it holds); the chunk's start is drawn at random inside it.
    """

    def __init__(
        self,
        recordings: Sequence[AnnotatedRecording],
        powerset: Powerset,
        chunk_seconds: float,
        frame_samples: int,
        seed: int,
        sample_rate: int = 16000,
        augmenter: Optional[Augmenter] = None,
    ):
        if not recordings:
            raise DataError("no annotated recordings to train on")
        self.recordings = list(recordings)
        self.powerset, self.seed, self.sample_rate, self.augmenter = powerset, seed, sample_rate, augmenter
        self.samples = int(round(chunk_seconds * sample_rate))
        self.frames = self.samples // frame_samples
        self.frame_seconds = frame_samples / sample_rate
        owned = [max(1, int(r.seconds // chunk_seconds)) for r in self.recordings]
        self.first_index = np.cumsum([0] + owned)

    def __len__(self) -> int:
        return int(self.first_index[-1])

    def example(self, recording: AnnotatedRecording, rng: np.random.Generator) -> Tuple[np.ndarray, float]:
        seconds = self.samples / self.sample_rate
        start = float(rng.uniform(0.0, max(0.0, recording.seconds - seconds)))
        _, rate, _ = audio_info(recording.path)
        first = int(start * rate)
        wave = read_excerpt(recording.path, self.sample_rate, frames=int(math.ceil(seconds * rate)) + 1, start=first)
        return wave, first / rate

    def __getitem__(self, key: Tuple[int, int, int]) -> dict:
        epoch, position, index = key
        rng = example_rng(self.seed, epoch, position)
        failed: List[str] = []
        for attempt in range(MAX_RETRIES):
            number = int(np.searchsorted(self.first_index, (index + attempt * 7919) % len(self), "right")) - 1
            recording = self.recordings[number]
            try:
                wave, start = self.example(recording, rng)
            except AudioError as error:
                failed.append(str(error))
                continue
            activity, valid = frame_activity(
                recording.segments, start, self.frames, self.frame_seconds, self.powerset, rng
            )
            wave = _finish(wave, self.samples, self.augmenter, rng)
            return {"wave": wave, "activity": activity, "valid": valid, "failed": len(failed), "failed_paths": failed}
        raise DataError(f"{MAX_RETRIES} audio files in a row could not be read, e.g. {failed[0]}")


# --------------------------------------------------------------------------- simulated conversations


@dataclass
class SimulationSettings:
    """How :class:`SimulatedChunks` draws its conversations."""

    speakers: Tuple[int, int] = (1, 4)  # fewest and most speakers of a conversation
    overlap: Tuple[float, float] = (0.0, 0.4)  # target overlap (fraction of speech), drawn per conversation
    seconds: float = 30.0  # length of each simulated conversation
    chunks_per_conversation: int = 4  # chunks cut from each (consecutive examples share a conversation)
    silence: float = 0.05  # fraction of examples with no speech at all (noise only)
    pauses: Tuple[float, float] = (0.1, 1.5)
    turn_seconds: float = 3.0
    turn_variation: float = 0.5
    background_snr: Tuple[float, float] = (10.0, 40.0)
    bands: Tuple[str, ...] = ("full", "telephone", "random")  # the channels' pass bands (ChannelSpace)
    rt60: Tuple[float, float] = (0.15, 0.7)  # reverberation times of reverberant channels


class SimulatedChunks(Dataset):
    """Chunks of conversations simulated on the fly from single-speaker material.

    ``speakers``: the training speakers (:class:`redimnet.testing.simulation.Speaker`).
    Examples at positions ``k * chunks_per_conversation`` to ``(k + 1) * chunks_per_conversation - 1``
    of an epoch are random chunks of one conversation, drawn (speakers, overlap, channels,
    pauses, noise) from ``(seed, epoch, k)``; simulating a conversation once for several chunks
    makes the data several times cheaper.  ``items`` is the nominal number of chunks per epoch.
    """

    def __init__(
        self,
        speakers: Sequence,
        powerset: Powerset,
        chunk_seconds: float,
        frame_samples: int,
        seed: int,
        items: int,
        settings: Optional[SimulationSettings] = None,
        sample_rate: int = 16000,
        augmenter: Optional[Augmenter] = None,
    ):
        if not speakers:
            raise DataError("no speakers to simulate conversations with")
        self.speakers = list(speakers)
        self.powerset, self.seed, self.items, self.sample_rate = powerset, seed, int(items), sample_rate
        self.settings = settings or SimulationSettings()
        self.augmenter = augmenter
        self.samples = int(round(chunk_seconds * sample_rate))
        self.frames = self.samples // frame_samples
        self.frame_seconds = frame_samples / sample_rate
        self.chunk_seconds = chunk_seconds
        self._cache: Dict[Tuple[int, int], object] = {}  # the latest conversations (per DataLoader worker)

    def __len__(self) -> int:
        return self.items

    def conversation(self, epoch: int, group: int):
        """Conversation ``group`` of ``epoch`` (simulated once, then kept for its other chunks)."""
        from ..testing.simulation import ChannelSpace, ConversationSimulator

        key = (epoch, group)
        if key in self._cache:
            return self._cache[key]
        s = self.settings
        rng = example_rng(self.seed, epoch, group, stream=1)
        count = int(rng.integers(s.speakers[0], min(s.speakers[1], len(self.speakers)) + 1))
        chosen = [self.speakers[int(i)] for i in rng.choice(len(self.speakers), size=count, replace=False)]
        simulator = ConversationSimulator(
            chosen,
            overlap=float(rng.uniform(*s.overlap)) if count > 1 else 0.0,
            pauses=s.pauses,
            turn_seconds=s.turn_seconds,
            turn_variation=s.turn_variation,
            background_snr_db=float(rng.uniform(*s.background_snr)),
            channel_space=ChannelSpace(tuple(s.bands), (float(s.rt60[0]), float(s.rt60[1]))),
        )
        conversation = simulator.simulate(max(s.seconds, self.chunk_seconds), seed=int(rng.integers(1 << 62)))
        if len(self._cache) >= 4:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = conversation
        return conversation

    def __getitem__(self, key: Tuple[int, int, int]) -> dict:
        epoch, position, _ = key
        rng = example_rng(self.seed, epoch, position)
        if rng.random() < self.settings.silence:
            level = float(10 ** rng.uniform(-4.5, -2.5))
            wave = _finish(rng.standard_normal(self.samples) * level, self.samples, self.augmenter, rng)
            activity = np.zeros((self.frames, self.powerset.speakers), dtype=np.int8)
            valid = np.ones(self.frames, dtype=bool)
            return {"wave": wave, "activity": activity, "valid": valid, "failed": 0, "failed_paths": []}
        failed: List[str] = []
        group = position // max(1, self.settings.chunks_per_conversation)
        for attempt in range(MAX_RETRIES):
            try:
                conversation = self.conversation(epoch, group + attempt * 1_000_003)
            except AudioError as error:
                failed.append(str(error))
                continue
            last = max(0, len(conversation.audio) - self.samples)
            first = int(rng.integers(0, last + 1))
            activity, valid = frame_activity(
                conversation.segments, first / self.sample_rate, self.frames, self.frame_seconds, self.powerset, rng
            )
            wave = _finish(conversation.audio[first : first + self.samples], self.samples, self.augmenter, rng)
            return {"wave": wave, "activity": activity, "valid": valid, "failed": len(failed), "failed_paths": failed}
        raise DataError(f"{MAX_RETRIES} audio files in a row could not be read, e.g. {failed[0]}")


def collate_chunks(items: List[dict]) -> dict:
    """Stack waves, activity and validity; add up the failed reads the items report."""
    return {
        "wave": torch.from_numpy(np.stack([item["wave"] for item in items])),
        "activity": torch.from_numpy(np.stack([item["activity"] for item in items])),
        "valid": torch.from_numpy(np.stack([item["valid"] for item in items])),
        "failed": sum(item["failed"] for item in items),
        "attempted": sum(item["failed"] + 1 for item in items),
        "failed_paths": [p for item in items for p in item["failed_paths"]],
    }


# --------------------------------------------------------------------------- loss


class PowersetLoss(nn.Module):
    """Permutation-invariant cross-entropy of powerset classes.

    ``forward(log_probs [N, frames, classes], activity [N, frames, speakers], valid [N, frames])``
    returns ``(loss, correct, count)``: the mean over chunks of the per-chunk mean cross-entropy
    under each chunk's best order of local speakers, the number of valid frames whose most
    likely class is right under that order, and the number of valid frames.
    """

    def __init__(self, powerset: Powerset):
        super().__init__()
        self.powerset = powerset
        self.permutations: torch.Tensor
        self.class_of_mask: torch.Tensor
        self.bits: torch.Tensor
        self.register_buffer("permutations", torch.from_numpy(powerset.permutations()), persistent=False)
        self.register_buffer("class_of_mask", torch.from_numpy(powerset.class_of_mask), persistent=False)
        self.register_buffer("bits", 1 << torch.arange(powerset.speakers), persistent=False)

    def targets(self, activity: torch.Tensor) -> torch.Tensor:
        """``[N, frames, orders]``: the class of every frame under every order of the local speakers (-1: none)."""
        permuted = activity.long()[:, :, self.permutations]  # [N, frames, orders, speakers]
        return self.class_of_mask[(permuted * self.bits).sum(-1)]

    def forward(
        self, log_probs: torch.Tensor, activity: torch.Tensor, valid: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        targets = self.targets(activity)
        usable = valid[:, :, None] & (targets >= 0)
        picked = log_probs.float().gather(-1, targets.clamp(min=0))  # [N, frames, orders]
        nll = -(picked * usable).sum(1) / usable.sum(1).clamp(min=1)  # [N, orders]
        best = nll.argmin(dim=1)
        loss = nll.gather(1, best[:, None]).mean()
        with torch.no_grad():
            chosen = targets.gather(2, best[:, None, None].expand(-1, targets.shape[1], 1))[..., 0]
            mask = usable.any(-1)
            correct = ((log_probs.argmax(-1) == chosen) & mask).sum()
        return loss, correct, mask.sum()


class SegmentationObjective(nn.Module):
    """The network and its loss as one module (for DDP): ``forward(batch, autocast) -> (loss, correct, count)``."""

    def __init__(self, model: nn.Module, loss: PowersetLoss):
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, wave: torch.Tensor, activity: torch.Tensor, valid: torch.Tensor, autocast: Callable):
        with autocast():
            log_probs = self.model(wave)
        frames = min(log_probs.shape[1], activity.shape[1])
        return self.loss(log_probs[:, :frames], activity[:, :frames], valid[:, :frames])


# --------------------------------------------------------------------------- the task


class MixedChunks(Dataset):
    """Simulated and annotated chunks, each example from one of them (``simulated_fraction``)."""

    def __init__(self, simulated: SimulatedChunks, annotated: AnnotatedChunks, simulated_fraction: float, seed: int):
        self.simulated, self.annotated, self.fraction, self.seed = simulated, annotated, simulated_fraction, seed

    def __len__(self) -> int:
        return len(self.simulated) + len(self.annotated)

    def __getitem__(self, key: Tuple[int, int, int]) -> dict:
        epoch, position, index = key
        if example_rng(self.seed, epoch, position, stream=2).random() < self.fraction:
            return self.simulated[key]
        return self.annotated[(epoch, position, index % len(self.annotated))]


class SegmentationTask:
    """Training the segmentation network: the task the training loop runs for a
    :class:`SegmentationTrainingConfig` (the same methods as :class:`redimnet.training.trainer.SpeakerTask`)."""

    item_name = "chunks"
    validation_name = "frame error"
    validation_column = "frame_error"

    def __init__(self, config: SegmentationTrainingConfig):
        self.config = config
        self.model_config = config.segmentation_config()
        self.powerset = self.model_config.powerset()
        self.dataset: Optional[Dataset] = None
        self.sources = ""

    # --- data
    def speakers(self) -> list:
        from ..testing.simulation import SyntheticSpeaker, speakers_from_folder, speakers_from_lists

        d = self.config.data
        found: list = []
        for folder in d.speakers_dir or ():
            found += speakers_from_folder(folder)
        if d.wav_scp:
            found += speakers_from_lists(d.wav_scp, cast(str, d.utt2spk))
        found += [SyntheticSpeaker(d.synthetic_seed, i) for i in range(d.synthetic_speakers)]
        names = [speaker.name for speaker in found]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise DataError(
                f"{self.config.source}: speaker name(s) {', '.join(twice[:5])} occur in two sources; a speaker must "
                "be one sub-folder (rename one of the folders)"
            )
        return found

    def read_data(self, process) -> int:
        from .loaders import make_augmenter

        config, d = self.config, self.config.data
        common: Dict[str, Any] = dict(
            powerset=self.powerset,
            chunk_seconds=self.model_config.chunk_seconds,
            frame_samples=self.model_config.hop,
            seed=config.train.seed,
            augmenter=make_augmenter(config),
        )
        simulated = annotated = None
        described = []
        if config.simulates:
            speakers = self.speakers()
            settings = SimulationSettings(**dataclasses.asdict(config.simulation))
            simulated = SimulatedChunks(speakers, items=d.chunks_per_epoch, settings=settings, **common)
            described.append(f"conversations simulated from {len(speakers)} speakers")
        if d.rttm:
            recordings = read_annotations(d.rttm, d.audio_dir, d.recordings)
            annotated = AnnotatedChunks(recordings, **common)
            hours = sum(r.seconds for r in recordings) / 3600
            described.append(f"{len(recordings)} annotated recordings ({hours:.2f} h)")
        if simulated is not None and annotated is not None:
            self.dataset = MixedChunks(simulated, annotated, d.simulated_fraction, config.train.seed)
        else:
            self.dataset = simulated if simulated is not None else annotated
        self.sources = " and ".join(described)
        return len(cast(Dataset, self.dataset))  # type: ignore[arg-type]

    def loader(self, process, epoch: int, start_step: int, steps_per_epoch: int) -> torch.utils.data.DataLoader:
        from .data import EpochSampler

        data, seed = self.config.data, self.config.train.seed
        dataset = cast(Dataset, self.dataset)
        sampler = EpochSampler(
            len(dataset),  # type: ignore[arg-type]
            data.batch_size,
            steps_per_epoch,
            seed,
            epoch,
            process.rank,
            process.size,
            start_step,
        )
        options: Dict[str, Any] = {}
        if data.num_workers > 0:
            options["prefetch_factor"] = 2
        return torch.utils.data.DataLoader(
            dataset,
            sampler=sampler,
            batch_size=data.batch_size,
            collate_fn=collate_chunks,
            num_workers=data.num_workers,
            pin_memory=process.device.type == "cuda",
            drop_last=True,
            generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch),
            persistent_workers=False,
            **options,
        )

    # --- model
    def build(self, say: Callable, init_weights: bool):
        from ..diarization.segmentation import SegmentationNet

        model = SegmentationNet(self.model_config)
        if self.config.model.init_from and init_weights:
            self._init_weights(model, self.config.model.init_from, say)
        loss = PowersetLoss(self.powerset)
        module = SegmentationObjective(model, loss)
        opt = self.config.optimizer
        optimizer = torch.optim.AdamW(module.parameters(), lr=opt.lr, weight_decay=opt.weight_decay)
        return model, loss, module, optimizer

    def _init_weights(self, model: nn.Module, path: str, say: Callable) -> None:
        from ..diarization.segmentation import load_segmentation
        from ..errors import RedimnetError, TrainingError
        from .state import TrainingState

        try:
            state = TrainingState.load(path).model
        except RedimnetError:
            state = load_segmentation(path).state_dict()
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            raise TrainingError(
                f"{self.config.source}: model.init_from: {path} holds a different network "
                f"({str(error).splitlines()[0]}); the model section must describe the same network"
            ) from None
        say(f"initialised the segmentation network from {path}")

    @staticmethod
    def margin_schedule():
        return None

    def describe(self, model: nn.Module, num_items: int) -> str:
        c = self.model_config
        return (
            f"training a segmentation network ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
            f"{c.local_speakers} local speakers, {c.chunk_seconds:g} s chunks) on {self.sources}, "
            f"{num_items} chunks per epoch"
        )

    def step(self, module: nn.Module, batch: dict, device: torch.device, autocast: Callable):
        """``(loss, correct frames, frames)`` of one batch."""
        wave = batch["wave"].to(device, non_blocking=True)
        activity = batch["activity"].to(device, non_blocking=True)
        valid = batch["valid"].to(device, non_blocking=True)
        return module(wave, activity, valid, autocast)

    def state(self) -> dict:
        return {"num_classes": self.powerset.num_classes, "speakers": []}

    def check_state(self, state, steps_per_epoch: int, out: Path) -> None:
        from ..errors import TrainingError

        if state.steps_per_epoch != steps_per_epoch:
            raise TrainingError(
                f"{self.config.source}: the data differ from the run in {out} ({state.steps_per_epoch} "
                f"steps per epoch there, {steps_per_epoch} now); resume with the same data and batch size"
            )

    @staticmethod
    def save_model(model: nn.Module, path: Path) -> Path:
        from ..diarization.segmentation import SegmentationNet, save_segmentation

        return save_segmentation(cast(SegmentationNet, model), path)

    @staticmethod
    def average(snapshots: List[Path], path: Path) -> Path:
        from ..diarization.segmentation import load_segmentation, save_segmentation
        from .checkpointing import average_models

        return save_segmentation(average_models(snapshots, load=load_segmentation), path)

    # --- validation
    @property
    def validates(self) -> bool:
        return bool(self.config.validation.rttm)

    def validate(self, model: nn.Module, device: torch.device) -> float:
        """Frame error (under each chunk's best order of local speakers) on the validation recordings."""
        v = self.config.validation
        recordings = read_annotations(cast(str, v.rttm), v.audio_dir, v.recordings)
        return validation_frame_error(model, recordings, v.chunks, device)


def validation_frame_error(model: nn.Module, recordings: Sequence[AnnotatedRecording], most: int, device) -> float:
    """The fraction of valid frames whose powerset class is wrong (best order per chunk) over consecutive
    chunks of ``recordings`` (at most ``most``)."""
    config: SegmentationConfig = cast(Any, model).config
    powerset = config.powerset()
    loss = PowersetLoss(powerset).to(device)
    samples, frames = config.chunk_samples, config.chunk_frames
    was_training = model.training
    model.eval()
    correct = count = 0
    done = 0
    try:
        with torch.inference_mode():
            for recording in recordings:
                chunks = int(recording.seconds // config.chunk_seconds)
                for index in range(chunks):
                    if done >= most:
                        break
                    start = index * config.chunk_seconds
                    _, rate, _ = audio_info(recording.path)
                    wave = read_excerpt(
                        recording.path,
                        16000,
                        frames=int(math.ceil(config.chunk_seconds * rate)),
                        start=int(start * rate),
                    )
                    wave = _finish(wave, samples, None, np.random.default_rng(0))
                    activity, valid = frame_activity(recording.segments, start, frames, config.frame_seconds, powerset)
                    log_probs = model(torch.from_numpy(wave)[None].to(device))
                    _, right, total = loss(
                        log_probs, torch.from_numpy(activity)[None].to(device), torch.from_numpy(valid)[None].to(device)
                    )
                    correct, count, done = correct + int(right), count + int(total), done + 1
    finally:
        model.train(was_training)
    return 1.0 - correct / count if count else 0.0
