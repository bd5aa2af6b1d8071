"""Names of ReDimNet parameters in the original implementation's checkpoints: its stage layout.

What ReDimNet shares with ReDimNet2 (block, front-end, pooling and head names, the start of every
stage, the walk over a key) is in :mod:`redimnet.models.common.keymap`.
"""

from typing import Dict, Iterable

from ..common.keymap import official_key, stage_part_key, time_context_key
from .config import ModelConfig


def _stage_key(index: int, rest: str, config: ModelConfig) -> str:
    spec = config.stages_setup[index]
    pool_at = 2  # after the mixer (0) and the 2D reshape (1)
    if rest.startswith("time_context."):
        squeeze_at = pool_at + 1 + spec.num_blocks
        context_at = squeeze_at + (1 if spec.conv_exp != 1 else 0) + 1  # skip the 1D reshape
        return f"stage{index}.{context_at}.{time_context_key(rest[len('time_context.') :], config.block_1d_type)}"
    return f"stage{index}.{stage_part_key(rest, config, index, pool_at)}"


_PROJECTION = {"projection.conv.": "mfa.0.", "projection.norm.": "mfa.1."}


def original_key(key: str, config: ModelConfig) -> str:
    """The original implementation's name for our ``state_dict`` key ``key``."""
    return official_key(
        key, config, family="ReDimNet", stage=lambda index, rest: _stage_key(index, rest, config), backbone=_PROJECTION
    )


def original_names(keys: Iterable[str], config: ModelConfig) -> Dict[str, str]:
    """``{our_key: original_key}`` for every key."""
    return {key: original_key(key, config) for key in keys}
