"""The ReDimNet family (IDRnD): its classes, its architectures b0-b6, M, S and their published weights."""

from ..common.family import Family, FamilyParts, register_family
from . import presets


def _parts() -> FamilyParts:
    from .config import ModelConfig
    from .keymap import original_names
    from .network import ReDimNet

    return FamilyParts(ModelConfig, ReDimNet, original_names)


FAMILY = register_family(
    Family(
        "redimnet",
        "ReDimNet, 'Reshape Dimensions Network for Speaker Recognition' (Interspeech 2024)",
        _parts,
        marks=None,  # the original release format: files without another family's marks are ReDimNet's
        release_url=presets.RELEASE_URL,
        cache_prefix="",  # the published names, as torch.hub caches them
    )
)

for _name in presets.OPTIONS:
    _parameters, _macs = presets.MEASURED[_name]
    _params_m, _gmacs, _eer, _eer_asnorm = presets.PUBLISHED[_name]
    FAMILY.add_architecture(
        _name,
        presets.options(_name),
        parameters=_parameters,
        macs_2s=_macs,
        paper_params_m=_params_m,
        paper_gmacs=_gmacs,
        paper_eer=_eer,
        paper_eer_asnorm=_eer_asnorm,
    )
for _name in presets.FILE_ONLY:
    FAMILY.add_architecture(_name, notes=presets.FILE_ONLY_NOTES)
for _arch, _dataset, _train_type, _license, _published in presets.RELEASES:
    _sha256, _size = presets.KNOWN_FILES.get(f"{_arch}-{_dataset}-{_train_type}.pt", (None, None))
    FAMILY.add_weights(_arch, _dataset, _train_type, _license, eer=_published, sha256=_sha256, size=_size)
