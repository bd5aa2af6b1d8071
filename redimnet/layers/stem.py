"""The stem both families start with: features to ``C`` channels, and its inference form."""

import torch
from torch import nn

from ..fast.form import inference_form
from ..fast.modules import SwappedConv2d
from .layer_norm import ChannelLayerNorm
from .reshape import to_1d


class Stem(nn.Module):
    """3x3 convolution from 1 to ``C`` channels and a channel layer norm."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(1, channels, kernel_size=3, padding="same")
        self.norm = ChannelLayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """``to_1d(self(x))``: the output in the 1D view ``[N, F*C, T]``, normalised after the reshape.

        The same numbers up to float rounding.  Exported, it lets OpenVINO normalise rows of
        contiguous time steps instead of pixels of C channels in its channels-last layout
        (b0's stem norm: 2.7 -> 0.45 ms per 10 s, one thread; ``docs/performance.md``).
        """
        y = to_1d(self.conv(x))
        n, rows, t = y.shape
        channels = self.norm.weight.numel()
        return self.norm(y.view(n, rows // channels, channels, t), axis=2).reshape(n, rows, t)

    def for_inference(self) -> nn.Module:
        """Inference form: features ``[N, T, F]`` -> time-major 1D view."""
        return FastStem(self)


class FastStem(nn.Module):
    """:class:`Stem`: features ``[N, T, F]`` -> 1D view ``[N, T, F*C]``."""

    def __init__(self, stem: Stem):
        super().__init__()
        self.conv = SwappedConv2d.from_conv(stem.conv)
        self.norm = inference_form(stem.norm)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        n, t, f = features.shape
        x = self.conv(features.reshape(n, 1, t, f))
        x = self.norm(x.permute(0, 2, 3, 1))  # [N, T, F, C]
        return x.reshape(n, t, -1)
