"""Exact weight rewrites used by the optimised model: batch-norm folding and
merging parallel depthwise convolutions.

All arithmetic is done in float64 and cast back, so the folded weights differ
from the unfolded computation only by float32 rounding.
"""

from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import nn


def bn_scale_shift(bn: nn.modules.batchnorm._BatchNorm) -> Tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode batch norm as ``x * scale + shift`` (float64 vectors)."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a batch norm without running statistics")
    scale = 1.0 / torch.sqrt(bn.running_var.double() + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.double()
    shift = -bn.running_mean.double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.double()
    return scale, shift


def fold_bn_after(
    weight: torch.Tensor, bias: Optional[torch.Tensor], bn: nn.modules.batchnorm._BatchNorm
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of ``bn(layer(x))`` for a conv/linear ``layer`` (output channels first)."""
    scale, shift = bn_scale_shift(bn)
    w = weight.double() * scale.view((-1,) + (1,) * (weight.ndim - 1))
    b = shift if bias is None else bias.double() * scale + shift
    return w.to(weight.dtype), b.to(weight.dtype)


def fold_bn_before_linear(
    weight: torch.Tensor, bias: Optional[torch.Tensor], bn: nn.modules.batchnorm._BatchNorm
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of ``linear(bn(x))`` (exact: a linear layer has no padding)."""
    scale, shift = bn_scale_shift(bn)
    w = weight.double()
    b = w @ shift if bias is None else w @ shift + bias.double()
    return (w * scale.view(1, -1)).to(weight.dtype), b.to(weight.dtype)


def merge_parallel_convs(convs: Sequence[Union[nn.Conv1d, nn.Conv2d]]) -> Tuple[torch.Tensor, torch.Tensor, List[int]]:
    """One grouped convolution equal to ``cat([conv(x) for conv in convs], dim=1)``.

    Every conv (1D or 2D) has the same channels and groups, odd kernels and
    "same" padding; kernels are zero-padded (centred) to the largest size.  The
    merged conv puts the outputs of one group next to each other, so its
    channel ``i`` is channel ``perm[i]`` of the concatenation.  Returns
    ``(weight [K*C, C/g, *kmax], bias [K*C], perm)``.
    """
    first = convs[0]
    channels, groups = first.out_channels, first.groups
    per_group = channels // groups
    dims = len(first.kernel_size)
    kmax = [max(conv.kernel_size[d] for conv in convs) for d in range(dims)]
    count = len(convs)
    inputs = first.in_channels // groups
    weight = torch.zeros([count * channels, inputs] + kmax, dtype=first.weight.dtype)
    bias = torch.zeros(count * channels, dtype=first.weight.dtype)
    # rows in the order (group, conv, channel within the group): conv k's group g starts at (g*count + k)*per_group
    weight_rows = weight.view([groups, count, per_group, inputs] + kmax)
    bias_rows = bias.view(groups, count, per_group)
    for k, conv in enumerate(convs):
        if any(size % 2 == 0 for size in conv.kernel_size):
            raise ValueError("only odd kernels can be merged")
        window = tuple(slice((m - size) // 2, (m - size) // 2 + size) for m, size in zip(kmax, conv.kernel_size))
        kernel = conv.weight.detach().reshape([groups, per_group, inputs] + list(conv.kernel_size))
        weight_rows[(slice(None), k, slice(None), slice(None)) + window] = kernel
        if conv.bias is not None:
            bias_rows[:, k] = conv.bias.detach().reshape(groups, per_group)
    perm = [k * channels + g * per_group + c for g in range(groups) for k in range(count) for c in range(per_group)]
    return weight, bias, perm


def fold_convnext_depthwise(block) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A ConvNeXt block's parallel depthwise convs merged into one, with the batch norm
    that follows them folded in: ``(weight, bias, index)`` of the single conv (1D or 2D);
    its output channel ``i`` is channel ``index[i]`` of the original concatenation."""
    weight, bias, perm = merge_parallel_convs(list(block.depthwise))
    index = torch.as_tensor(perm)
    scale, shift = bn_scale_shift(block.norm)
    scale, shift = scale[index], shift[index]
    per_output = scale.view((-1,) + (1,) * (weight.ndim - 1))
    return (weight.double() * per_output).float(), (bias.double() * scale + shift).float(), index


def permute_bn(bn: nn.modules.batchnorm._BatchNorm, perm: Sequence[int]) -> nn.modules.batchnorm._BatchNorm:
    """A copy of ``bn`` whose channels are reordered by ``perm``."""
    index = torch.as_tensor(list(perm))
    out = type(bn)(len(perm), eps=bn.eps, affine=bn.affine)
    names = ("running_mean", "running_var") + (("weight", "bias") if bn.affine else ())
    with torch.no_grad():
        for name in names:
            getattr(out, name).copy_(getattr(bn, name)[index])
    return out.eval()


def merge_small_groups(weight: torch.Tensor, groups: int, min_inputs: int = 8) -> Tuple[torch.Tensor, int]:
    """The same grouped convolution with neighbouring groups merged, so that each
    group reads at least ``min_inputs`` input channels (where ``groups`` allows).

    Merged groups get a block-diagonal kernel: output channels of one original
    group see zeros for the other groups' inputs, so outputs are unchanged (the
    extra products are exact zeros).  oneDNN's AVX2 kernels pad every group to
    8 channels anyway, so merged groups cost no extra work there (measured gain:
    ``docs/performance.md``).  Returns
    ``(weight [C_out, C_in/groups', *k], groups')``; depthwise convs and groups
    that already read ``min_inputs`` channels are returned unchanged.
    """
    out_channels, inputs = weight.shape[:2]
    outputs = out_channels // groups
    merge = 1
    while inputs * merge < min_inputs and groups % (merge * 2) == 0:
        merge *= 2
    if inputs == 1 or outputs == 1 or merge == 1:
        return weight, groups
    merged = weight.new_zeros((out_channels, inputs * merge) + tuple(weight.shape[2:]))
    for o in range(out_channels):
        slot = (o // outputs) % merge
        merged[o, slot * inputs : (slot + 1) * inputs] = weight[o]
    return merged, groups // merge
