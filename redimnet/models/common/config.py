"""What every family's configuration shares: the ``model_config`` dict round trip
(:class:`ReleaseConfig`), the options the shared parts of the networks read
(:class:`NetworkOptions`), and the checks about networks both families make.

The generic checks (positive integers, choices, flags) are the validation kit's
(:mod:`redimnet._utils.validation`); the ones here are about networks: stage lists, grouped
convolutions, time-context widths, pooling heads and the front end's ``spec_params``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar, Iterable, Mapping, Optional, Protocol, Sequence, Tuple, Type, TypeVar

from ..._utils.validation import choice, flag, is_int, is_number, positive_int, probability
from ...audio.read import TARGET_SAMPLE_RATE
from ...errors import ConfigError
from ...layers.options import ATTENTION_HEADS, BLOCK_1D_TYPES, BLOCK_2D_TYPES, MHASTP_HEADS, MQMHASTP_HEADS


class StageOptions(Protocol):
    """What the shared parts read from one stage of either family."""

    @property
    def num_blocks(self) -> int:
        """2D blocks in the stage."""

    @property
    def att_block_red(self) -> Optional[int]:
        """Reduction of the stage's time-context block (None: no block)."""

    def as_original(self) -> tuple:
        """The tuple form the official constructor takes."""


class NetworkOptions(Protocol):
    """What the parts every family shares (front end, key map, head, checkpoint layout) read from a
    configuration; both families' configurations have this shape (it includes
    :class:`redimnet.frontend.FrontEndOptions`)."""

    family: ClassVar[str]

    @property
    def F(self) -> int:  # noqa: N802 -- the original option's name
        """Mel bands."""

    @property
    def hop_length(self) -> int:
        """Frame hop in samples."""

    @property
    def feat_type(self) -> str:
        """The front end as the original names it."""

    @property
    def frontend(self) -> str:
        """``"pt"``, ``"tf"`` or ``"tf_spec"``."""

    @property
    def spec_params(self) -> Mapping[str, Any]:
        """The front end's own options."""

    @property
    def embed_dim(self) -> int:
        """Size of the embedding."""

    @property
    def emb_bn(self) -> bool:
        """Batch norm after the embedding layer."""

    @property
    def pooling_func(self) -> str:
        """Temporal pooling."""

    @property
    def block_2d_type(self) -> str:
        """2D block of the stages."""

    @property
    def return_all_outputs(self) -> bool:
        """``forward`` also returns every stage's 1D output."""

    @property
    def stages_setup(self) -> Sequence[StageOptions]:
        """The stages."""

    def to_dict(self) -> dict:
        """The ``model_config`` dict the official constructor accepts."""


ConfigT = TypeVar("ConfigT", bound="ReleaseConfig")


class ReleaseConfig:
    """What every family's config dataclass shares: conversion from and to the ``model_config`` dict that the
    official constructor takes (``stages_setup`` as its nested lists, ``spec_params`` as a plain dict).

    A subclass is a frozen dataclass and sets :attr:`family` (the family's registered name) and
    :attr:`family_label` (how messages name it).
    """

    family: ClassVar[str] = ""
    family_label: ClassVar[str] = "model"

    @classmethod
    def from_dict(cls: Type[ConfigT], options: Mapping[str, Any]) -> ConfigT:
        """Build from a ``model_config`` dict; unknown keys raise ValueError."""
        if not isinstance(options, Mapping):
            raise ConfigError(f"model_config must be a dict, got {type(options).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]  # subclasses are dataclasses
        unknown = sorted(str(k) for k in options if k not in known)
        if unknown:
            raise ConfigError(
                f"unknown {cls.family_label} option(s): {', '.join(unknown)}; "
                f"known options are: {', '.join(sorted(known))}"
            )
        return cls(**dict(options))

    def to_dict(self) -> dict:
        """The ``model_config`` dict the official constructor accepts."""
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]  # subclasses are dataclasses
            value = getattr(self, f.name)
            if f.name == "stages_setup":
                value = [stage.as_original() for stage in value]
            elif f.name == "spec_params":
                value = dict(value)
            out[f.name] = value
        return out

    def _normalise(self, parse_stages: Callable[[Any], tuple]) -> None:
        """Called first by a subclass's ``__post_init__``: ``stages_setup`` parsed into the family's stage
        specs and ``spec_params`` copied into a plain dict, so the frozen config holds no caller's list."""
        fields = vars(self)  # the subclass's dataclass fields
        object.__setattr__(self, "stages_setup", parse_stages(fields["stages_setup"]))
        spec_params = fields["spec_params"]
        if not isinstance(spec_params, Mapping):
            raise ConfigError(f"spec_params must be a dict of front-end options, got {type(spec_params).__name__}")
        object.__setattr__(self, "spec_params", dict(spec_params))

    def replace(self: ConfigT, **changes) -> ConfigT:
        """A copy with some options changed (validated like a new config)."""
        options = self.to_dict()
        unknown = sorted(k for k in changes if k not in options)
        if unknown:
            raise ConfigError(f"unknown {self.family_label} option(s): {', '.join(unknown)}")
        options.update(changes)
        return type(self)(**options)


# ---------------------------------------------------------------------------
# checks both families make
# ---------------------------------------------------------------------------


def check_shared_options(config) -> None:
    """The options both families have with the same meaning and limits (sizes, block kinds, head, hop)."""
    positive_int("F", config.F)
    positive_int("C", config.C)
    choice("block_1d_type", config.block_1d_type, BLOCK_1D_TYPES)
    choice("block_2d_type", config.block_2d_type, BLOCK_2D_TYPES)
    positive_int("group_divisor", config.group_divisor, allow_none=True)
    positive_int("out_channels", config.out_channels, allow_none=True)
    positive_int("embed_dim", config.embed_dim)
    positive_int("num_classes", config.num_classes, allow_none=True)
    probability("feat_agg_dropout", config.feat_agg_dropout)
    positive_int("hop_length", config.hop_length)


def parse_stage_list(
    stages, spec_class: type, layout: str, parse_entry: Callable, mapping_keys: Optional[Tuple[str, ...]] = None
) -> tuple:
    """``stages_setup`` as a tuple of ``spec_class``: a non-empty list whose entries are already specs,
    or 5-entry sequences laid out as ``layout`` says (or mappings with ``mapping_keys``) that
    ``parse_entry(where, entry)`` turns into specs after the checks every family shares."""
    if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence) or len(stages) == 0:
        raise ConfigError(f"stages_setup must be a non-empty list of ({layout}) entries")
    parsed = []
    for index, stage in enumerate(stages):
        where = f"stages_setup[{index}]"
        if isinstance(stage, spec_class):
            parsed.append(stage)
            continue
        if mapping_keys is not None and isinstance(stage, Mapping):
            try:
                stage = [stage[k] for k in mapping_keys]
            except KeyError as missing:
                raise ConfigError(f"{where} is missing {missing}") from None
        if isinstance(stage, (str, bytes)) or not isinstance(stage, Sequence) or len(stage) != 5:
            raise ConfigError(f"{where} must have 5 entries ({layout}), got {stage!r}")
        parsed.append(parse_entry(where, stage))
    return tuple(parsed)


def check_groups(divisor, channels: int, where: str) -> None:
    """``group_divisor`` splits ``channels`` into whole groups."""
    if divisor is None:
        return
    groups = channels // divisor
    if groups < 1 or channels % groups != 0:
        raise ConfigError(
            f"group_divisor={divisor} does not fit {where} with {channels} channels: "
            f"channels // group_divisor must be >= 1 and divide the channels"
        )


def validate_front_end_options(
    params: Mapping[str, Any], *, band: bool, spec_norms: Iterable, spec_norm_note: str = ""
) -> None:
    """Checks of the ``spec_params`` values every family's front ends share (after the family's
    check of which keys its front end takes): the sizes, the frequency band (where ``band``), the
    on/off flags, the SpecAugment settings, ``spec_norm`` (one of ``spec_norms``; ``spec_norm_note``
    says why others are refused) and ``eps``."""
    for key in ("sample_rate", "n_fft", "win_length", "hop_length"):
        if key in params:
            positive_int(f"spec_params[{key!r}]", params[key])
    n_fft, win = params.get("n_fft", 512), params.get("win_length", 400)
    if win > n_fft:
        raise ConfigError(f"spec_params: win_length ({win}) must not exceed n_fft ({n_fft})")
    for key in ("f_min", "f_max"):
        if key in params and not is_number(params[key]):
            raise ConfigError(f"spec_params[{key!r}] must be a number, got {params[key]!r}")
    if band:
        f_min, f_max = params.get("f_min", 20), params.get("f_max", 7600)
        if not 0 <= f_min < f_max <= params.get("sample_rate", TARGET_SAMPLE_RATE) / 2:
            raise ConfigError(
                f"spec_params: need 0 <= f_min < f_max <= sample_rate / 2, got f_min={f_min}, f_max={f_max}"
            )
    for key in ("do_spec_aug", "norm_signal", "do_preemph"):
        if key in params:
            flag(f"spec_params[{key!r}]", params[key])
    for key in ("freq_mask_width", "time_mask_width"):
        if key in params:
            width = params[key]
            if (
                not isinstance(width, Sequence)
                or len(width) != 2
                or not all(is_int(w) for w in width)
                or not 0 <= width[0] < width[1]
            ):
                raise ConfigError(f"spec_params[{key!r}] must be (low, high) with 0 <= low < high, got {width!r}")
    if "freq_start_bin" in params and (not is_int(params["freq_start_bin"]) or params["freq_start_bin"] < 0):
        raise ConfigError(f"spec_params['freq_start_bin'] must be an integer >= 0, got {params['freq_start_bin']!r}")
    if "num_apply_spec_aug" in params and (
        not is_int(params["num_apply_spec_aug"]) or params["num_apply_spec_aug"] < 0
    ):
        raise ConfigError("spec_params['num_apply_spec_aug'] must be an integer >= 0")
    spec_norms = tuple(spec_norms)
    if "spec_norm" in params and params["spec_norm"] not in spec_norms:
        raise ConfigError(
            f"spec_params['spec_norm']={params['spec_norm']!r} is not supported{spec_norm_note}; "
            f"choose one of {', '.join(map(repr, spec_norms))}"
        )
    if "eps" in params and (not isinstance(params["eps"], float) or not 0 < params["eps"] < 1):
        raise ConfigError(f"spec_params['eps'] must be a small positive float, got {params['eps']!r}")


def check_time_context(where: str, att_block_red: Optional[int], width: int, block_1d_type: str) -> None:
    """A stage's time-context width ``C*F // att_block_red`` is >= 1 and splits over the attention heads."""
    if att_block_red is None:
        return
    hidden = width // att_block_red
    if hidden < 1:
        raise ConfigError(f"{where}: att_block_red={att_block_red} leaves no hidden channels (C*F = {width})")
    if block_1d_type in ("att", "conv+att") and hidden % ATTENTION_HEADS != 0:
        raise ConfigError(
            f"{where}: att_block_red={att_block_red} gives {hidden} hidden channels, "
            f"which the {ATTENTION_HEADS} attention heads of block_1d_type={block_1d_type!r} "
            "cannot split evenly"
        )


def check_pooling_channels(pooling_func: str, channels: int) -> None:
    """The multi-head poolings split the backbone's channels over their heads."""
    if pooling_func == "MHASTP" and channels % MHASTP_HEADS != 0:
        raise ConfigError(f"pooling_func='MHASTP' needs an even number of channels, got {channels}")
    if pooling_func == "MQMHASTP" and channels % MQMHASTP_HEADS != 0:
        raise ConfigError(f"pooling_func='MQMHASTP' needs channels divisible by {MQMHASTP_HEADS}, got {channels}")
