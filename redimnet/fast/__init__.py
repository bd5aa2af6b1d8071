"""The inference forms of the network's blocks and the pieces they are built from.

Every plain block (``redimnet.layers``, ``redimnet.models.redimnet``) owns its inference
form: a ``for_inference()`` method returning a module that computes the same
function on the optimised path's time-major layout (:mod:`.layout`), with
batch norms folded and kernels merged.  :func:`inference_form` is the one
walker that calls those methods; :func:`redimnet.fast.optimize.optimize_for_inference`
starts it at the top of a model.  See ``docs/performance.md``, "How to add a block".
"""

from .form import InferenceFormError, build_inference_form, inference_form

__all__ = ["InferenceFormError", "build_inference_form", "inference_form"]
