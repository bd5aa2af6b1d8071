"""Named model presets b0-b6 and the builder.

Every preset is the configuration of a published ReDimNet size (the vox2
release models), with the paper's numbers for it.  ``build(name, **overrides)``
makes a randomly initialised model; loading released weights goes through
:func:`redimnet.load_checkpoint`.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .config import ModelConfig
from .errors import InvalidArgumentError
from .model import ReDimNet

# Shared by every vox2 release model (see the release files' model_config).
_VOX2_COMMON = dict(
    F=72, block_1d_type="conv+att", out_channels=None, embed_dim=192, hop_length=240,
    pooling_func="ASTP", global_context_att=True, feat_type="pt", emb_bn=False,
)


def _stages(*rows: Tuple[int, int, int, Optional[int]]) -> list:
    """Stage rows ``(stride, num_blocks, conv_exp, att_block_red)``; all use 3x3 kernels."""
    return [(stride, blocks, exp, [(3, 3)], red) for stride, blocks, exp, red in rows]


@dataclass(frozen=True)
class Preset:
    """A named configuration with the numbers the paper reports for it.

    ``paper_eer`` holds Vox1-O / Vox1-E / Vox1-H EER (%) of the large-margin
    fine-tuned model without AS-Norm, ``paper_eer_asnorm`` the same with AS-Norm.
    """

    name: str
    config: ModelConfig
    paper_params_m: float
    paper_gmacs: float
    paper_eer: Tuple[float, float, float]
    paper_eer_asnorm: Tuple[float, float, float]
    notes: str = ""
    extra: Dict[str, str] = field(default_factory=dict)


def _preset(name, options, params, gmacs, eer, eer_asnorm) -> Preset:
    return Preset(name, ModelConfig.from_dict({**_VOX2_COMMON, **options}), params, gmacs, eer, eer_asnorm)


_PRESETS: Dict[str, Preset] = {p.name: p for p in [
    _preset("b0", dict(F=60, C=10, block_2d_type="basic_resnet", group_divisor=1, stages_setup=_stages(
        (1, 2, 1, 30), (2, 3, 2, 30), (1, 3, 3, 30), (2, 4, 2, 10), (1, 3, 1, 10))),
        1.0, 0.43, (1.16, 1.25, 2.20), (1.07, 1.18, 2.01)),
    _preset("b1", dict(C=12, block_2d_type="convnext_like", group_divisor=8, stages_setup=_stages(
        (1, 2, 1, None), (2, 3, 1, None), (3, 4, 1, 12), (2, 5, 1, 12), (2, 3, 1, 8))),
        2.2, 0.54, (0.85, 0.97, 1.73), (0.73, 0.89, 1.57)),
    _preset("b2", dict(C=16, block_2d_type="convnext_like", group_divisor=4, stages_setup=_stages(
        (1, 2, 1, 12), (2, 2, 1, 12), (1, 3, 1, 12), (2, 4, 1, 8), (1, 4, 1, 8), (2, 4, 1, 4))),
        4.7, 0.90, (0.57, 0.76, 1.32), (0.52, 0.74, 1.27)),
    _preset("b3", dict(C=16, block_2d_type="basic_resnet_fwse", group_divisor=1, stages_setup=_stages(
        (1, 6, 4, 32), (2, 6, 2, 32), (1, 8, 2, 32), (2, 10, 2, 16), (1, 10, 1, 16), (2, 8, 1, 16))),
        3.0, 3.00, (0.50, 0.73, 1.33), (0.47, 0.69, 1.23)),
    _preset("b4", dict(C=32, block_2d_type="basic_resnet_fwse", group_divisor=1, stages_setup=_stages(
        (1, 4, 2, 48), (2, 4, 2, 48), (1, 6, 2, 48), (2, 6, 1, 32), (1, 8, 1, 24), (2, 4, 1, 16))),
        6.3, 4.80, (0.51, 0.68, 1.26), (0.44, 0.64, 1.17)),
    _preset("b5", dict(C=32, block_2d_type="basic_resnet_fwse", group_divisor=16, stages_setup=_stages(
        (1, 4, 2, 48), (2, 4, 2, 48), (1, 6, 2, 48), (2, 6, 1, 32), (1, 8, 1, 24), (2, 4, 1, 16))),
        9.2, 9.87, (0.43, 0.61, 1.08), (0.39, 0.59, 1.05)),
    _preset("b6", dict(C=32, block_2d_type="basic_resnet", group_divisor=32, stages_setup=_stages(
        (1, 4, 4, 32), (2, 6, 2, 32), (1, 6, 2, 24), (3, 8, 1, 24), (1, 8, 1, 16), (2, 8, 1, 16))),
        15.0, 20.27, (0.40, 0.55, 1.05), (0.37, 0.53, 1.00)),
]}


def list_models() -> List[str]:
    """Names accepted by :func:`build`."""
    return sorted(_PRESETS)


def get_preset(name: str) -> Preset:
    """The :class:`Preset` called ``name`` (case-insensitive)."""
    key = str(name).lower()
    if key not in _PRESETS:
        raise InvalidArgumentError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return _PRESETS[key]


def build(name: str, **overrides) -> ReDimNet:
    """A randomly initialised ReDimNet of preset ``name``, with options overridden.

    >>> build("b2", num_classes=5994).config.num_classes
    5994
    """
    return ReDimNet(get_preset(name).config.replace(**overrides))
