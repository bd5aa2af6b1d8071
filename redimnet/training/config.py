"""The training configuration: a YAML file read into validated dataclasses.

Every section and key is known in advance; an unknown key, a wrong type or an
out-of-range value raises :class:`ConfigError` naming the file and the key
(``train.epochs``) before anything is built or read.  Infinite and NaN numbers
are refused in every value, nested ones included.  Paths are checked by
:meth:`TrainingConfig.check_paths` when training starts.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from .._utils.fileio import read_text
from ..audio.read import TARGET_SAMPLE_RATE
from ..errors import ConfigError
from ..models.redimnet.config import _is_number

PathLike = Union[str, os.PathLike]

LOSS_TYPES = ("aam", "am", "sphereface2", "softmax")
PRECISIONS = ("fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
MARGIN_INCREASE = ("exp", "linear")


# --------------------------------------------------------------------------- value checks
# Each check takes the value and returns it (possibly normalised) or raises ValueError
# with the problem (the caller adds file and key).


def _int(minimum: int = 0) -> Callable:
    def check(value):
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ValueError(f"must be an integer >= {minimum}, got {value!r}")
        return value

    return check


def _float(minimum: float = 0.0, maximum: Optional[float] = None, open_low: bool = False) -> Callable:
    def check(value):
        ok = _is_number(value) and (value > minimum if open_low else value >= minimum)
        ok = ok and (maximum is None or value <= maximum)
        if not ok:
            low = f"> {minimum}" if open_low else f">= {minimum}"
            high = f" and <= {maximum}" if maximum is not None else ""
            raise ValueError(f"must be a number {low}{high}, got {value!r}")
        return float(value)

    return check


def _bool(value):
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def _str(value):
    if not isinstance(value, str) or not value:
        raise ValueError(f"must be a non-empty string, got {value!r}")
    return value


def _choice(*choices) -> Callable:
    def check(value):
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
        return value

    return check


def _optional(inner: Callable) -> Callable:
    def check(value):
        return None if value is None else inner(value)

    return check


def _range(minimum: Optional[float] = None) -> Callable:
    def check(value):
        if (
            not isinstance(value, (list, tuple))
            or len(value) != 2
            or not all(_is_number(v) for v in value)
            or value[0] > value[1]
            or (minimum is not None and value[0] < minimum)
        ):
            raise ValueError(f"must be a pair [low, high] with low <= high, got {value!r}")
        return (value[0], value[1])

    return check


def _int_range(value):
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        or not 0 <= value[0] < value[1]
    ):
        raise ValueError(f"must be a pair of integers [low, high] with 0 <= low < high, got {value!r}")
    return (value[0], value[1])


def _speed_factors(value):
    if not isinstance(value, (list, tuple)) or not all(_is_number(v) and 0.5 <= v <= 2.0 and v != 1.0 for v in value):
        raise ValueError(
            f"must be a list of speed factors in [0.5, 2] other than 1 (e.g. [0.9, 1.1]), or [] for none, got {value!r}"
        )
    if len(set(value)) != len(value):
        raise ValueError(f"lists a factor twice: {value!r}")
    return tuple(float(v) for v in value)


def _mapping(value):
    if not isinstance(value, Mapping):
        raise ValueError(f"must be a mapping of options, got {value!r}")
    return dict(value)


def _snr_table(value):
    if not isinstance(value, Mapping):
        raise ValueError(f"must map noise kinds (noise, music, babble) to [low, high] dB, got {value!r}")
    out = {}
    for kind, pair in value.items():
        if kind not in ("noise", "music", "babble"):
            raise ValueError(f"has unknown noise kind {kind!r}; use noise, music or babble")
        try:
            out[kind] = _range()(pair)
        except ValueError as error:
            raise ValueError(f"[{kind}] {error}") from None
    return out


def _key(check: Callable, default: Any = dataclasses.MISSING, doc: str = "", factory=None):
    metadata = {"check": check, "doc": doc}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


# --------------------------------------------------------------------------- sections


@dataclass
class ModelSection:
    preset: str = _key(_str, "b2", "model size: b0 ... b6")
    overrides: Dict[str, Any] = _key(_mapping, factory=dict, doc="ModelConfig options replacing the preset's")
    init_from: Optional[str] = _key(
        _optional(_str),
        None,
        "start from this release checkpoint (model only) or training state "
        "(model and loss weights), e.g. for large-margin fine-tuning",
    )


@dataclass
class DataSection:
    wav_scp: Optional[str] = _key(_optional(_str), None, "Kaldi wav.scp: '<utt> <path>' per line")
    utt2spk: Optional[str] = _key(_optional(_str), None, "Kaldi utt2spk: '<utt> <speaker>' per line")
    csv: Optional[str] = _key(_optional(_str), None, "CSV with columns utt,path,speaker (header required)")
    shards: Optional[str] = _key(_optional(_str), None, "shard index written by 'redimnet prepare --shards'")
    sample_rate: int = _key(_int(1000), TARGET_SAMPLE_RATE)
    crop_seconds: float = _key(_float(0.1), 2.0, "length of the random training crops")
    speed_perturb: Tuple[float, ...] = _key(_speed_factors, (0.9, 1.1), "speed factors, each a new speaker set")
    batch_size: int = _key(_int(1), 256, "examples per step and per process")
    num_workers: int = _key(_int(0), 4)
    shuffle_buffer: int = _key(_int(1), 2000, "shuffle buffer of the shard stream (examples)")
    max_bad_fraction: float = _key(_float(0.0, 1.0), 0.01, "stop when more than this fraction of audio reads fail")


@dataclass
class AugmentSection:
    prob: float = _key(_float(0.0, 1.0), 0.6, "probability that an example gets noise or reverberation")
    noise: Optional[str] = _key(_optional(_str), None, "MUSAN-style folder (music/, noise/, speech/ subfolders)")
    rir: Optional[str] = _key(_optional(_str), None, "folder of room impulse responses (searched recursively)")
    snr: Dict[str, Tuple[float, float]] = _key(
        _snr_table,
        factory=lambda: {"noise": (0.0, 15.0), "music": (5.0, 15.0), "babble": (13.0, 20.0)},
        doc="SNR range in dB per noise kind",
    )
    babble_speakers: Tuple[int, int] = _key(_int_range, (3, 8), "talkers mixed into babble: [low, high)")
    spec_augment: bool = _key(_bool, False, "SpecAugment masking in the model's front end")
    freq_mask_width: Tuple[int, int] = _key(_int_range, (0, 8))
    time_mask_width: Tuple[int, int] = _key(_int_range, (0, 10))


@dataclass
class LossSection:
    type: str = _key(_choice(*LOSS_TYPES), "aam", "aam (ArcFace), am (CosFace), sphereface2, softmax")
    scale: float = _key(_float(0.0, open_low=True), 32.0)
    margin: float = _key(_float(0.0, 1.0), 0.2, "final margin")
    initial_margin: float = _key(_float(0.0, 1.0), 0.0)
    margin_increase_start_epoch: float = _key(_float(0.0), 20.0)
    margin_fix_epoch: float = _key(_float(0.0), 40.0, "margin reaches its final value here")
    margin_increase: str = _key(_choice(*MARGIN_INCREASE), "exp")
    subcenters: int = _key(_int(1), 1, "sub-centres per class (1 = plain)")
    inter_topk: int = _key(_int(0), 0, "hardest non-target classes that get an extra penalty (0 = off)")
    inter_topk_margin: float = _key(_float(0.0, 1.0), 0.06)
    easy_margin: bool = _key(_bool, False)
    sphereface2_lambda: float = _key(_float(0.0, 1.0), 0.7, "weight of the positive term of SphereFace2")


@dataclass
class OptimizerSection:
    lr: float = _key(_float(0.0, open_low=True), 0.1, "learning rate at the end of warm-up")
    final_lr: float = _key(_float(0.0, open_low=True), 5e-5, "learning rate at the last step")
    warmup_epochs: float = _key(_float(0.0), 6.0)
    warm_from_zero: bool = _key(_bool, True)
    momentum: float = _key(_float(0.0, 1.0), 0.9)
    nesterov: bool = _key(_bool, True)
    weight_decay: float = _key(_float(0.0), 2e-5)


@dataclass
class TrainSection:
    output_dir: str = _key(_str, "exp/redimnet", "checkpoints, logs and the final model go here")
    epochs: int = _key(_int(1), 120)
    steps_per_epoch: Optional[int] = _key(_optional(_int(1)), None, "default: examples / (batch x processes)")
    max_steps: Optional[int] = _key(_optional(_int(1)), None, "stop after this many steps (schedules unchanged)")
    seed: int = _key(_int(0), 42)
    precision: str = _key(_choice(*PRECISIONS), "fp32", "bf16 / fp16 autocast on GPU (bf16 also on CPU)")
    device: str = _key(_choice(*DEVICES), "auto")
    grad_clip: Optional[float] = _key(_optional(_float(0.0, open_low=True)), 5.0, "max gradient norm, null = off")
    checkpoint_every: int = _key(_int(1), 1000, "steps between checkpoints (also at every epoch end)")
    keep_checkpoints: int = _key(_int(1), 10, "training states and model snapshots kept")
    average_last: int = _key(_int(0), 0, "also write model_avg.pt averaging the last K snapshots (0 = off)")
    log_every: int = _key(_int(1), 50, "steps between CSV log rows")
    progress: bool = _key(_bool, True, "console progress bar")


@dataclass
class ValidationSection:
    trials: Optional[str] = _key(_optional(_str), None, "trial list (VoxCeleb or Kaldi format)")
    audio_dir: Optional[str] = _key(_optional(_str), None, "folder the trial ids are relative to")
    every: int = _key(_int(1), 1000, "steps between validations (also at the end)")
    max_seconds: Optional[float] = _key(
        _optional(_float(0.1)), 20.0, "longer test utterances: mean of windows of this length"
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
            name: _build_section(name, section_cls, options.get(name), source) for name, section_cls in SECTIONS.items()
        }
        config = cls(**sections, source=source)
        config._check_consistency()
        return config

    def to_dict(self) -> dict:
        """Plain data (lists, not tuples), suitable for YAML and for checkpoints."""

        def plain(value):
            if isinstance(value, tuple):
                return [plain(v) for v in value]
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, list):
                return [plain(v) for v in value]
            return value

        return {name: plain(dataclasses.asdict(getattr(self, name))) for name in SECTIONS}

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
        checks = [
            ("data.wav_scp", data.wav_scp, "file"),
            ("data.utt2spk", data.utt2spk, "file"),
            ("data.csv", data.csv, "file"),
            ("data.shards", data.shards, "any"),
            ("augment.noise", self.augment.noise, "dir"),
            ("augment.rir", self.augment.rir, "dir"),
            ("validation.trials", self.validation.trials, "file"),
            ("validation.audio_dir", self.validation.audio_dir, "dir"),
            ("model.init_from", self.model.init_from, "file"),
        ]
        for key, value, kind in checks:
            if value is None:
                continue
            path = Path(value)
            if not path.exists():
                raise self.error(key, f"{value} does not exist")
            if kind == "file" and not path.is_file():
                raise self.error(key, f"{value} is not a file")
            if kind == "dir" and not path.is_dir():
                raise self.error(key, f"{value} is not a folder")

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


def _first_non_finite(value, where: str = "") -> Optional[Tuple[str, float]]:
    """``(sub-key, value)`` of the first infinite or NaN number in a (nested) config value, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where, value
    if isinstance(value, Mapping):
        items = ((f"{where}.{k}", v) for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for sub, inner in items:
        found = _first_non_finite(inner, sub)
        if found is not None:
            return found
    return None


def _build_section(name: str, section_cls, options, source: str):
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise ConfigError(f"{source}: {name}: must be a mapping of keys, got {options!r}")
    fields = {f.name: f for f in dataclasses.fields(section_cls)}
    values = {}
    for key, value in options.items():
        if key not in fields:
            raise ConfigError(f"{source}: unknown key '{name}.{key}'; known keys in '{name}': {', '.join(fields)}")
        non_finite = _first_non_finite(value)
        if non_finite is not None:
            raise ConfigError(
                f"{source}: {name}.{key}{non_finite[0]}: {non_finite[1]} is not a finite number; "
                "training needs finite values (YAML .inf and .nan are refused everywhere)"
            )
        try:
            values[key] = fields[key].metadata["check"](value)
        except ValueError as error:
            raise ConfigError(f"{source}: {name}.{key} {error}") from None
    return section_cls(**values)


def apply_overrides(options: dict, assignments: List[str], source: str = "--set") -> dict:
    """Apply ``section.key=value`` strings (values parsed as YAML) to a raw config mapping."""
    import yaml

    options = dict(options or {})
    for text in assignments:
        if "=" not in text or "." not in text.split("=", 1)[0]:
            raise ConfigError(f"{source} {text!r}: expected section.key=value, e.g. train.epochs=3")
        dotted, raw = text.split("=", 1)
        section, key = dotted.strip().split(".", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as error:
            raise ConfigError(f"{source} {text!r}: the value is not valid YAML ({error})") from None
        options[section] = dict(options.get(section) or {})
        options[section][key] = value
    return options


MAX_BASES = 4
"""How many ``base:`` files a config may stand on, one on another."""


def read_config_file(path: PathLike, _depth: int = 0) -> dict:
    """The raw mapping in a YAML file, with YAML syntax errors reported by line.

    A mapping with a ``base:`` key (a shipped base, see :func:`redimnet.recipes.list_bases`) is laid
    over that base: its sections' keys replace the base's, key by key.
    """
    import yaml

    path = Path(path)
    text = read_text(path, "config file", ConfigError)
    try:
        options = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{path}:{where}: not valid YAML: {problem}") from None
    if not isinstance(options, dict) or "base" not in options:
        return options
    from ..recipes import base_path

    if _depth >= MAX_BASES:
        raise ConfigError(f"{path}: base: more than {MAX_BASES} bases, one on another (a base that names itself?)")
    base = read_config_file(base_path(options["base"], where=str(path)), _depth + 1)
    return _laid_over(base, {key: value for key, value in options.items() if key != "base"})


def _laid_over(base: Any, overlay: Any) -> Any:
    """``overlay`` laid over ``base``: mappings key by key, anything else replaced."""
    if not isinstance(base, Mapping) or not isinstance(overlay, Mapping):
        return overlay
    merged = dict(base)
    for key, value in overlay.items():
        merged[key] = _laid_over(base[key], value) if key in base else value
    return merged


def load_config(path: PathLike, overrides: Optional[List[str]] = None) -> TrainingConfig:
    """Read and validate a YAML training config; ``overrides`` are ``section.key=value`` strings."""
    options = read_config_file(path)
    if overrides:
        if not isinstance(options, Mapping):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        options = apply_overrides(options, overrides)
    return TrainingConfig.from_dict(options, source=str(path))
