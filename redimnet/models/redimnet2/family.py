"""The ReDimNet2 family (PalabraAI): its classes, its architectures redimnet2-b0 ... b6 (and the
VoxBlink2 b6) and their published weights, and how its release files are recognised."""

from typing import Any, Mapping, Sequence

from ..common.family import Family, FamilyParts, register_family
from . import presets

# Options only the ReDimNet2 constructor has.
ONLY_OPTIONS = frozenset(
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


def marks(model_config: Any) -> bool:
    """A ReDimNet2 ``model_config``: it has options ReDimNet does not (every runnable one says
    ``causal``) or gives each stage's stride as a ``(freq, time)`` pair."""
    return isinstance(model_config, Mapping) and bool(
        ONLY_OPTIONS & set(model_config) or _has_stride_pairs(model_config.get("stages_setup"))
    )


def _parts() -> FamilyParts:
    from .config import ReDimNet2Config
    from .keymap import original_names
    from .network import ReDimNet2

    return FamilyParts(ReDimNet2Config, ReDimNet2, original_names)


FAMILY = register_family(
    Family(
        "redimnet2",
        "ReDimNet2, the successor family (its own stage wiring and options)",
        _parts,
        marks=marks,
        release_url=presets.RELEASE_URL,
    )
)


def _arch_name(key: str) -> str:
    return "redimnet2-" + key.replace("_", "-")


for _key in presets.OPTIONS:
    _parameters, _macs = presets.MEASURED[_key]
    _params_m, _gmacs, _eer = presets.PUBLISHED[_key]
    _notes = (
        "the VoxBlink2 + VoxCeleb2 release of b6 (agg_gnorm); other EER %: "
        + ", ".join(f"{k} {v}" for k, v in presets.VB2_EXTRA_EER.items())
        if _key == "b6_vb2"
        else ""
    )
    FAMILY.add_architecture(
        _arch_name(_key),
        presets.options(_key),
        parameters=_parameters,
        macs_2s=_macs,
        paper_params_m=_params_m,
        paper_gmacs=_gmacs,
        paper_eer=_eer,
        notes=_notes,
    )
for _model, _dataset, _train_type, _key in presets.RELEASES:  # "lm" first: the default
    FAMILY.add_weights(
        _arch_name(_key),
        _dataset,
        _train_type,
        presets.LICENSE,
        eer=presets.PUBLISHED[_key][2] if _train_type == "lm" else None,
        file_stem=_model,
    )
