"""The 2D blocks a configuration names (``block_2d_type``), made by name for either family's stages."""

from torch import nn

from .convnext_block import ConvNeXtBlock
from .resnet_block import ResNetBlock


def make_2d_block(kind: str, channels: int, num_freq: int, group_divisor, kernel_sizes=((3, 3),)) -> nn.Module:
    """The 2D block named by ``block_2d_type`` (``kernel_sizes``: the ConvNeXt block's depthwise kernels)."""
    if kind == "convnext_like":
        return ConvNeXtBlock(channels, dim=2, kernel_sizes=kernel_sizes, group_divisor=group_divisor, activation="gelu")
    if kind == "convnext_like_relu":
        return ConvNeXtBlock(channels, dim=2, kernel_sizes=kernel_sizes, group_divisor=group_divisor, activation="relu")
    if kind == "basic_resnet":
        return ResNetBlock(channels, num_freq, group_divisor, use_freq_se=False)
    if kind == "basic_resnet_fwse":
        return ResNetBlock(channels, num_freq, group_divisor, use_freq_se=True)
    raise ValueError(f"block_2d_type={kind!r} is not supported")
