"""ReDimNet2 presets b0-b6 and the published weight files.

The official repository publishes weight files, not configurations; the
configurations here are reconstructed (stage tables as in WeSpeaker's ReDimNet2
port, b3 with the class's default stages) and agree with the released sizes.
Parameters and MACs (2 s of audio, front end included) are measured on this
implementation; the published figures are the official README's.
"""

from typing import Dict, Optional, Tuple

RELEASE_URL = "https://github.com/PalabraAI/redimnet2/releases/download/v1.0.0/"
"""Where the ReDimNet2 authors publish their weight files: ``{model}-{dataset}-{train_type}.pt``."""

LICENSE = "MIT"  # the repository's README: the code and the released weights

# Shared by every release configuration.
COMMON = dict(
    F=72,
    causal="none",
    block_1d_type="conv+att",
    block_2d_type="basic_resnet",
    compress_tconvs=True,
    emb_bn=False,
    embed_dim=192,
    feat_type="tf",
    fm_weigthing_type="NC",
    global_context_att=True,
    group_divisor=1,
    hop_length=160,
    pooling_func="ASTP",
    return_2d_output=True,
    spec_in_channels=1,
    spec_params={"do_preemph": True, "do_spec_aug": False, "norm_signal": True},
)


def _stages(*rows, kernels=((3, 3),)):
    """Rows ``(freq_stride, time_stride, num_blocks, conv_exp, att_block_red[, kernel])``."""
    out = []
    for row in rows:
        sf, st, blocks, exp, red = row[:5]
        kernel = [row[5]] if len(row) > 5 else [tuple(k) for k in kernels]
        out.append(((sf, st), blocks, exp, kernel, red))
    return out


OPTIONS: Dict[str, dict] = {
    "b0": dict(
        C=12,
        out_channels=64,
        stages_setup=_stages(
            (1, 1, 2, 2, 36), (2, 1, 3, 1, 36), (1, 2, 4, 1, 36), (2, 1, 5, 1, 36), (1, 2, 4, 1, 18), (2, 1, 3, 1, 18)
        ),
    ),
    "b1": dict(
        C=16,
        out_channels=None,
        stages_setup=_stages(
            (1, 1, 2, 2, 32), (2, 1, 3, 1, 32), (1, 2, 4, 1, 32), (2, 1, 5, 1, 32), (1, 2, 4, 1, 16), (2, 1, 3, 1, 16)
        ),
    ),
    "b2": dict(
        C=20,
        out_channels=None,
        stages_setup=_stages(
            (1, 1, 2, 2, 40, (3, 5)),
            (2, 1, 3, 1, 30, (3, 5)),
            (1, 2, 4, 1, 30, (3, 5)),
            (3, 1, 5, 1, 20, (3, 5)),
            (1, 2, 4, 1, 20, (3, 7)),
            (2, 1, 3, 1, 10, (3, 7)),
        ),
    ),
    "b3": dict(C=24),  # the class's default stages
    "b4": dict(
        C=32,
        out_channels=None,
        stages_setup=_stages(
            (1, 1, 2, 4, 24), (2, 1, 3, 3, 24), (1, 2, 4, 2, 24), (2, 1, 5, 1, 24), (1, 2, 4, 1, 24), (2, 1, 3, 1, 24)
        ),
    ),
    "b5": dict(
        C=48,
        out_channels=256,
        stages_setup=_stages(
            (1, 1, 2, 4, 48), (2, 1, 3, 3, 48), (1, 2, 4, 2, 48), (2, 1, 5, 1, 48), (1, 2, 4, 1, 32), (2, 1, 3, 1, 32)
        ),
    ),
    "b6": dict(
        C=64,
        out_channels=224,
        stages_setup=_stages(
            (1, 1, 3, 3, 64),
            (2, 1, 4, 2, 64),
            (1, 2, 5, 2, 48),
            (2, 1, 5, 1, 48),
            (1, 2, 4, 0.75, 32),
            (2, 1, 3, 0.5, 24),
        ),
    ),
}
# The VoxBlink2 + VoxCeleb2 B6 release adds group norms to the aggregation.
OPTIONS["b6_vb2"] = dict(OPTIONS["b6"], agg_gnorm=True, dual_agg=False)

# Measured here: (parameters, MACs for 2 s of 16 kHz audio, front end included), by
# redimnet.models.complexity; tests check them against a fresh count and the fixtures' configs.json.
MEASURED: Dict[str, Tuple[int, int]] = {
    "b0": (1_115_220, 360_873_600),
    "b1": (2_161_488, 589_074_144),
    "b2": (3_677_760, 968_856_336),
    "b3": (4_181_576, 2_688_709_344),
    "b4": (6_659_744, 4_586_632_320),
    "b5": (8_959_272, 9_527_768_016),
    "b6": (12_394_784, 12_907_526_112),
    "b6_vb2": (12_459_296, 12_907_526_112),
}

# Published (official README): (M params, GMACs, (Vox1-O, Vox1-E, Vox1-H) EER % of the lm model).
PUBLISHED: Dict[str, Tuple[float, float, Tuple[float, float, float]]] = {
    "b0": (1.1, 0.33, (1.04, 1.16, 1.97)),
    "b1": (2.1, 0.56, (0.78, 0.96, 1.72)),
    "b2": (3.6, 0.95, (0.57, 0.76, 1.41)),
    "b3": (4.1, 2.70, (0.42, 0.66, 1.22)),
    "b4": (6.6, 4.62, (0.37, 0.58, 1.07)),
    "b5": (8.9, 9.62, (0.33, 0.56, 1.07)),
    "b6": (12.3, 13.05, (0.29, 0.52, 0.99)),
    "b6_vb2": (12.5, 13.05, (0.17, 0.34, 0.68)),
}
VB2_EXTRA_EER = {"Vox1-B": 0.95, "SITW eval-core": 0.66, "VOICES eval": 2.59, "CN-Celeb multi-enroll": 7.39}

# Published weight files: (model, dataset, train_type, preset whose configuration the file holds).
RELEASES = tuple(
    [(name, "vox2", train, name) for name in ("b0", "b1", "b2", "b3", "b4", "b5", "b6") for train in ("lm", "ptn")]
    + [("b6", "vb2+vox2_v0", "lm", "b6_vb2"), ("b6", "vb2+vox2_v0", "ptn", "b6_vb2")]
)


def options(name: str) -> dict:
    """The full ``model_config`` of preset ``name`` (``"b0"`` ... ``"b6"``, ``"b6_vb2"``)."""
    return {**COMMON, **OPTIONS[name]}


def file_name(model: str, dataset: str, train_type: str) -> str:
    return f"{model}-{dataset}-{train_type}.pt"


def url(model: str, dataset: str, train_type: str, base_url: Optional[str] = None) -> str:
    return (base_url or RELEASE_URL).rstrip("/") + "/" + file_name(model, dataset, train_type)
