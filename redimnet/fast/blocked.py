"""Running a stage's ResNet blocks on oneDNN's blocked memory layout.

oneDNN's fastest AVX2 convolution kernels work on its own "blocked" layout
(``nChw8c``: channels in groups of 8, innermost).  PyTorch hands it either
NCHW tensors (then every convolution reorders its input into the blocked layout
and its output back) or channels_last ones (then oneDNN runs its ``brgemm``
kernels; for b5's grouped 3x3 convolutions, 16 channels per group, they match
the blocked kernels at batch 1 but are slower for batches).
``Tensor.to_mkldnn()`` tensors keep oneDNN's layout between operations, so a
ResNet block's four convolutions, ReLU and first batch norm run without
reordering in between; the squeeze-excitation and the residual addition (no
blocked kernels for them) run on the ordinary tensor after one conversion back.

Measured (``docs/performance.md``): for b5 the blocked path wins for batches
and makes no difference at batch 1, so it is taken for batches of two or more
only.  Only used without autograd, on float32 CPU tensors, when PyTorch has
oneDNN.
"""

import torch
from torch import nn

from .epilogue import onednn_applies

_AVAILABLE = torch.backends.mkldnn.is_available()


def worth_it(blocks: nn.Sequential) -> bool:
    """Whether a stage's blocks should run blocked: every block offers ``forward_blocked``
    and says it gains from it (``runs_blocked``: ResNet blocks with grouped, not
    depthwise, 3x3 convolutions, where the measured gain is)."""
    if not _AVAILABLE or len(blocks) == 0:
        return False
    return all(getattr(block, "runs_blocked", False) and hasattr(block, "forward_blocked") for block in blocks)


MIN_BATCH = 2


def usable(x: torch.Tensor) -> bool:
    """Whether ``x`` takes the blocked path: a batch of at least :data:`MIN_BATCH`, no
    autograd, float32 on the CPU, not being traced."""
    return x.shape[0] >= MIN_BATCH and x.numel() > 0 and not torch.is_grad_enabled() and onednn_applies(x)
