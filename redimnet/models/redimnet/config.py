"""Model configuration: the constructor options of the original ReDimNet, validated.

A :class:`ModelConfig` holds exactly the keyword arguments that the original
implementation stores in a checkpoint's ``model_config`` (same names, same
defaults), so a configuration read from an official release file can be used
as it is, and one written by this project can be read by the original code.

Every value is checked when the configuration is made; an unknown option or an
unsupported value raises :class:`redimnet.errors.ConfigError` (a ``ValueError``) naming the option.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Optional, Sequence, Tuple

from ..._utils.validation import choice, flag, is_int, positive_int, probability
from ...errors import ConfigError
from ...layers.options import parse_head_activation
from ..common.config import (
    ReleaseConfig,
    check_groups,
    check_pooling_channels,
    check_shared_options,
    check_time_context,
    parse_stage_list,
    validate_front_end_options,
)

POOLING_FUNCS = ("TAP", "TSDP", "TSTP", "ASTP", "MHASTP", "MQMHASTP")
# "pt_mel" and "tf_mel" are aliases the original accepts for "pt" and "tf".
FEAT_TYPES = ("pt", "pt_mel", "tf", "tf_mel")


# Options of the mel front ends that may appear in ``spec_params``.
_COMMON_SPEC_PARAMS = {
    "sample_rate",
    "n_fft",
    "win_length",
    "f_min",
    "f_max",
    "do_spec_aug",
    "norm_signal",
    "do_preemph",
    "freq_start_bin",
    "freq_mask_width",
    "time_mask_width",
}
SPEC_PARAMS = {
    "pt": _COMMON_SPEC_PARAMS | {"spec_norm", "num_apply_spec_aug"},
    "tf": _COMMON_SPEC_PARAMS | {"eps"},
}
SPEC_NORMS = ("mn", "mvn", "bn", None)
# Options that change training only, not what a trained network computes.
TRAINING_ONLY_OPTIONS = ("class_dropout", "feat_agg_dropout")
TRAINING_ONLY_SPEC_PARAMS = (
    "do_spec_aug",
    "freq_mask_width",
    "time_mask_width",
    "freq_start_bin",
    "num_apply_spec_aug",
)

# Activations accepted as ``head_activation``.  The original evaluates the string
# as Python (e.g. "nn.Sigmoid()"); we accept those spellings without evaluating
# anything, plus plain names ("sigmoid").


def _default_stages() -> list:
    # The original constructor's default layout (the "M" model).
    return [
        (1, 2, 1, [(3, 3)], 12),
        (2, 2, 1, [(3, 3)], 12),
        (1, 3, 1, [(3, 3)], 12),
        (2, 4, 1, [(3, 3)], 8),
        (1, 4, 1, [(3, 3)], 8),
        (2, 4, 1, [(3, 3)], 4),
    ]


def _default_spec_params() -> dict:
    return {"do_spec_aug": False, "freq_mask_width": (0, 6), "time_mask_width": (0, 8)}


@dataclass(frozen=True)
class StageSpec:
    """One backbone stage: ``(stride, num_blocks, conv_exp, kernel_sizes, att_block_red)``.

    Args:
        stride: 1, 2 or 3: the frequency axis is divided by it and the channel
            axis multiplied by it, so channels x frequency stays ``C * F``.
        num_blocks: 2D convolution blocks in the stage.
        conv_exp: channel expansion inside the stage's 2D blocks.
        kernel_sizes: kept for compatibility; the original always uses 3x3
            kernels in the 2D blocks and ignores this value, and so do we.
        att_block_red: reduction factor of the 1D time-context block that ends
            the stage (hidden size ``C * F // att_block_red``), or None for no block.
    """

    stride: int
    num_blocks: int
    conv_exp: int
    kernel_sizes: Tuple[Tuple[int, ...], ...]
    att_block_red: Optional[int]

    def as_original(self) -> tuple:
        """The tuple form the original constructor takes."""
        return (self.stride, self.num_blocks, self.conv_exp, [tuple(k) for k in self.kernel_sizes], self.att_block_red)


@dataclass(frozen=True)
class ModelConfig(ReleaseConfig):
    """Constructor options of ReDimNet, with the original names and defaults.

    Frozen and validated on construction (a ``ValueError`` names the option and
    the fix); :meth:`from_dict` builds one from a mapping such as a checkpoint's
    stored configuration.

    Args:
        F: mel bins of the front end (the frequency axis of the 2D view).
        C: channels of the stem; channels x frequency stays ``C * F`` through the stages.
        block_1d_type: time-context layers ending a stage: ``"fc"``, ``"conv"``, ``"att"`` or ``"conv+att"``.
        block_2d_type: 2D block of the stages (one of ``BLOCK_2D_TYPES``, e.g. ``"convnext_like"``,
            ``"basic_resnet"``).
        stages_setup: the stages, as :class:`StageSpec` or the original 5-tuples
            ``(stride, num_blocks, conv_exp, kernel_sizes, att_block_red)``.
        group_divisor: channels per group of the grouped 2D convolutions (1: depthwise, None: one group).
        out_channels: width of an optional 1x1 projection after the backbone (None: no projection).
        embed_dim: size of the embedding.
        num_classes: classes of an optional classification head (None: no head, the output is the embedding).
        class_dropout: dropout before the classification head (training only).
        feat_agg_dropout: dropout of the pooled features (training only).
        head_activation: activation after the head (``"softmax"``, ``"nn.Sigmoid()"``, ...; None: none).
        hop_length: front-end hop in samples (160 = 10 ms at 16 kHz).
        pooling_func: temporal pooling, one of ``POOLING_FUNCS`` (``"ASTP"`` by default).
        feat_type: front end: ``"pt"`` (PyTorch mel) or ``"tf"`` (the TensorFlow-compatible mel).
        global_context_att: ASTP attention also sees the utterance mean and standard deviation.
        emb_bn: batch norm after the embedding layer.
        spec_params: front-end options (sample rate, FFT size, normalisation, SpecAugment; ``SPEC_PARAMS``).
        return_all_outputs: ``forward`` also returns every stage's 1D output.
        tf_optimized_arch: accepted for compatibility; only False is supported.
    """

    family: ClassVar[str] = "redimnet"
    family_label: ClassVar[str] = "ReDimNet"

    F: int = 72
    C: int = 16
    block_1d_type: str = "att"
    block_2d_type: str = "convnext_like"
    # __post_init__ parses the default list (and any given layout) into StageSpec tuples.
    stages_setup: Tuple[StageSpec, ...] = field(default_factory=_default_stages)  # type: ignore[arg-type]
    group_divisor: Optional[int] = 4
    out_channels: Optional[int] = None
    embed_dim: int = 192
    num_classes: Optional[int] = None
    class_dropout: float = 0.0
    feat_agg_dropout: float = 0.0
    head_activation: Optional[str] = None
    hop_length: int = 160
    pooling_func: str = "ASTP"
    feat_type: str = "pt"
    global_context_att: bool = False
    emb_bn: bool = False
    spec_params: Mapping[str, Any] = field(default_factory=_default_spec_params)
    return_all_outputs: bool = False
    tf_optimized_arch: bool = False

    def __post_init__(self):
        self._normalise(_parse_stages)
        _validate(self)

    # ------------------------------------------------------------------ i/o
    def architecture_dict(self) -> dict:
        """:meth:`to_dict` without what only training uses (dropouts, SpecAugment settings), and
        with ``feat_type`` aliases resolved: two configurations with equal dicts compute the same
        function of the same weights."""
        out = self.to_dict()
        for key in TRAINING_ONLY_OPTIONS:
            out.pop(key)
        out["feat_type"] = self.frontend
        out["spec_params"] = {k: v for k, v in out["spec_params"].items() if k not in TRAINING_ONLY_SPEC_PARAMS}
        return out

    # ---------------------------------------------------------- derived facts
    @property
    def frontend(self) -> str:
        """``"pt"`` or ``"tf"``."""
        return self.feat_type.split("_")[0]

    @property
    def width(self) -> int:
        """Rows of the 1D view: channels x frequency, constant through the backbone."""
        return self.C * self.F

    @property
    def backbone_dim(self) -> int:
        """Channels of the backbone output that the pooling sees."""
        return self.out_channels if self.out_channels is not None else self.width

    def stage_shapes(self):
        """(channels, frequency) at the input of every stage, then at the output."""
        c, f = self.C, self.F
        shapes = []
        for stage in self.stages_setup:
            shapes.append((c, f))
            c, f = c * stage.stride, f // stage.stride
        shapes.append((c, f))
        return shapes


# ---------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------


_STAGE_FIELDS = ("stride", "num_blocks", "conv_exp", "kernel_sizes", "att_block_red")


def _parse_stage(where: str, stage) -> StageSpec:
    stride, num_blocks, conv_exp, kernel_sizes, att_red = stage
    if stride not in (1, 2, 3) or not is_int(stride):
        raise ConfigError(f"{where}: stride must be 1, 2 or 3, got {stride!r}")
    if not is_int(num_blocks) or num_blocks < 0:
        raise ConfigError(f"{where}: num_blocks must be an integer >= 0, got {num_blocks!r}")
    positive_int(f"{where}: conv_exp", conv_exp)
    positive_int(f"{where}: att_block_red", att_red, allow_none=True)
    return StageSpec(stride, num_blocks, conv_exp, _parse_kernels(where, kernel_sizes), att_red)


def _parse_stages(stages) -> Tuple[StageSpec, ...]:
    return parse_stage_list(stages, StageSpec, ", ".join(_STAGE_FIELDS), _parse_stage, mapping_keys=_STAGE_FIELDS)


def _parse_kernels(where: str, kernel_sizes) -> Tuple[Tuple[int, ...], ...]:
    if isinstance(kernel_sizes, (str, bytes)) or not isinstance(kernel_sizes, Sequence):
        raise ConfigError(f"{where}: kernel_sizes must be a list such as [(3, 3)], got {kernel_sizes!r}")
    out = []
    for kernel in kernel_sizes:
        kernel = (kernel,) if is_int(kernel) else kernel
        if not isinstance(kernel, Sequence) or not all(is_int(k) and k > 0 for k in kernel):
            raise ConfigError(f"{where}: kernel_sizes entries must be positive integers or pairs, got {kernel!r}")
        out.append(tuple(kernel))
    return tuple(out)


def _validate_spec_params(config: ModelConfig):
    frontend = config.frontend
    params = config.spec_params
    allowed = SPEC_PARAMS[frontend]
    for key in params:
        if key in ("n_mels", "hop_length"):
            raise ConfigError(
                f"spec_params[{key!r}] is set by the model option "
                f"{'F' if key == 'n_mels' else 'hop_length'}; remove it from spec_params"
            )
        if key not in allowed:
            raise ConfigError(
                f"spec_params[{key!r}] is not an option of the {frontend!r} front end; "
                f"known: {', '.join(sorted(allowed))}"
            )
    validate_front_end_options(params, band=True, spec_norms=SPEC_NORMS)


def _validate(config: ModelConfig):
    check_shared_options(config)
    probability("class_dropout", config.class_dropout)
    parse_head_activation(config.head_activation)
    choice("pooling_func", config.pooling_func, POOLING_FUNCS)
    choice("feat_type", config.feat_type, FEAT_TYPES)
    flag("global_context_att", config.global_context_att)
    flag("emb_bn", config.emb_bn)
    flag("return_all_outputs", config.return_all_outputs)
    if config.tf_optimized_arch is not False:
        raise ConfigError(
            "tf_optimized_arch=True is not supported: the published original code does not "
            "define that variant either; use tf_optimized_arch=False"
        )
    _validate_spec_params(config)

    # Shapes through the stages.
    c, f = config.C, config.F
    width = config.width
    for index, stage in enumerate(config.stages_setup):
        where = f"stages_setup[{index}]"
        if f % stage.stride != 0:
            raise ConfigError(
                f"{where}: stride {stage.stride} does not divide the {f} frequency bins "
                f"left at this stage (F={config.F}); change F or the strides"
            )
        c, f = c * stage.stride, f // stage.stride
        expanded = c * stage.conv_exp
        check_groups(config.group_divisor, expanded, f"the 2D blocks of {where}")
        if stage.conv_exp != 1:
            check_groups(config.group_divisor, c, f"the channel squeeze of {where}")
        check_time_context(where, stage.att_block_red, width, config.block_1d_type)
    check_pooling_channels(config.pooling_func, config.backbone_dim)
    if config.head_activation is not None and config.num_classes is None:
        raise ConfigError(
            "head_activation is set but num_classes is None: the activation belongs to the "
            "classification head; set num_classes or drop head_activation"
        )
