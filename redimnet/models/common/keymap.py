"""Names of parameters in the official implementations' checkpoints: what both families share.

Our modules are named for what they are; the official ones are positions inside
``nn.Sequential`` containers.  A family's ``original_key`` turns one of our
``state_dict`` keys into the official one, and that single function serves both
directions: loading builds the inverse table from it, saving applies it.

Here: the renaming rules of the blocks, front ends, pooling and head, the layout every stage
starts with, and :func:`official_key`, the walk over a key; each family's key map
(:mod:`redimnet.models.redimnet.keymap`, :mod:`redimnet.models.redimnet2.keymap`) adds its stage layout.
"""

import re
from typing import Callable, Mapping

from .config import NetworkOptions

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
FRONTENDS = {
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
# Backbone parts outside the stages: our prefix -> the official one.
_BACKBONE = {"stem.conv.": "stem.0.", "stem.norm.": "stem.1.", "mixer.logits": "fin_wght1d.w"}
_HEAD = [
    (r"^pool_norm\.", "bn."),
    (r"^embedding\.", "linear."),
    (r"^embedding_norm\.", "bn2."),
    (r"^classifier\.linear\.", "cls_head.2."),
]


_SQUEEZE = {"conv": 0, "norm": 1, "pointwise": 3}


def _apply(rules, text: str) -> str:
    for pattern, replacement in rules:
        text = re.sub(pattern, replacement, text)
    return text


def time_context_key(rest: str, kind: str) -> str:
    """The official name of ``rest``, a key below a stage's time-context block of type ``kind``."""
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


def stage_part_key(rest: str, config: NetworkOptions, index: int, pool_at: int) -> str:
    """The official name, inside stage ``index``'s ``nn.Sequential``, of a part every stage has
    (``rest`` is our key below ``stages.<index>.``): the mixer at 0, the pooling convolution at
    ``pool_at``, then the 2D blocks and the channel squeeze."""
    head, _, inner = rest.partition(".")
    if head == "mixer":
        return f"0.{inner.replace('logits', 'w')}"
    if head == "pool":
        return f"{pool_at}.{inner}"
    if head == "blocks":
        block, _, inner = inner.partition(".")
        rules = _CONVNEXT if config.block_2d_type.startswith("convnext") else _RESNET
        return f"{pool_at + 1 + int(block)}.conv_block.{_apply(rules, inner)}"
    if head == "squeeze":
        part, _, leaf = inner.partition(".")
        return f"{pool_at + 1 + config.stages_setup[index].num_blocks}.{_SQUEEZE[part]}.{leaf}"
    raise KeyError(rest)


def official_key(
    key: str,
    config: NetworkOptions,
    *,
    family: str,
    stage: Callable[[int, str], str],
    backbone: Mapping[str, str],
    frontends: Mapping[str, Mapping[str, str]] = FRONTENDS,
) -> str:
    """The official name of our ``state_dict`` key ``key`` in a ``family`` model of ``config``.

    ``stage(index, rest)`` names a key below ``backbone.stages.<index>.`` (without the
    ``backbone.`` prefix); ``frontends`` maps each front end's buffers; ``backbone`` adds the
    family's own backbone parts outside the stages (our prefix -> the official one).
    """
    if key.startswith("frontend."):
        rest = key[len("frontend.") :]
        if rest.startswith("spec_norm."):
            return "spec." + rest
        return "spec." + frontends[config.frontend][rest]
    if key.startswith("backbone."):
        rest = key[len("backbone.") :]
        match = re.match(r"stages\.(\d+)\.(.*)", rest)
        if match:
            return "backbone." + stage(int(match.group(1)), match.group(2))
        for ours, theirs in {**_BACKBONE, **backbone}.items():
            if rest.startswith(ours):
                return "backbone." + theirs + rest[len(ours) :]
    if key.startswith("pool."):
        return "pool." + _apply(_POOLING.get(config.pooling_func, []), key[len("pool.") :])
    renamed = _apply(_HEAD, key)
    if renamed != key:
        return renamed
    raise KeyError(f"no official {family} name known for {key!r}")
