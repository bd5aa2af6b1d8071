"""The memory layout of the optimised backbone: time-major everywhere.

The plain model keeps 2D tensors as ``[N, C, F, T]`` and 1D tensors as
``[N, F*C, T]``; every stage then pays for transposes between the two views.
The optimised model stores both views in one memory order, ``[N, T, F, C]``:

* 1D view: ``[N, T, F*C]`` (contiguous; row ``f*C + c`` as in the plain model),
  so 1x1 convolutions are plain ``linear`` calls;
* 2D view: ``[N, C, T, F]`` in ``channels_last`` memory format, i.e. the same
  memory seen as an image with time as height and frequency as width.  2D
  convolutions use the plain model's kernels with their two spatial axes
  swapped.

Going between the views is therefore free (a view, no copy).
"""

import torch


def to_2d_view(x: torch.Tensor, channels: int) -> torch.Tensor:
    """``[N, T, F*C]`` -> ``[N, C, T, F]`` (channels_last memory, no copy)."""
    n, t, rows = x.shape
    return x.view(n, t, rows // channels, channels).permute(0, 3, 1, 2)


def to_1d_view(x: torch.Tensor) -> torch.Tensor:
    """``[N, C, T, F]`` (channels_last) -> ``[N, T, F*C]`` (copies only if not channels_last)."""
    n, c, t, f = x.shape
    return x.permute(0, 2, 3, 1).reshape(n, t, f * c)


def channels_last_rows(x: torch.Tensor) -> torch.Tensor:
    """``[N, C, T, F]`` -> ``[N, T, F, C]`` (a view when channels_last)."""
    return x.permute(0, 2, 3, 1)


def time_as_image(x: torch.Tensor) -> torch.Tensor:
    """``[N, T, C]`` -> ``[N, C, 1, T]`` in channels_last memory (no copy), for 1D convolutions."""
    n, t, c = x.shape
    return x.view(n, 1, t, c).permute(0, 3, 1, 2)


def image_as_time(x: torch.Tensor) -> torch.Tensor:
    """``[N, C, 1, T]`` (channels_last) -> ``[N, T, C]``."""
    n, c, _, t = x.shape
    return x.permute(0, 2, 3, 1).reshape(n, t, c)
