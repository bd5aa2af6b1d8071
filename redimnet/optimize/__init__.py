"""Faster inference with unchanged outputs.

:func:`optimize_for_inference` turns a plain eval-mode :class:`~redimnet.ReDimNet`
into an :class:`OptimizedReDimNet` with the same outputs (up to float32
rounding, well within 1e-4 relative):

* one memory layout for the whole backbone, time-major ``[N, T, F, C]``, so the
  1D <-> 2D reshapes of every stage are free (:mod:`.layout`);
* 2D convolutions in channels_last memory format (several times faster for the
  grouped and depthwise 3x3 kernels on CPU); small groups merged (exact);
* batch norms folded into the neighbouring convolution or linear layer where
  that is exact (after a conv; before the embedding layer), fused into one
  multiply-add where it is not (before a zero-padded conv);
* parallel depthwise convolutions merged into one; q/k/v projections merged;
  the pooling's global-context product computed once per utterance;
* optionally ``torch.compile``.

The plain modules are not changed; training uses them.  :func:`keep_freed_memory`
(:mod:`.allocator`) is the process-wide malloc setting the embedding helpers
apply: repeated forward passes then reuse memory instead of page-faulting.
"""

import copy

import torch
from torch import nn

from ..errors import RedimnetError
from ..model.redimnet import ReDimNet
from .allocator import keep_freed_memory
from .fused_model import OptimizedReDimNet

__all__ = ["OptimizeError", "OptimizedReDimNet", "keep_freed_memory", "optimize_for_inference"]


class OptimizeError(RedimnetError):
    """The model cannot be optimised (not a ReDimNet, or an unsupported layer)."""


def optimize_for_inference(model: nn.Module, compile: bool = False) -> nn.Module:
    """An optimised, eval-mode copy of ``model`` for inference; ``model`` itself is untouched.

    ``compile=True`` additionally wraps the result in ``torch.compile`` (needs a
    working C++ compiler on CPU; the first calls are slow while it compiles).
    A model that is already optimised is returned as a copy.
    """
    if isinstance(model, OptimizedReDimNet):
        optimized = copy.deepcopy(model)
    elif isinstance(model, ReDimNet):
        plain = copy.deepcopy(model).eval()
        first = next(iter(plain.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
        try:
            with torch.no_grad():  # weights are rewritten on the CPU, then moved back
                optimized = OptimizedReDimNet(plain.to("cpu")).to(device)
        except ValueError as error:
            raise OptimizeError(f"cannot optimise this model: {error}") from error
        optimized.requires_grad_(False)
    else:
        raise OptimizeError(f"optimize_for_inference expects a redimnet.ReDimNet, got {type(model).__name__}")
    optimized.eval()
    if compile:
        return torch.compile(optimized, dynamic=True)
    return optimized
