"""Parameter and multiply-accumulate counts of a model."""

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..audio.read import TARGET_SAMPLE_RATE
from ..frontend.preemphasis import PreEmphasis
from .redimnet import ReDimNet


def count_parameters(model: torch.nn.Module) -> int:
    """All parameters, trainable or not (buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def _attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of softmax(q k^T) v: two batched matrix products."""
    batch, heads, queries, depth = query_shape
    keys, value_depth = key_shape[-2], value_shape[-1]
    return 2 * batch * heads * queries * keys * (depth + value_depth)


def count_macs(model: ReDimNet, seconds: float = 2.0) -> int:
    """Multiply-accumulates of one forward pass on ``seconds`` of 16 kHz audio.

    Counts matrix products and convolutions (including the attention products
    and the mel filterbank), as ``torch.utils.flop_counter`` does, halved to MACs,
    and the pre-emphasis filter (2 MACs per sample, though computed elementwise).
    """
    counted = {}
    cpu_attention = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if cpu_attention is not None:
        counted[cpu_attention] = _attention_flops
    elementwise = [0]

    def two_taps(module, inputs, output):  # computed elementwise, but a 2-tap filter: 2 MACs per sample
        elementwise[0] += 2 * output.numel()

    hooks = [m.register_forward_hook(two_taps) for m in model.modules() if isinstance(m, PreEmphasis)]
    was_training = model.training
    model.eval()
    wave = torch.randn(1, int(round(seconds * TARGET_SAMPLE_RATE)))
    try:
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=counted) as counter:
            model(wave)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return counter.get_total_flops() // 2 + elementwise[0]
