"""Which model family a release file belongs to, and that family's classes.

ReDimNet and ReDimNet2 files have the same layout (``model_config`` +
``state_dict``); the family shows in the configuration: ReDimNet2 configs carry
options ReDimNet does not have (every runnable one says ``causal``) and give
each stage's stride as a ``(freq, time)`` pair.
"""

from typing import Any, Mapping, Optional, Sequence

FAMILIES = ("redimnet", "redimnet2")

# Options only the ReDimNet2 constructor has.
REDIMNET2_ONLY_OPTIONS = frozenset(
    {
        "causal",
        "spec_in_channels",
        "compress_tconvs",
        "return_2d_output",
        "use_freq_pos_enc",
        "fm_weigthing_type",
        "dual_agg",
        "agg_gnorm",
        "pad_right_samples",
        "before_pool_offset",
    }
)


def _has_stride_pairs(stages: Any) -> bool:
    if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence) or not stages:
        return False
    first = stages[0]
    if isinstance(first, (str, bytes)) or not isinstance(first, Sequence) or not first:
        return False
    return isinstance(first[0], Sequence) and not isinstance(first[0], (str, bytes))


def detect_family(model_config: Any) -> str:
    """``"redimnet2"`` or ``"redimnet"`` for a checkpoint's ``model_config``."""
    if isinstance(model_config, Mapping):
        if REDIMNET2_ONLY_OPTIONS & set(model_config) or _has_stride_pairs(model_config.get("stages_setup")):
            return "redimnet2"
    return "redimnet"


def check_family(family: Optional[str]) -> Optional[str]:
    """``family`` if it names a known family (or is None), else ValueError."""
    if family is not None and family not in FAMILIES:
        raise ValueError(f"family={family!r} is not a model family; choose one of {', '.join(FAMILIES)}")
    return family


def family_classes(family: str):
    """``(config class, model class, key-name function)`` of a family."""
    if family == "redimnet2":
        from .redimnet2.config import ReDimNet2Config
        from .redimnet2.keymap import original_names as redimnet2_names
        from .redimnet2.model import ReDimNet2

        return ReDimNet2Config, ReDimNet2, redimnet2_names
    from .redimnet import ReDimNet
    from .redimnet.config import ModelConfig
    from .redimnet.keymap import original_names

    return ModelConfig, ReDimNet, original_names


def build_model(config):
    """A randomly initialised network of the family ``config`` belongs to."""
    return family_classes(getattr(config, "family", "redimnet"))[1](config)


def family_of(model: Any) -> str:
    """The family of a model instance."""
    return getattr(model, "family", "redimnet")
