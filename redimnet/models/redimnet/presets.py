"""ReDimNet presets b0-b6 and the published weight files (b0-b6 on VoxCeleb2; M and S on
VoxBlink2 + VoxCeleb2 + CN-Celeb, whose configurations are published only inside their files).

The configurations are the release files' ``model_config``; parameters and MACs (2 s of audio)
are measured on this implementation; the published figures are the paper's.
"""

from typing import Dict, Optional, Tuple

from ..common.family import CC_BY_NC_SA, MIT

RELEASE_URL = "https://github.com/IDRnD/ReDimNet/releases/download/latest/"
"""Where the ReDimNet authors publish their weight files: ``{model}-{dataset}-{train_type}.pt``."""

# Shared by every vox2 release model (see the release files' model_config).
COMMON = dict(
    F=72,
    block_1d_type="conv+att",
    out_channels=None,
    embed_dim=192,
    hop_length=240,
    pooling_func="ASTP",
    global_context_att=True,
    feat_type="pt",
    emb_bn=False,
)


def _stages(*rows: Tuple[int, int, int, Optional[int]]) -> list:
    """Stage rows ``(stride, num_blocks, conv_exp, att_block_red)``; all use 3x3 kernels."""
    return [(stride, blocks, exp, [(3, 3)], red) for stride, blocks, exp, red in rows]


OPTIONS: Dict[str, dict] = {
    "b0": dict(
        F=60,
        C=10,
        block_2d_type="basic_resnet",
        group_divisor=1,
        stages_setup=_stages((1, 2, 1, 30), (2, 3, 2, 30), (1, 3, 3, 30), (2, 4, 2, 10), (1, 3, 1, 10)),
    ),
    "b1": dict(
        C=12,
        block_2d_type="convnext_like",
        group_divisor=8,
        stages_setup=_stages((1, 2, 1, None), (2, 3, 1, None), (3, 4, 1, 12), (2, 5, 1, 12), (2, 3, 1, 8)),
    ),
    "b2": dict(
        C=16,
        block_2d_type="convnext_like",
        group_divisor=4,
        stages_setup=_stages((1, 2, 1, 12), (2, 2, 1, 12), (1, 3, 1, 12), (2, 4, 1, 8), (1, 4, 1, 8), (2, 4, 1, 4)),
    ),
    "b3": dict(
        C=16,
        block_2d_type="basic_resnet_fwse",
        group_divisor=1,
        stages_setup=_stages(
            (1, 6, 4, 32), (2, 6, 2, 32), (1, 8, 2, 32), (2, 10, 2, 16), (1, 10, 1, 16), (2, 8, 1, 16)
        ),
    ),
    "b4": dict(
        C=32,
        block_2d_type="basic_resnet_fwse",
        group_divisor=1,
        stages_setup=_stages((1, 4, 2, 48), (2, 4, 2, 48), (1, 6, 2, 48), (2, 6, 1, 32), (1, 8, 1, 24), (2, 4, 1, 16)),
    ),
    "b5": dict(
        C=32,
        block_2d_type="basic_resnet_fwse",
        group_divisor=16,
        stages_setup=_stages((1, 4, 2, 48), (2, 4, 2, 48), (1, 6, 2, 48), (2, 6, 1, 32), (1, 8, 1, 24), (2, 4, 1, 16)),
    ),
    "b6": dict(
        C=32,
        block_2d_type="basic_resnet",
        group_divisor=32,
        stages_setup=_stages((1, 4, 4, 32), (2, 6, 2, 32), (1, 6, 2, 24), (3, 8, 1, 24), (1, 8, 1, 16), (2, 8, 1, 16)),
    ),
}

# Measured here: (parameters, MACs for 2 s of 16 kHz audio), by redimnet.models.complexity.
MEASURED: Dict[str, Tuple[int, int]] = {
    "b0": (1_004_251, 415_069_960),
    "b1": (2_126_937, 604_447_408),
    "b2": (4_892_849, 943_550_128),
    "b3": (3_225_021, 2_923_147_504),
    "b4": (6_441_521, 4_740_021_424),
    "b5": (7_659_761, 8_824_598_704),
    "b6": (15_015_473, 20_128_693_168),
}

# Published (the paper): (M params, GMACs, Vox1-O / Vox1-E / Vox1-H EER % without AS-Norm, with AS-Norm)
# of the large-margin fine-tuned model.
Eer = Tuple[float, float, float]
PUBLISHED: Dict[str, Tuple[float, float, Eer, Eer]] = {
    "b0": (1.0, 0.43, (1.16, 1.25, 2.20), (1.07, 1.18, 2.01)),
    "b1": (2.2, 0.54, (0.85, 0.97, 1.73), (0.73, 0.89, 1.57)),
    "b2": (4.7, 0.90, (0.57, 0.76, 1.32), (0.52, 0.74, 1.27)),
    "b3": (3.0, 3.00, (0.50, 0.73, 1.33), (0.47, 0.69, 1.23)),
    "b4": (6.3, 4.80, (0.51, 0.68, 1.26), (0.44, 0.64, 1.17)),
    "b5": (9.2, 9.87, (0.43, 0.61, 1.08), (0.39, 0.59, 1.05)),
    "b6": (15.0, 20.27, (0.40, 0.55, 1.05), (0.37, 0.53, 1.00)),
}

# Architectures published only inside their weight files.
FILE_ONLY = ("M", "S")
FILE_ONLY_NOTES = (
    "trained on VoxBlink2 (+ VoxCeleb2 + CN-Celeb); the configuration is published only inside the weight files"
)

# Published weight files: (model, dataset, train_type, licence, published EER or None), the
# architecture's default (its fine-tuned model) first; b0-b6's fine-tuned EERs are the paper's.
RELEASES: Tuple[Tuple[str, str, str, str, Optional[Eer]], ...] = tuple(
    [
        row
        for name in OPTIONS
        for row in ((name, "vox2", "ft_lm", MIT, PUBLISHED[name][2]), (name, "vox2", "ptn", MIT, None))
    ]
    + [
        ("M", "vb2+vox2+cnc", "ft_mix", CC_BY_NC_SA, (0.835, 0.745, 1.284)),
        ("M", "vb2", "ptn", CC_BY_NC_SA, None),
        ("S", "vb2+vox2+cnc", "ft_mix", CC_BY_NC_SA, (0.936, 0.874, 1.510)),
        ("S", "vb2", "ptn", CC_BY_NC_SA, None),
    ]
)

# (SHA-256, size in bytes) of the published files whose hash is known.
KNOWN_FILES: Dict[str, Tuple[str, int]] = {
    "b2-vox2-ft_lm.pt": ("c9b6bb2f6747caa28a41eaf2e372d66b0d1563baef186d18f5e99abd5e71e06f", 20_582_650),
    "b2-vox2-ptn.pt": ("c18a42926878bc8ac079623fbf36f0bc8054cda1199e96fbe1a3f8e131796647", 20_581_530),
    "b5-vox2-ft_lm.pt": ("8b0c11bbf5a3a8bb39e5c072c4192d0b694d8c447cf126d4cd3c7346a04b39c8", 31_174_382),
}


def options(name: str) -> dict:
    """The full ``model_config`` of preset ``name`` (``"b0"`` ... ``"b6"``)."""
    return {**COMMON, **OPTIONS[name]}
