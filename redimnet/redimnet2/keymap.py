"""Names of ReDimNet2 parameters in the official implementation's checkpoints.

One function, :func:`original_key`, turns one of our ``state_dict`` keys into
the official one; loading inverts the table it gives, saving applies it.
Blocks shared with ReDimNet keep ReDimNet's renaming rules.
"""

import re
from typing import Dict, Iterable

from ..keymap import _CONVNEXT, _FRONTEND, _HEAD, _POOLING, _RESNET, _apply, _time_context_key
from .config import ReDimNet2Config

_FRONTEND_TF_SPEC = {
    "preemphasis.kernel": "spectrogram.1.flipped_filter",
    "dft_real": "spectrogram.2.real_kernel_pt",
    "dft_imag": "spectrogram.2.image_kernel_pt",
}


def _stage_layout(index: int, config: ReDimNet2Config) -> dict:
    """Positions of a stage's parts inside the official ``nn.Sequential``."""
    spec = config.stages_setup[index]
    conv = 3 if config.use_freq_pos_enc else 2  # after the mixer (0), the 2D reshape (1), the encoding (2)
    squeeze = conv + 1 + spec.num_blocks
    to_1d = squeeze + (1 if spec.conv_exp != 1 else 0)
    context = to_1d + 1
    upsample = context + (1 if spec.att_block_red is not None else 0)
    return {"conv": conv, "squeeze": squeeze, "context": context, "norm": upsample + 1}


def _stage_key(index: int, rest: str, config: ReDimNet2Config) -> str:
    spec = config.stages_setup[index]
    dual = config.dual_agg and spec.att_block_red is not None
    seq = f"stage{index}_pre" if dual else f"stage{index}"
    at = _stage_layout(index, config)
    head, _, inner = rest.partition(".")
    if head == "mixer":
        return f"{seq}.0.{inner.replace('logits', 'w')}"
    if head == "freq_encoding":
        return f"{seq}.2.{inner.replace('embedding.', 'freq_embedder.')}"
    if head == "pool":
        return f"{seq}.{at['conv']}.{inner}"
    if head == "blocks":
        block, _, inner = inner.partition(".")
        rules = _CONVNEXT if config.block_2d_type.startswith("convnext") else _RESNET
        return f"{seq}.{at['conv'] + 1 + int(block)}.conv_block.{_apply(rules, inner)}"
    if head == "squeeze":
        part, _, leaf = inner.partition(".")
        return f"{seq}.{at['squeeze']}.{ {'conv': 0, 'norm': 1}[part] }.{leaf}"
    if head == "time_context":
        where = f"stage{index}_1d" if dual else f"{seq}.{at['context']}"
        return f"{where}.{_time_context_key(inner, config.block_1d_type)}"
    if head == "norm":
        return f"stage{index}_up_2d.1.{inner}" if dual else f"{seq}.{at['norm']}.{inner}"
    if head == "norm_1d":
        return f"stage{index}_up_1d.1.{inner}"
    raise KeyError(rest)


def original_key(key: str, config: ReDimNet2Config) -> str:
    """The official implementation's name for our ``state_dict`` key ``key``."""
    if key.startswith("frontend."):
        rest = key[len("frontend.") :]
        if rest.startswith("spec_norm."):
            return "spec." + rest
        if config.frontend == "tf_spec":
            return "spec." + _FRONTEND_TF_SPEC[rest]
        return "spec." + _FRONTEND[config.frontend][rest]
    if key.startswith("backbone."):
        rest = key[len("backbone.") :]
        match = re.match(r"stages\.(\d+)\.(.*)", rest)
        if match:
            return "backbone." + _stage_key(int(match.group(1)), match.group(2), config)
        if rest.startswith("stem."):
            return "backbone.stem." + _apply([(r"^stem\.conv\.", "0."), (r"^stem\.norm\.", "1.")], rest)
        if rest.startswith("stem_norm."):
            return "backbone.stem_gnorm." + rest[len("stem_norm.") :]
        if rest.startswith("mixer."):
            return "backbone.fin_wght1d." + rest[len("mixer.") :].replace("logits", "w")
        if rest.startswith("head."):
            return "backbone." + rest
    if key.startswith("pool."):
        return "pool." + _apply(_POOLING.get(config.pooling_func, []), key[len("pool.") :])
    renamed = _apply(_HEAD, key)
    if renamed != key:
        return renamed
    raise KeyError(f"no official ReDimNet2 name known for {key!r}")


def original_names(keys: Iterable[str], config: ReDimNet2Config) -> Dict[str, str]:
    """``{our_key: official_key}`` for every key."""
    return {key: original_key(key, config) for key in keys}
