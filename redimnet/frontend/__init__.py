"""Waveform -> log-mel (or log-spectrum) feature front ends."""

from typing import Any, Mapping, Protocol

from ..layers.spec_augment import SpecAugment
from .base import LogMelFrontEnd
from .mel import MelSpectrogramFrontEnd
from .tf_mel import TFMelFrontEnd, TFSpectrogramFrontEnd

__all__ = [
    "FrontEndOptions",
    "LogMelFrontEnd",
    "MelSpectrogramFrontEnd",
    "TFMelFrontEnd",
    "TFSpectrogramFrontEnd",
    "make_frontend",
]

# Defaults of the original front ends for the SpecAugment options.
_SPEC_AUG_DEFAULTS = {"freq_mask_width": (0, 8), "time_mask_width": (0, 10), "freq_start_bin": 0}
# ``spec_params`` keys the official spectrogram ("tf_spec") front end accepts and does not use.
_UNUSED_BY_TF_SPEC = ("sample_rate", "n_mels", "f_min", "f_max")


class FrontEndOptions(Protocol):
    """What a front end is built from: the options every family's configuration has."""

    @property
    def F(self) -> int:  # noqa: N802 -- the original option's name
        """Mel bands."""

    @property
    def hop_length(self) -> int:
        """Frame hop in samples."""

    @property
    def frontend(self) -> str:
        """``"pt"``, ``"tf"`` or ``"tf_spec"``."""

    @property
    def spec_params(self) -> Mapping[str, Any]:
        """The front end's own options."""


def make_frontend(config: FrontEndOptions) -> LogMelFrontEnd:
    """The front end a configuration asks for (``feat_type`` and ``spec_params``)."""
    params = dict(config.spec_params)
    spec_augment = None
    if params.pop("do_spec_aug", False):
        options = {k: params.get(k, v) for k, v in _SPEC_AUG_DEFAULTS.items()}
        spec_augment = SpecAugment(**options, repeats=params.get("num_apply_spec_aug", 1))
    for key in ("freq_mask_width", "time_mask_width", "freq_start_bin", "num_apply_spec_aug"):
        params.pop(key, None)
    renamed = {"do_preemph": "preemphasis", "norm_signal": "normalize_signal"}
    options = {renamed.get(k, k): v for k, v in params.items()}
    if config.frontend == "tf_spec":  # its hop comes from spec_params (default 160), not the model option
        for key in _UNUSED_BY_TF_SPEC:
            options.pop(key, None)
        return TFSpectrogramFrontEnd(spec_augment=spec_augment, **options)
    if config.frontend == "pt":
        return MelSpectrogramFrontEnd(config.F, config.hop_length, spec_augment=spec_augment, **options)
    return TFMelFrontEnd(config.F, config.hop_length, spec_augment=spec_augment, **options)
