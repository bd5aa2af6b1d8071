"""Names of parameters in the original implementation's checkpoints.

Our modules are named for what they are; the original's are positions inside
``nn.Sequential`` containers.  :func:`original_key` turns one of our
``state_dict`` keys into the original's, and that single function serves both
directions: loading builds the inverse table from it, saving applies it.
"""

import re
from typing import Dict, Iterable

from .config import ModelConfig

# Renames inside blocks, applied in order to the part of a key below the block.
_TRANSFORMER = [
    (r"^attention\.query\.", "attention.q_proj."),
    (r"^attention\.key\.", "attention.k_proj."),
    (r"^attention\.value\.", "attention.v_proj."),
    (r"^attention\.output\.", "attention.out_proj."),
    (r"^norm1\.", "layer_norm."),
    (r"^norm2\.", "final_layer_norm."),
    (r"^feed_forward\.expand\.", "feed_forward.intermediate_dense."),
    (r"^feed_forward\.project\.", "feed_forward.output_dense."),
]
_CONVNEXT = [
    (r"^depthwise\.", "dwconvs."),
    (r"^pointwise\.", "pwconv1."),
]
_RESNET = [
    (r"^conv([12])\.spatial\.", r"conv\1."),
    (r"^conv([12])\.pointwise\.", r"conv\1pw."),
    (r"^se\.excite\.", "se.exitation."),
]
_POINTWISE_MLP = [
    (r"^expand\.", "0."),
    (r"^norm\.", "1."),
    (r"^project\.", "3."),
]
_SCORER = [
    (r"^scorers\.(\d+)\.hidden\.", r"heads_att_trans.\1.att_0."),
    (r"^scorers\.(\d+)\.score\.", r"heads_att_trans.\1.att_1."),
]
_POOLING = {
    "ASTP": [(r"^hidden\.", "linear1."), (r"^score\.", "linear2.")],
    "MHASTP": _SCORER,
    "MQMHASTP": [
        (r"^queries\.(\d+)\.scorers\.(\d+)\.hidden\.", r"n_query.\1.heads_att_trans.\2.att_0."),
        (r"^queries\.(\d+)\.scorers\.(\d+)\.score\.", r"n_query.\1.heads_att_trans.\2.att_1."),
    ],
}
_FRONTEND = {
    "pt": {
        "preemphasis.kernel": "torchfbank.1.flipped_filter",
        "window": "torchfbank.2.spectrogram.window",
        "mel_filters": "torchfbank.2.mel_scale.fb",
    },
    "tf": {
        "preemphasis.kernel": "torchfbank.1.flipped_filter",
        "dft_real": "torchfbank.2.real_kernel_pt",
        "dft_imag": "torchfbank.2.image_kernel_pt",
        "mel_filters": "torchfbank.2.melbanks_pt",
    },
}
_HEAD = [
    (r"^pool_norm\.", "bn."),
    (r"^embedding\.", "linear."),
    (r"^embedding_norm\.", "bn2."),
    (r"^classifier\.linear\.", "cls_head.2."),
]


def _apply(rules, text: str) -> str:
    for pattern, replacement in rules:
        text = re.sub(pattern, replacement, text)
    return text


def _time_context_key(rest: str, kind: str) -> str:
    if rest.startswith("reduce."):
        return "red_dim_conv.0." + rest[len("reduce.") :]
    if rest.startswith("reduce_norm."):
        return "red_dim_conv.1." + rest[len("reduce_norm.") :]
    if rest.startswith("expand."):
        return "exp_dim_conv." + rest[len("expand.") :]
    if not rest.startswith("context."):
        raise KeyError(rest)
    rest = rest[len("context.") :]
    if kind == "fc":
        return "tcm." + _apply(_POINTWISE_MLP, rest)
    index, _, inner = rest.partition(".")
    is_transformer = (kind == "att" and index == "1") or (kind == "conv+att" and index == "4")
    if kind == "att" and index == "0":
        rules = []  # position encoding: conv / norm keep their names
    else:
        rules = _TRANSFORMER if is_transformer else _CONVNEXT
    return f"tcm.{index}." + _apply(rules, inner)


def _stage_key(index: int, rest: str, config: ModelConfig) -> str:
    spec = config.stages_setup[index]
    first_block = 3  # after the mixer (0), the 2D reshape (1) and the pooling conv (2)
    squeeze_at = first_block + spec.num_blocks
    context_at = squeeze_at + (1 if spec.conv_exp != 1 else 0) + 1  # skip the 1D reshape
    head, _, inner = rest.partition(".")
    if head == "mixer":
        return f"0.{inner.replace('logits', 'w')}"
    if head == "pool":
        return f"2.{inner}"
    if head == "blocks":
        block, _, inner = inner.partition(".")
        rules = _CONVNEXT if config.block_2d_type.startswith("convnext") else _RESNET
        return f"{first_block + int(block)}.conv_block.{_apply(rules, inner)}"
    if head == "squeeze":
        part, _, leaf = inner.partition(".")
        return f"{squeeze_at}.{ {'conv': 0, 'norm': 1, 'pointwise': 3}[part] }.{leaf}"
    if head == "time_context":
        return f"{context_at}.{_time_context_key(inner, config.block_1d_type)}"
    raise KeyError(rest)


def original_key(key: str, config: ModelConfig) -> str:
    """The original implementation's name for our ``state_dict`` key ``key``."""
    if key.startswith("frontend."):
        rest = key[len("frontend.") :]
        if rest.startswith("spec_norm."):
            return "spec." + rest
        return "spec." + _FRONTEND[config.frontend][rest]
    if key.startswith("backbone."):
        rest = key[len("backbone.") :]
        match = re.match(r"stages\.(\d+)\.(.*)", rest)
        if match:
            index = int(match.group(1))
            return f"backbone.stage{index}.{_stage_key(index, match.group(2), config)}"
        if rest.startswith("stem."):
            return "backbone.stem." + _apply([(r"^stem\.conv\.", "0."), (r"^stem\.norm\.", "1.")], rest)
        if rest.startswith("mixer."):
            return "backbone.fin_wght1d." + rest[len("mixer.") :].replace("logits", "w")
        if rest.startswith("projection."):
            return "backbone.mfa." + _apply([(r"^projection\.conv\.", "0."), (r"^projection\.norm\.", "1.")], rest)
    if key.startswith("pool."):
        return "pool." + _apply(_POOLING.get(config.pooling_func, []), key[len("pool.") :])
    renamed = _apply(_HEAD, key)
    if renamed != key:
        return renamed
    raise KeyError(f"no original name known for {key!r}")


def original_names(keys: Iterable[str], config: ModelConfig) -> Dict[str, str]:
    """``{our_key: original_key}`` for every key."""
    return {key: original_key(key, config) for key in keys}
