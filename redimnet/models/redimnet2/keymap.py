"""Names of ReDimNet2 parameters in the official implementation's checkpoints.

One function, :func:`original_key`, turns one of our ``state_dict`` keys into
the official one; loading inverts the table it gives, saving applies it.  What
ReDimNet2 shares with ReDimNet (block, front-end, pooling and head names, the
start of every stage) is in :mod:`redimnet.models.common.keymap`; here is its own stage layout.
"""

from typing import Dict, Iterable

from ..common.keymap import FRONTENDS, official_key, stage_part_key, time_context_key
from .config import ReDimNet2Config

_FRONTENDS = {
    **FRONTENDS,
    "tf_spec": {
        "preemphasis.kernel": "spectrogram.1.flipped_filter",
        "dft_real": "spectrogram.2.real_kernel_pt",
        "dft_imag": "spectrogram.2.image_kernel_pt",
    },
}
_BACKBONE = {"stem_norm.": "stem_gnorm.", "head.": "head."}


def _stage_layout(index: int, config: ReDimNet2Config) -> dict:
    """Positions of a stage's parts inside the official ``nn.Sequential``."""
    spec = config.stages_setup[index]
    conv = 3 if config.use_freq_pos_enc else 2  # after the mixer (0), the 2D reshape (1), the encoding (2)
    squeeze = conv + 1 + spec.num_blocks
    to_1d = squeeze + (1 if spec.conv_exp != 1 else 0)
    context = to_1d + 1
    upsample = context + (1 if spec.att_block_red is not None else 0)
    return {"conv": conv, "context": context, "norm": upsample + 1}


def _stage_key(index: int, rest: str, config: ReDimNet2Config) -> str:
    dual = config.dual_agg and config.stages_setup[index].att_block_red is not None
    seq = f"stage{index}_pre" if dual else f"stage{index}"
    at = _stage_layout(index, config)
    head, _, inner = rest.partition(".")
    if head == "freq_encoding":
        return f"{seq}.2.{inner.replace('embedding.', 'freq_embedder.')}"
    if head == "time_context":
        where = f"stage{index}_1d" if dual else f"{seq}.{at['context']}"
        return f"{where}.{time_context_key(inner, config.block_1d_type)}"
    if head == "norm":
        return f"stage{index}_up_2d.1.{inner}" if dual else f"{seq}.{at['norm']}.{inner}"
    if head == "norm_1d":
        return f"stage{index}_up_1d.1.{inner}"
    return f"{seq}.{stage_part_key(rest, config, index, at['conv'])}"


def original_key(key: str, config: ReDimNet2Config) -> str:
    """The official implementation's name for our ``state_dict`` key ``key``."""
    return official_key(
        key,
        config,
        family="ReDimNet2",
        stage=lambda index, rest: _stage_key(index, rest, config),
        backbone=_BACKBONE,
        frontends=_FRONTENDS,
    )


def original_names(keys: Iterable[str], config: ReDimNet2Config) -> Dict[str, str]:
    """``{our_key: official_key}`` for every key."""
    return {key: original_key(key, config) for key in keys}
