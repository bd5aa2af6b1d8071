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

Every block owns its inference form (a ``for_inference()`` method beside its
``forward``, see :mod:`redimnet.fast`); this module starts the walk at the
top of the model.  The plain modules are not changed; training uses them.  :func:`keep_freed_memory`
(:mod:`.allocator`) is the process-wide malloc setting the embedding helpers
apply: repeated forward passes then reuse memory instead of page-faulting.
"""

import copy
import warnings
from typing import cast

import torch
from torch import nn

from ..errors import RedimnetError, RedimnetWarning
from ..models.common.network import WaveformEmbedder
from ..models.redimnet.network import OptimizedReDimNet
from . import InferenceFormError, build_inference_form
from .allocator import keep_freed_memory

__all__ = [
    "OptimizationWarning",
    "OptimizeError",
    "OptimizedReDimNet",
    "keep_freed_memory",
    "optimize_for_inference",
    "warn_not_optimized",
]


class OptimizeError(RedimnetError):
    """The model cannot be optimised (not a ReDimNet, or a block without a working inference form)."""


class OptimizationWarning(RedimnetWarning):
    """The model could not be optimised and runs in its plain form (same outputs, slower)."""


def warn_not_optimized(error: Exception, stacklevel: int = 2) -> None:
    """Warn that optimisation failed for ``error``'s reason and the plain model is used instead."""
    warnings.warn(
        f"{error}; running the plain (unoptimised) model instead, which gives the same outputs "
        "more slowly (pass strict=True to make this an error)",
        OptimizationWarning,
        stacklevel=stacklevel + 1,
    )


def optimize_for_inference(model: nn.Module, compile: bool = False, strict: bool = False) -> nn.Module:
    """An optimised, eval-mode copy of ``model`` for inference; ``model`` itself is untouched.

    Args:
        model: a :class:`~redimnet.ReDimNet` or another network of this package
            (an already optimised model is returned as a copy).
        compile: additionally wrap the result in ``torch.compile`` (needs a working
            C++ compiler on CPU; the first calls are slow while it compiles).
        strict: raise :class:`OptimizeError` when a block of the model has no working
            inference form; by default that is an :class:`OptimizationWarning` naming
            the block and the reason, and an eval-mode copy of the plain model is returned.

    Raises:
        OptimizeError: ``model`` is not a ReDimNet, or (with ``strict``) a block cannot be converted.
    """
    if getattr(model, "is_inference_form", False):
        optimized = copy.deepcopy(model)
    elif isinstance(model, WaveformEmbedder):
        plain = copy.deepcopy(model).eval()
        first = next(iter(plain.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
        try:
            with torch.no_grad():  # weights are rewritten on the CPU, then moved back
                optimized = build_inference_form(plain.to("cpu")).to(device)
        except InferenceFormError as error:
            failure = OptimizeError(f"cannot optimise this model: {error}")
            if strict:
                raise failure from error
            warn_not_optimized(failure)
            return plain.to(device)
        optimized.requires_grad_(False)
    else:
        raise OptimizeError(
            f"optimize_for_inference expects a redimnet.ReDimNet (or another network of this "
            f"package), got {type(model).__name__}"
        )
    optimized.eval()
    if compile:
        return cast(nn.Module, torch.compile(optimized, dynamic=True))
    return optimized
