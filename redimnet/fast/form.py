"""The walker that builds a model's inference form from its blocks' ``for_inference()`` methods.

A block's inference form is what its ``for_inference()`` method returns: an
eval-only module with the block's outputs (up to float32 rounding) on the
optimised path's layout.  A composite block builds its children's forms with
:func:`inference_form`, so the whole model is converted by calling it once on
the top module (:func:`build_inference_form`).  A block without the method,
or one that overrides ``forward`` but inherits ``for_inference`` from its base
class (its inherited form would compute the base class's function), stops the
walk with an :class:`InferenceFormError` naming the block.
"""

import contextvars
from typing import Dict, Optional

from torch import nn

from ..errors import RedimnetError

# Names of the modules of the model being converted (id -> dotted path), for error messages.
_NAMES: contextvars.ContextVar[Optional[Dict[int, str]]] = contextvars.ContextVar("inference_form_names", default=None)


class InferenceFormError(RedimnetError):
    """A block has no inference form, or building it failed.

    ``block`` is the block's dotted path in the model (or its class name when
    converted on its own) and ``reason`` what went wrong.
    """

    def __init__(self, block: str, reason: str):
        super().__init__(f"{block}: {reason}")
        self.block = block
        self.reason = reason


def _describe(module: nn.Module) -> str:
    names = _NAMES.get()
    name = names.get(id(module)) if names is not None else None
    kind = type(module).__name__
    return f"{name} ({kind})" if name else kind


def _defining_class(cls: type, attribute: str) -> Optional[type]:
    return next((klass for klass in cls.__mro__ if attribute in vars(klass)), None)


def inference_form(module: nn.Module) -> nn.Module:
    """The inference form of one block: ``module.for_inference()``, checked.

    Raises :class:`InferenceFormError` (naming the block) when the block's class
    has no ``for_inference`` method, overrides ``forward`` without giving its own
    form, or when building the form fails.
    """
    cls = type(module)
    owner = _defining_class(cls, "for_inference")
    if owner is None:
        raise InferenceFormError(
            _describe(module),
            f"{cls.__module__}.{cls.__qualname__} has no inference form; give the class a "
            "for_inference() method (see docs/performance.md, 'How to add a block')",
        )
    forward_owner = _defining_class(cls, "forward")
    if forward_owner is not None and forward_owner is not owner and issubclass(forward_owner, owner):
        raise InferenceFormError(
            _describe(module),
            f"{cls.__qualname__} overrides forward() but inherits for_inference() from "
            f"{owner.__qualname__}, whose form computes the base class's function; give "
            f"{cls.__qualname__} its own for_inference()",
        )
    try:
        return vars(owner)["for_inference"](module)  # the method checked above
    except InferenceFormError:
        raise
    except Exception as error:  # any failure inside one block's conversion is reported with its name
        raise InferenceFormError(
            _describe(module), f"building its inference form failed: {type(error).__name__}: {error}"
        ) from error


def build_inference_form(model: nn.Module) -> nn.Module:
    """The inference form of a whole model (the walk starts at ``model``; errors name
    blocks by their dotted path in it)."""
    token = _NAMES.set({id(module): name for name, module in model.named_modules() if name})
    try:
        return inference_form(model)
    finally:
        _NAMES.reset(token)
