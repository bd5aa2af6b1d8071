"""The training configuration: a YAML file read into validated dataclasses.

Every section and key is known in advance; an unknown key, a wrong type or an
out-of-range value raises :class:`ConfigError` naming the file and the key
(``train.epochs``) before anything is built or read.  Infinite and NaN numbers
are refused in every value, nested ones included.  Paths are checked by
:meth:`TrainingConfig.check_paths` when training starts.

Two configurations: :class:`TrainingConfig` (speaker embeddings) and
:class:`SegmentationTrainingConfig` (``task: segmentation``).  Their keys are declared with the
validation kit (:mod:`redimnet._utils.validation`: ``setting``, the value checks, ``build_section``);
the file is read by :mod:`redimnet.training.config_files` (YAML, ``base:`` files, ``--set``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from .._utils.validation import (
    boolean,
    build_section,
    check_existing,
    int_pair,
    integer,
    is_number,
    mapping,
    number,
    number_pair,
    one_of,
    optional,
    sections_to_dict,
    setting,
    string,
)
from ..audio.read import TARGET_SAMPLE_RATE
from ..diarization.segmentation import SegmentationConfig, small_backbone
from ..errors import ConfigError, InvalidArgumentError
from ..models.redimnet.config import ModelConfig
from .config_files import apply_overrides, read_config_file

PathLike = Union[str, os.PathLike]

LOSS_TYPES = ("aam", "am", "sphereface2", "softmax")
PRECISIONS = ("fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
MARGIN_INCREASE = ("exp", "linear")


# --------------------------------------------------------------------------- value checks
# The generic ones are the validation kit's (redimnet._utils.validation); these two are training's own.


def _speed_factors(value):
    if not isinstance(value, (list, tuple)) or not all(is_number(v) and 0.5 <= v <= 2.0 and v != 1.0 for v in value):
        raise ConfigError(
            f"must be a list of speed factors in [0.5, 2] other than 1 (e.g. [0.9, 1.1]), or [] for none, got {value!r}"
        )
    if len(set(value)) != len(value):
        raise ConfigError(f"lists a factor twice: {value!r}")
    return tuple(float(v) for v in value)


def _snr_table(value):
    if not isinstance(value, Mapping):
        raise ConfigError(f"must map noise kinds (noise, music, babble) to [low, high] dB, got {value!r}")
    out = {}
    for kind, pair in value.items():
        if kind not in ("noise", "music", "babble"):
            raise ConfigError(f"has unknown noise kind {kind!r}; use noise, music or babble")
        try:
            out[kind] = number_pair()(pair)
        except ValueError as error:
            raise ConfigError(f"[{kind}] {error}") from None
    return out


# --------------------------------------------------------------------------- sections


@dataclass
class ModelSection:
    preset: str = setting(string, "b2", "model size: b0 ... b6")
    overrides: Dict[str, Any] = setting(mapping, factory=dict, doc="ModelConfig options replacing the preset's")
    init_from: Optional[str] = setting(
        optional(string),
        None,
        "start from this release checkpoint (model only) or training state "
        "(model and loss weights), e.g. for large-margin fine-tuning",
    )


@dataclass
class DataSection:
    wav_scp: Optional[str] = setting(optional(string), None, "Kaldi wav.scp: '<utt> <path>' per line")
    utt2spk: Optional[str] = setting(optional(string), None, "Kaldi utt2spk: '<utt> <speaker>' per line")
    csv: Optional[str] = setting(optional(string), None, "CSV with columns utt,path,speaker (header required)")
    shards: Optional[str] = setting(optional(string), None, "shard index written by 'redimnet prepare --shards'")
    sample_rate: int = setting(integer(1000), TARGET_SAMPLE_RATE)
    crop_seconds: float = setting(number(0.1), 2.0, "length of the random training crops")
    speed_perturb: Tuple[float, ...] = setting(_speed_factors, (0.9, 1.1), "speed factors, each a new speaker set")
    batch_size: int = setting(integer(1), 256, "examples per step and per process")
    num_workers: int = setting(integer(0), 4)
    shuffle_buffer: int = setting(integer(1), 2000, "shuffle buffer of the shard stream (examples)")
    max_bad_fraction: float = setting(number(0.0, 1.0), 0.01, "stop when more than this fraction of audio reads fail")


@dataclass
class AugmentSection:
    prob: float = setting(number(0.0, 1.0), 0.6, "probability that an example gets noise or reverberation")
    noise: Optional[str] = setting(optional(string), None, "MUSAN-style folder (music/, noise/, speech/ subfolders)")
    rir: Optional[str] = setting(optional(string), None, "folder of room impulse responses (searched recursively)")
    snr: Dict[str, Tuple[float, float]] = setting(
        _snr_table,
        factory=lambda: {"noise": (0.0, 15.0), "music": (5.0, 15.0), "babble": (13.0, 20.0)},
        doc="SNR range in dB per noise kind",
    )
    babble_speakers: Tuple[int, int] = setting(int_pair, (3, 8), "talkers mixed into babble: [low, high)")
    spec_augment: bool = setting(boolean, False, "SpecAugment masking in the model's front end")
    freq_mask_width: Tuple[int, int] = setting(int_pair, (0, 8))
    time_mask_width: Tuple[int, int] = setting(int_pair, (0, 10))


@dataclass
class LossSection:
    type: str = setting(one_of(*LOSS_TYPES), "aam", "aam (ArcFace), am (CosFace), sphereface2, softmax")
    scale: float = setting(number(0.0, open_low=True), 32.0)
    margin: float = setting(number(0.0, 1.0), 0.2, "final margin")
    initial_margin: float = setting(number(0.0, 1.0), 0.0)
    margin_increase_start_epoch: float = setting(number(0.0), 20.0)
    margin_fix_epoch: float = setting(number(0.0), 40.0, "margin reaches its final value here")
    margin_increase: str = setting(one_of(*MARGIN_INCREASE), "exp")
    subcenters: int = setting(integer(1), 1, "sub-centres per class (1 = plain)")
    inter_topk: int = setting(integer(0), 0, "hardest non-target classes that get an extra penalty (0 = off)")
    inter_topk_margin: float = setting(number(0.0, 1.0), 0.06)
    easy_margin: bool = setting(boolean, False)
    sphereface2_lambda: float = setting(number(0.0, 1.0), 0.7, "weight of the positive term of SphereFace2")


@dataclass
class OptimizerSection:
    lr: float = setting(number(0.0, open_low=True), 0.1, "learning rate at the end of warm-up")
    final_lr: float = setting(number(0.0, open_low=True), 5e-5, "learning rate at the last step")
    warmup_epochs: float = setting(number(0.0), 6.0)
    warm_from_zero: bool = setting(boolean, True)
    momentum: float = setting(number(0.0, 1.0), 0.9)
    nesterov: bool = setting(boolean, True)
    weight_decay: float = setting(number(0.0), 2e-5)


@dataclass
class TrainSection:
    output_dir: str = setting(string, "exp/redimnet", "checkpoints, logs and the final model go here")
    epochs: int = setting(integer(1), 120)
    steps_per_epoch: Optional[int] = setting(optional(integer(1)), None, "default: examples / (batch x processes)")
    max_steps: Optional[int] = setting(optional(integer(1)), None, "stop after this many steps (schedules unchanged)")
    seed: int = setting(integer(0), 42)
    precision: str = setting(one_of(*PRECISIONS), "fp32", "bf16 / fp16 autocast on GPU (bf16 also on CPU)")
    device: str = setting(one_of(*DEVICES), "auto")
    grad_clip: Optional[float] = setting(optional(number(0.0, open_low=True)), 5.0, "max gradient norm, null = off")
    checkpoint_every: int = setting(integer(1), 1000, "steps between checkpoints (also at every epoch end)")
    keep_checkpoints: int = setting(integer(1), 10, "training states and model snapshots kept")
    average_last: int = setting(integer(0), 0, "also write model_avg.pt averaging the last K snapshots (0 = off)")
    log_every: int = setting(integer(1), 50, "steps between CSV log rows")
    progress: bool = setting(boolean, True, "console progress bar")


@dataclass
class ValidationSection:
    trials: Optional[str] = setting(optional(string), None, "trial list (VoxCeleb or Kaldi format)")
    audio_dir: Optional[str] = setting(optional(string), None, "folder the trial ids are relative to")
    every: int = setting(integer(1), 1000, "steps between validations (also at the end)")
    max_seconds: Optional[float] = setting(
        optional(number(0.1)), 20.0, "longer test utterances: mean of windows of this length"
    )


SECTIONS = {
    "model": ModelSection,
    "data": DataSection,
    "augment": AugmentSection,
    "loss": LossSection,
    "optimizer": OptimizerSection,
    "train": TrainSection,
    "validation": ValidationSection,
}


@dataclass
class TrainingConfig:
    """A whole training recipe.  Build with :func:`load_config` or :meth:`from_dict`."""

    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    augment: AugmentSection = field(default_factory=AugmentSection)
    loss: LossSection = field(default_factory=LossSection)
    optimizer: OptimizerSection = field(default_factory=OptimizerSection)
    train: TrainSection = field(default_factory=TrainSection)
    validation: ValidationSection = field(default_factory=ValidationSection)
    source: str = "<config>"

    @classmethod
    def from_dict(cls, options: Any, source: str = "<config>") -> "TrainingConfig":
        if options is None:
            options = {}
        if not isinstance(options, Mapping):
            raise ConfigError(
                f"{source}: the top level must be a mapping of sections "
                f"({', '.join(SECTIONS)}), got {type(options).__name__}"
            )
        unknown = [str(k) for k in options if k not in SECTIONS]
        if unknown:
            raise ConfigError(f"{source}: unknown section {unknown[0]!r}; known sections: {', '.join(SECTIONS)}")
        sections = {
            name: build_section(name, section_cls, options.get(name), source) for name, section_cls in SECTIONS.items()
        }
        config = cls(**sections, source=source)
        config._check_consistency()
        return config

    def to_dict(self) -> dict:
        """Plain data (lists, not tuples), suitable for YAML and for checkpoints."""
        return sections_to_dict(self, SECTIONS)

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {problem}")

    # ----------------------------------------------------------------- checks
    def _check_consistency(self):
        from ..hub.registry import get_preset

        try:
            preset = get_preset(self.model.preset)
        except ValueError as error:
            raise self.error("model.preset", str(error)) from None
        try:
            preset.config.replace(**self.model.overrides)
        except (ValueError, TypeError) as error:
            raise self.error("model.overrides", str(error)) from None
        for key in ("num_classes",):
            if key in self.model.overrides:
                raise self.error(
                    f"model.overrides.{key}",
                    "the classification head belongs to the loss (its weight matrix); remove this option",
                )
        data = self.data
        kinds = [
            name
            for name, used in (
                ("wav_scp/utt2spk", data.wav_scp or data.utt2spk),
                ("csv", data.csv),
                ("shards", data.shards),
            )
            if used
        ]
        if len(kinds) > 1:
            raise self.error("data", f"give one kind of training list, not {' and '.join(kinds)}")
        if bool(data.wav_scp) != bool(data.utt2spk):
            missing = "data.utt2spk" if data.wav_scp else "data.wav_scp"
            raise self.error(missing, "wav_scp and utt2spk go together; add the missing one")
        if self.loss.margin_fix_epoch < self.loss.margin_increase_start_epoch:
            raise self.error("loss.margin_fix_epoch", "must not come before loss.margin_increase_start_epoch")
        if self.optimizer.final_lr > self.optimizer.lr:
            raise self.error(
                "optimizer.final_lr", f"({self.optimizer.final_lr}) must not exceed optimizer.lr ({self.optimizer.lr})"
            )
        if self.optimizer.warmup_epochs > self.train.epochs:
            raise self.error("optimizer.warmup_epochs", "must not exceed train.epochs")
        if self.loss.type == "softmax" and self.loss.subcenters > 1:
            raise self.error("loss.subcenters", "sub-centres need a margin loss (aam or am)")
        if self.loss.inter_topk and self.loss.type not in ("aam",):
            raise self.error("loss.inter_topk", "inter-top-k is implemented for loss.type: aam only")
        if bool(self.validation.trials) != bool(self.validation.audio_dir):
            raise self.error(
                "validation.audio_dir" if self.validation.trials else "validation.trials",
                "validation needs both trials and audio_dir",
            )

    def check_paths(self):
        """Raise :class:`ConfigError` for input files and folders that do not exist."""
        data = self.data
        if not (data.wav_scp or data.csv or data.shards):
            raise self.error(
                "data",
                "no training data: set data.wav_scp + data.utt2spk, data.csv or data.shards "
                "(write them with 'redimnet prepare')",
            )
        check_existing(
            self,
            [
                ("data.wav_scp", data.wav_scp, "file"),
                ("data.utt2spk", data.utt2spk, "file"),
                ("data.csv", data.csv, "file"),
                ("data.shards", data.shards, "any"),
                ("augment.noise", self.augment.noise, "dir"),
                ("augment.rir", self.augment.rir, "dir"),
                ("validation.trials", self.validation.trials, "file"),
                ("validation.audio_dir", self.validation.audio_dir, "dir"),
                ("model.init_from", self.model.init_from, "file"),
            ],
        )

    def model_config(self):
        """The :class:`redimnet.ModelConfig` to train (no classification head)."""
        from ..hub.registry import get_preset

        overrides = dict(self.model.overrides)
        if self.augment.spec_augment:
            spec = dict(overrides.get("spec_params", get_preset(self.model.preset).config.spec_params))
            spec.update(
                do_spec_aug=True,
                freq_mask_width=tuple(self.augment.freq_mask_width),
                time_mask_width=tuple(self.augment.time_mask_width),
            )
            overrides["spec_params"] = spec
        return get_preset(self.model.preset).config.replace(num_classes=None, **overrides)


# --------------------------------------------------------------------------- segmentation recipes (task: segmentation)


def _backbone(value):
    if not isinstance(value, Mapping):
        raise ConfigError(f"must be a mapping of ReDimNet model options (F, C, stages_setup, ...), got {value!r}")
    try:
        return ModelConfig.from_dict(value).to_dict()
    except (ValueError, TypeError) as error:
        raise ConfigError(f"is not a valid ReDimNet configuration: {error}") from None


def _default_backbone() -> dict:
    return small_backbone().to_dict()


def _folders(value):
    if isinstance(value, str) and value:
        return (value,)
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"must be a folder or a list of folders, got {value!r}")
    return tuple(value)


def _bands(value):
    from ..testing.simulation import BANDS

    if not isinstance(value, (list, tuple)) or not value or any(v not in BANDS for v in value):
        raise ConfigError(f"must be a non-empty list of {', '.join(BANDS)}, got {value!r}")
    if len(set(value)) != len(value):
        raise ConfigError(f"lists a band twice: {value!r}")
    return tuple(value)


@dataclass
class SegmentationModelSection:
    backbone: Dict[str, Any] = setting(
        _backbone, factory=_default_backbone, doc="ReDimNet front end and backbone options"
    )
    local_speakers: int = setting(integer(1), 3, "speakers a chunk tells apart")
    max_simultaneous: int = setting(integer(1), 2, "most local speakers at once (2: overlap of two)")
    chunk_seconds: float = setting(number(0.5), 5.0, "length of the chunks")
    lstm_hidden: int = setting(integer(0), 64, "LSTM units per direction (0: none)")
    lstm_layers: int = setting(integer(0), 1)
    init_from: Optional[str] = setting(
        optional(string), None, "start from this segmentation model (or training state), e.g. to fine-tune"
    )


@dataclass
class SegmentationDataSection:
    speakers_dir: Optional[Tuple[str, ...]] = setting(
        optional(_folders), None, "single-speaker audio, one sub-folder per speaker (a folder or a list of them)"
    )
    wav_scp: Optional[str] = setting(optional(string), None, "single-speaker recordings: Kaldi wav.scp")
    utt2spk: Optional[str] = setting(optional(string), None, "single-speaker recordings: Kaldi utt2spk")
    synthetic_speakers: int = setting(integer(0), 0, "voices of redimnet.testing.synth to simulate with")
    synthetic_seed: int = setting(integer(0), 1, "seed of the synthetic voices")
    rttm: Optional[str] = setting(optional(string), None, "annotated recordings: an RTTM file or a folder of them")
    audio_dir: Optional[str] = setting(optional(string), None, "annotated recordings: folder of <recording>.wav/.flac")
    recordings: Optional[str] = setting(optional(string), None, "annotated recordings: '<recording> <path>' per line")
    simulated_fraction: float = setting(number(0.0, 1.0), 0.5, "with both kinds of data: share of simulated chunks")
    chunks_per_epoch: int = setting(integer(1), 8000, "simulated chunks per epoch")
    sample_rate: int = setting(integer(16000), 16000, "fixed: 16000")
    batch_size: int = setting(integer(1), 32, "chunks per step and per process")
    num_workers: int = setting(integer(0), 1)
    max_bad_fraction: float = setting(number(0.0, 1.0), 0.01, "stop when more than this fraction of audio reads fail")


@dataclass
class SimulationSection:
    speakers: Tuple[int, int] = setting(int_pair, (1, 4), "fewest and most speakers of a simulated conversation")
    overlap: Tuple[float, float] = setting(
        number_pair(0.0), (0.0, 0.4), "target overlap fraction, drawn per conversation"
    )
    seconds: float = setting(number(1.0), 30.0, "length of each simulated conversation")
    chunks_per_conversation: int = setting(integer(1), 4, "chunks cut from each conversation")
    silence: float = setting(number(0.0, 1.0), 0.05, "fraction of chunks without speech")
    pauses: Tuple[float, float] = setting(number_pair(0.0), (0.1, 1.5), "pauses between turns, seconds")
    turn_seconds: float = setting(number(0.1), 3.0, "median turn length")
    turn_variation: float = setting(number(0.0, 1.0), 0.5, "how much each turn varies its speaker's channel")
    background_snr: Tuple[float, float] = setting(number_pair(), (10.0, 40.0), "background noise, dB below speech")
    bands: Tuple[str, ...] = setting(
        _bands, ("full", "telephone", "random"), "channel pass bands: full, telephone, random"
    )
    rt60: Tuple[float, float] = setting(number_pair(0.01), (0.15, 0.7), "reverberation times of reverberant channels")


@dataclass
class SegmentationOptimizerSection:
    lr: float = setting(number(0.0, open_low=True), 2e-3, "AdamW learning rate at the end of warm-up")
    final_lr: float = setting(number(0.0, open_low=True), 1e-4, "learning rate at the last step")
    warmup_epochs: float = setting(number(0.0), 0.5)
    warm_from_zero: bool = setting(boolean, True)
    weight_decay: float = setting(number(0.0), 1e-4)


@dataclass
class SegmentationValidationSection:
    rttm: Optional[str] = setting(optional(string), None, "annotated validation recordings: RTTM file or folder")
    audio_dir: Optional[str] = setting(optional(string), None, "their audio folder")
    recordings: Optional[str] = setting(optional(string), None, "or their '<recording> <path>' list")
    every: int = setting(integer(1), 500, "steps between validations (also at the end)")
    chunks: int = setting(integer(1), 400, "most validation chunks (consecutive chunks of each recording)")


SEGMENTATION_SECTIONS = {
    "model": SegmentationModelSection,
    "data": SegmentationDataSection,
    "simulation": SimulationSection,
    "augment": AugmentSection,
    "optimizer": SegmentationOptimizerSection,
    "train": TrainSection,
    "validation": SegmentationValidationSection,
}


@dataclass
class SegmentationTrainingConfig:
    """A segmentation recipe (a YAML file with ``task: segmentation``); see :func:`load_config`."""

    model: SegmentationModelSection = field(default_factory=SegmentationModelSection)
    data: SegmentationDataSection = field(default_factory=SegmentationDataSection)
    simulation: SimulationSection = field(default_factory=SimulationSection)
    augment: AugmentSection = field(default_factory=lambda: AugmentSection(prob=0.0))
    optimizer: SegmentationOptimizerSection = field(default_factory=SegmentationOptimizerSection)
    train: TrainSection = field(default_factory=lambda: TrainSection(output_dir="exp/segmentation"))
    validation: SegmentationValidationSection = field(default_factory=SegmentationValidationSection)
    source: str = "<config>"

    @classmethod
    def from_dict(cls, options: Any, source: str = "<config>") -> "SegmentationTrainingConfig":
        options = dict(options or {})
        options.pop("task", None)
        unknown = [str(k) for k in options if k not in SEGMENTATION_SECTIONS]
        if unknown:
            raise ConfigError(
                f"{source}: unknown section {unknown[0]!r}; known sections of a segmentation recipe: "
                f"task, {', '.join(SEGMENTATION_SECTIONS)}"
            )
        sections = {
            name: build_section(name, kind, options.get(name), source) for name, kind in SEGMENTATION_SECTIONS.items()
        }
        config = cls(**sections, source=source)
        config._check_consistency()
        return config

    def to_dict(self) -> dict:
        return {"task": "segmentation", **sections_to_dict(self, SEGMENTATION_SECTIONS)}

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {problem}")

    def segmentation_config(self) -> SegmentationConfig:
        m = self.model
        return SegmentationConfig(
            backbone=ModelConfig.from_dict(m.backbone),
            local_speakers=m.local_speakers,
            max_simultaneous=m.max_simultaneous,
            chunk_seconds=m.chunk_seconds,
            lstm_hidden=m.lstm_hidden,
            lstm_layers=m.lstm_layers,
        )

    @property
    def simulates(self) -> bool:
        d = self.data
        return bool(d.speakers_dir or d.wav_scp or d.synthetic_speakers)

    def _check_consistency(self):
        try:
            self.segmentation_config()
        except (ValueError, InvalidArgumentError) as error:
            raise self.error("model", str(error)) from None
        d, v = self.data, self.validation
        if d.sample_rate != 16000:
            raise self.error("data.sample_rate", "the segmentation network works at 16000 Hz")
        if bool(d.wav_scp) != bool(d.utt2spk):
            raise self.error("data.utt2spk" if d.wav_scp else "data.wav_scp", "wav_scp and utt2spk go together")
        if d.audio_dir and d.recordings:
            raise self.error(
                "data.recordings", "give the annotated audio as data.audio_dir or data.recordings, not both"
            )
        if bool(d.rttm) != bool(d.audio_dir or d.recordings):
            raise self.error(
                "data.rttm" if not d.rttm else "data.audio_dir",
                "annotated data needs both the RTTM and the audio (data.audio_dir or data.recordings)",
            )
        if v.rttm and not (v.audio_dir or v.recordings):
            raise self.error("validation.audio_dir", "validation needs the audio of validation.rttm")
        if self.simulation.speakers[0] < 1:
            raise self.error("simulation.speakers", "a conversation needs at least one speaker")
        if self.simulation.overlap[1] > 0.5:
            raise self.error("simulation.overlap", "the simulator reaches at most 0.5")
        if self.optimizer.final_lr > self.optimizer.lr:
            raise self.error("optimizer.final_lr", "must not exceed optimizer.lr")
        if self.optimizer.warmup_epochs > self.train.epochs:
            raise self.error("optimizer.warmup_epochs", "must not exceed train.epochs")

    def check_paths(self):
        """Raise :class:`ConfigError` for missing inputs (and for no training data at all)."""
        d = self.data
        if not (self.simulates or d.rttm):
            raise self.error(
                "data",
                "no training data: set data.speakers_dir, data.wav_scp + data.utt2spk or data.synthetic_speakers "
                "(single-speaker recordings to simulate conversations with), and/or data.rttm + data.audio_dir "
                "(annotated recordings)",
            )
        check_existing(
            self,
            [
                *[("data.speakers_dir", folder, "dir") for folder in d.speakers_dir or ()],
                ("data.wav_scp", d.wav_scp, "file"),
                ("data.utt2spk", d.utt2spk, "file"),
                ("data.rttm", d.rttm, "any"),
                ("data.audio_dir", d.audio_dir, "dir"),
                ("data.recordings", d.recordings, "file"),
                ("augment.noise", self.augment.noise, "dir"),
                ("augment.rir", self.augment.rir, "dir"),
                ("validation.rttm", self.validation.rttm, "any"),
                ("validation.audio_dir", self.validation.audio_dir, "dir"),
                ("validation.recordings", self.validation.recordings, "file"),
                ("model.init_from", self.model.init_from, "file"),
            ],
        )


TASKS = ("speaker", "segmentation")


def load_config(path: PathLike, overrides: Optional[List[str]] = None):
    """Read and validate a YAML training config; ``overrides`` are ``section.key=value`` strings.

    A :class:`TrainingConfig` (speaker embeddings), or with a top-level ``task: segmentation`` a
    :class:`redimnet.training.segmentation.SegmentationTrainingConfig`.
    """
    options = read_config_file(path)
    if overrides:
        if not isinstance(options, Mapping):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        options = apply_overrides(options, overrides)
    task = options.get("task", "speaker") if isinstance(options, Mapping) else "speaker"
    if task not in TASKS:
        raise ConfigError(f"{path}: task must be one of {', '.join(map(repr, TASKS))}, got {task!r}")
    if task == "segmentation":
        return SegmentationTrainingConfig.from_dict(options, source=str(path))
    options = {k: v for k, v in options.items() if k != "task"} if isinstance(options, Mapping) else options
    return TrainingConfig.from_dict(options, source=str(path))
