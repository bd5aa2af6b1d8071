"""ReDimNet2 configuration: the constructor options of the official ``ReDimNet2Wrap``, validated.

A :class:`ReDimNet2Config` holds exactly the keyword arguments a ReDimNet2
release file stores in its ``model_config`` (same names, same meaning), so a
configuration read from an official file can be used as it is and one written
here is read by the official code.  Every value is checked when the object is
made; an unknown option, an impossible value, or an option the official code
accepts but cannot run raises :class:`redimnet.errors.ConfigError` (a ``ValueError``) naming the option.

Differences from ReDimNet's :class:`redimnet.ModelConfig`: a stage's stride is a
``(freq, time)`` pair (the network pools time too and upsamples back), the
channel expansion ``conv_exp`` may be fractional, the 2D kernel sizes are used,
and there are options for the aggregation (``dual_agg``, ``agg_gnorm``), the
output head (``return_2d_output``) and the front end ``tf_spec``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Optional, Sequence, Tuple, Union

from ..._utils.validation import choice, flag, is_int, is_number, positive_int
from ...errors import ConfigError
from ..common.config import (
    ReleaseConfig,
    check_groups,
    check_pooling_channels,
    check_shared_options,
    check_time_context,
    parse_stage_list,
    validate_front_end_options,
)

POOLING_FUNCS = ("TAP", "TMAP", "TSDP", "TSTP", "ASTP", "MHASTP", "MQMHASTP")
FEAT_TYPES = ("pt", "pt_mel", "tf", "tf_mel", "tf_spec")

# What the official wrapper accepts but cannot run, and why (see the fixtures' notes).
_UNRUNNABLE = {
    "feat_type": {"pt_stft": "the official 'pt_stft' front end does not run inside ReDimNet2Wrap"},
    "pooling_func": {"TSTP_var": "the official TSTP_var pooling fails to construct"},
}

_SPEC_AUG = {"do_spec_aug", "freq_start_bin", "freq_mask_width", "time_mask_width"}
_SIGNAL = {"sample_rate", "n_fft", "win_length", "norm_signal", "do_preemph"}
SPEC_PARAMS = {
    "pt": _SIGNAL | _SPEC_AUG | {"f_min", "f_max", "spec_norm", "num_apply_spec_aug"},
    "tf": _SIGNAL | _SPEC_AUG | {"f_min", "f_max", "eps"},
    # n_mels, f_min and f_max are accepted (and unused) by the official spectrogram front end.
    "tf_spec": _SIGNAL | _SPEC_AUG | {"hop_length", "eps", "num_apply_spec_aug", "n_mels", "f_min", "f_max"},
}
SPEC_NORMS = ("mn", "mvn", "bn")

Number = Union[int, float]


def _default_stages() -> list:
    # The official wrapper's default layout.
    return [
        ((1, 1), 2, 4, [(3, 3)], 24),
        ((2, 1), 3, 3, [(3, 3)], 24),
        ((1, 2), 4, 2, [(3, 3)], 24),
        ((2, 1), 5, 1, [(3, 3)], 24),
        ((1, 2), 4, 1, [(3, 3)], 24),
        ((2, 1), 3, 1, [(3, 3)], 24),
    ]


def _default_spec_params() -> dict:
    return {"do_spec_aug": False, "freq_mask_width": (0, 6), "time_mask_width": (0, 8)}


@dataclass(frozen=True)
class Stage2Spec:
    """One ReDimNet2 stage: ``((freq_stride, time_stride), num_blocks, conv_exp, kernel_sizes, att_block_red)``.

    * ``freq_stride`` divides the frequency bins and multiplies the channels (C x F stays constant).
    * ``time_stride`` multiplies the stage's time pooling; the pooling is cumulative over
      stages (stage ``i`` pools time by the product of the time strides up to ``i``) and
      the stage's output is upsampled back to the full frame rate.
    * ``conv_exp``: channel expansion inside the 2D blocks (may be fractional; the
      width is ``int(channels * conv_exp)``).
    * ``kernel_sizes``: kernels of the ConvNeXt blocks' parallel depthwise convolutions
      (the ResNet blocks always use 3x3).
    * ``att_block_red``: the 1D block works on ``C*F // att_block_red`` channels; None: no 1D block.
    """

    freq_stride: int
    time_stride: int
    num_blocks: int
    conv_exp: Number
    kernel_sizes: Tuple[Tuple[int, ...], ...]
    att_block_red: Optional[int]

    def as_original(self) -> tuple:
        """The tuple form the official constructor takes."""
        return (
            (self.freq_stride, self.time_stride),
            self.num_blocks,
            self.conv_exp,
            [tuple(k) for k in self.kernel_sizes],
            self.att_block_red,
        )


@dataclass(frozen=True)
class ReDimNet2Config(ReleaseConfig):
    """Constructor options of ``ReDimNet2Wrap``, with the official names.

    Defaults are the official ones except ``causal``, whose official default
    (False) makes the official class raise; ``"none"`` is the only value it runs.
    ``num_classes``, ``feat_agg_dropout`` and ``head_activation`` are kept (the
    official class accepts them) but have no effect, as there.

    Args:
        F: mel bins of the front end.
        C: channels of the stem; channels x frequency stays ``C * F`` through the stages.
        causal: ``"none"`` (the only value the official code runs).
        spec_in_channels: input channels of the stem (only 1 is supported).
        out_channels: width of an optional 1x1 head after the backbone (None: no head).
        block_1d_type: time-context layers of the stages (``"fc"``, ``"conv"``, ``"att"``, ``"conv+att"``).
        block_2d_type: 2D block of the stages (e.g. ``"basic_resnet"``, ``"convnext_like"``).
        compress_tconvs: the stages' time-pooling convolutions are grouped.
        return_2d_output: the head works on the 2D map (else on the 1D view).
        use_freq_pos_enc: add a learnt frequency-position encoding before each stage.
        fm_weigthing_type: stage-mixing weights (only ``"NC"`` is supported).
        stages_setup: the stages, as :class:`Stage2Spec` or the official 5-tuples.
        group_divisor: channels per group of the grouped 2D convolutions (1: depthwise, None: one group).
        dual_agg: a stage with a time-context block passes on its output both before and after that block.
        agg_gnorm: group norms on the aggregated stage outputs.
        embed_dim: size of the embedding.
        num_classes: accepted, no effect (see above).
        feat_agg_dropout: accepted, no effect (see above).
        head_activation: accepted, no effect (see above).
        hop_length: front-end hop in samples.
        pooling_func: temporal pooling (``"ASTP"``, ``"TMAP"``, ...).
        pad_right_samples: zeros appended to every waveform before the front end (None: none).
        before_pool_offset: frames dropped at the start before pooling (None: none).
        feat_type: front end: ``"pt"``, ``"tf"`` or ``"tf_spec"``.
        global_context_att: ASTP attention also sees the utterance mean and standard deviation.
        emb_bn: batch norm after the embedding layer.
        spec_params: front-end options (sample rate, FFT size, SpecAugment).
        return_all_outputs: ``forward`` also returns every stage's 1D output.
    """

    family: ClassVar[str] = "redimnet2"
    family_label: ClassVar[str] = "ReDimNet2"

    F: int = 72
    C: int = 24
    causal: str = "none"
    spec_in_channels: int = 1
    out_channels: Optional[int] = None
    block_1d_type: str = "conv+att"
    block_2d_type: str = "basic_resnet"
    compress_tconvs: bool = True
    return_2d_output: bool = False
    use_freq_pos_enc: bool = False
    fm_weigthing_type: str = "NC"
    # __post_init__ parses the default list (and any given layout) into Stage2Spec tuples.
    stages_setup: Tuple[Stage2Spec, ...] = field(default_factory=_default_stages)  # type: ignore[arg-type]
    group_divisor: Optional[int] = 1
    dual_agg: bool = False
    agg_gnorm: bool = False
    embed_dim: int = 192
    num_classes: Optional[int] = None
    feat_agg_dropout: float = 0.0
    head_activation: Optional[str] = None
    hop_length: int = 160
    pooling_func: str = "ASTP"
    pad_right_samples: Optional[int] = None
    before_pool_offset: Optional[int] = None
    feat_type: str = "pt"
    global_context_att: bool = True
    emb_bn: bool = False
    spec_params: Mapping[str, Any] = field(default_factory=_default_spec_params)
    return_all_outputs: bool = False

    def __post_init__(self):
        self._normalise(_parse_stages)
        _validate(self)

    # ------------------------------------------------------------------ i/o
    # ---------------------------------------------------------- derived facts
    @property
    def frontend(self) -> str:
        """``"pt"``, ``"tf"`` or ``"tf_spec"``."""
        return "tf_spec" if self.feat_type == "tf_spec" else self.feat_type.split("_")[0]

    @property
    def width(self) -> int:
        """Rows of the 1D view: channels x frequency, constant through the backbone."""
        return self.C * self.F

    @property
    def time_stride(self) -> int:
        """Total time pooling: frames are cut to a multiple of it."""
        return math.prod(s.time_stride for s in self.stages_setup)

    @property
    def freq_stride(self) -> int:
        return math.prod(s.freq_stride for s in self.stages_setup)

    def stage_shapes(self):
        """(channels, frequency) at the input of every stage, then at the output."""
        c, f = self.C, self.F
        shapes = []
        for stage in self.stages_setup:
            shapes.append((c, f))
            c, f = c * stage.freq_stride, f // stage.freq_stride
        shapes.append((c, f))
        return shapes

    @property
    def backbone_dim(self) -> int:
        """Channels of the (flattened) backbone output that the pooling sees."""
        if self.out_channels is None:
            return self.width
        if self.return_2d_output:
            return (self.F // self.freq_stride) * self.out_channels
        return self.out_channels

    @property
    def num_feature_maps(self) -> int:
        """1D maps the final aggregation mixes: the stem and one per stage (two per dual stage)."""
        return 1 + sum(2 if self.dual_agg and s.att_block_red is not None else 1 for s in self.stages_setup)


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------


def _parse_stage(where: str, stage) -> Stage2Spec:
    stride, num_blocks, conv_exp, kernel_sizes, att_red = stage
    if (
        isinstance(stride, (str, bytes))
        or not isinstance(stride, Sequence)
        or len(stride) != 2
        or not all(is_int(s) and s > 0 for s in stride)
    ):
        raise ConfigError(
            f"{where}: the stride must be a pair (freq_stride, time_stride) of positive integers, got {stride!r}"
        )
    if not is_int(num_blocks) or num_blocks < 0:
        raise ConfigError(f"{where}: num_blocks must be an integer >= 0, got {num_blocks!r}")
    if not is_number(conv_exp) or not math.isfinite(conv_exp) or conv_exp <= 0:
        raise ConfigError(f"{where}: conv_exp must be a positive number, got {conv_exp!r}")
    positive_int(f"{where}: att_block_red", att_red, allow_none=True)
    return Stage2Spec(stride[0], stride[1], num_blocks, conv_exp, _parse_kernels(where, kernel_sizes), att_red)


def _parse_stages(stages) -> Tuple[Stage2Spec, ...]:
    layout = "(freq_stride, time_stride), num_blocks, conv_exp, kernel_sizes, att_block_red"
    return parse_stage_list(stages, Stage2Spec, layout, _parse_stage)


def _parse_kernels(where: str, kernel_sizes) -> Tuple[Tuple[int, ...], ...]:
    if isinstance(kernel_sizes, (str, bytes)) or not isinstance(kernel_sizes, Sequence) or len(kernel_sizes) == 0:
        raise ConfigError(f"{where}: kernel_sizes must be a non-empty list such as [(3, 3)], got {kernel_sizes!r}")
    out = []
    for kernel in kernel_sizes:
        kernel = (kernel, kernel) if is_int(kernel) else kernel
        if (
            isinstance(kernel, (str, bytes))
            or not isinstance(kernel, Sequence)
            or len(kernel) != 2
            or not all(is_int(k) and k > 0 for k in kernel)
        ):
            raise ConfigError(
                f"{where}: kernel_sizes entries must be positive integers or (freq, time) pairs, got {kernel!r}"
            )
        out.append(tuple(kernel))
    return tuple(out)


def _validate_spec_params(config: ReDimNet2Config):
    frontend = config.frontend
    params = config.spec_params
    allowed = SPEC_PARAMS[frontend]
    for key in params:
        if key in ("n_mels", "hop_length") and key not in allowed:
            raise ConfigError(
                f"spec_params[{key!r}] is set by the model option "
                f"{'F' if key == 'n_mels' else 'hop_length'}; remove it from spec_params"
            )
        if key not in allowed:
            raise ConfigError(
                f"spec_params[{key!r}] is not an option of the {config.feat_type!r} front end; "
                f"known: {', '.join(sorted(allowed))}"
            )
    validate_front_end_options(
        params,
        band=frontend != "tf_spec",
        spec_norms=SPEC_NORMS,
        spec_norm_note=" (the official front end fails on it)",
    )
    n_fft = params.get("n_fft", 512)
    if frontend == "tf_spec" and config.F != n_fft // 4:
        raise ConfigError(
            f"feat_type='tf_spec' gives n_fft // 4 = {n_fft // 4} frequency bins (spectrum bins "
            f"averaged in pairs), so F must be {n_fft // 4}, got F={config.F}"
        )


def _validate(config: ReDimNet2Config):
    for name, bad in _UNRUNNABLE.items():
        value = getattr(config, name)
        if isinstance(value, str) and value in bad:
            raise ConfigError(f"{name}={value!r} is not supported: {bad[value]}")
    if config.causal is False or config.causal in ("full", "only_1d"):
        raise ConfigError(
            f"causal={config.causal!r} is not supported: the official ReDimNet2 code runs only "
            "causal='none' (it has no causal blocks); use causal='none'"
        )
    choice("causal", config.causal, ("none",))
    if config.spec_in_channels != 1:
        raise ConfigError(
            f"spec_in_channels={config.spec_in_channels!r} is not supported: every ReDimNet2 front "
            "end gives one input channel; use spec_in_channels=1"
        )
    if config.fm_weigthing_type != "NC":
        raise ConfigError(
            f"fm_weigthing_type={config.fm_weigthing_type!r} is not supported: the official code "
            "runs only 'NC' (one weight per feature map and row); use 'NC'"
        )
    check_shared_options(config)
    if config.head_activation is not None and not isinstance(config.head_activation, str):
        raise ConfigError(f"head_activation must be a string or None, got {config.head_activation!r}")
    choice("pooling_func", config.pooling_func, POOLING_FUNCS)
    choice("feat_type", config.feat_type, FEAT_TYPES)
    for name in (
        "compress_tconvs",
        "return_2d_output",
        "use_freq_pos_enc",
        "dual_agg",
        "agg_gnorm",
        "global_context_att",
        "emb_bn",
        "return_all_outputs",
    ):
        flag(name, getattr(config, name))
    for name in ("pad_right_samples", "before_pool_offset"):
        value = getattr(config, name)
        if value is not None and (not is_int(value) or value < 0):
            raise ConfigError(f"{name} must be an integer >= 0 or None, got {value!r}")
    _validate_spec_params(config)

    width = config.width
    c, f = config.C, config.F
    for index, stage in enumerate(config.stages_setup):
        where = f"stages_setup[{index}]"
        if f % stage.freq_stride != 0:
            raise ConfigError(
                f"{where}: freq_stride {stage.freq_stride} does not divide the {f} frequency bins "
                f"left at this stage (F={config.F}); change F or the strides"
            )
        c, f = c * stage.freq_stride, f // stage.freq_stride
        expanded = int(c * stage.conv_exp)
        if expanded < 1:
            raise ConfigError(f"{where}: conv_exp={stage.conv_exp} leaves no channels ({c} x {stage.conv_exp})")
        check_groups(config.group_divisor, expanded, f"the 2D blocks of {where}")
        check_time_context(where, stage.att_block_red, width, config.block_1d_type)
    check_pooling_channels(config.pooling_func, config.backbone_dim)
