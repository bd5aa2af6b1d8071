"""The one reshape ReDimNet is named for: between the 2D and the 1D view.

2D view: ``[N, channels, freq, time]``, what the 2D convolution blocks see.
1D view: ``[N, freq * channels, time]``, what the 1D time-context blocks see.
Rows of the 1D view are frequency-major: row ``f * channels + c`` holds channel
``c`` of frequency bin ``f``.  This order is fixed by the published weights.
"""

import torch


def to_1d(x: torch.Tensor) -> torch.Tensor:
    """``[N, C, F, T]`` -> ``[N, F*C, T]``."""
    n, c, f, t = x.shape
    # the same values as ``x.transpose(1, 2).reshape(n, f * c, t)``; written through a 5D view because
    # OpenVINO then runs the exported transpose on plain memory instead of on its channels-last
    # layout (the int8 path: b0 1.04-1.06x faster, docs/performance.md)
    return x.reshape(n, c, f, 1, t).transpose(1, 2).reshape(n, f * c, t)


def to_2d(x: torch.Tensor, channels: int) -> torch.Tensor:
    """``[N, F*C, T]`` -> ``[N, C, F, T]`` for the given number of channels."""
    n, rows, t = x.shape
    return x.reshape(n, rows // channels, channels, t).transpose(1, 2)
