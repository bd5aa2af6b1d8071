"""torch.hub entry points, reading the same model table as ``redimnet.load`` and the CLI's ``--model``.

``torch.hub.load(<repo>, "ReDimNet", model_name="b2", train_type="ft_lm", dataset="vox2")`` (the
original IDRnD/ReDimNet hub arguments) or ``torch.hub.load(<repo>, "ReDimNet", weights="b2.vox2-ft_lm")``.
Without arguments: the default model (:data:`redimnet.hub.registry.DEFAULT_WEIGHTS`); a missing
``train_type``/``dataset`` means the architecture's default weights (for b0-b6: ``vox2`` /
``ft_lm``; pass ``train_type="ptn"`` for the pre-trained ones the original hub defaulted to).
Works with ``source="local"`` on a checkout.  Extra keyword arguments (``cache_dir``,
``base_url``, ``progress``, ``check_hash``, ``sha256``, ``map_location``) go to
:func:`redimnet.hub.pretrained.load_weights`.
"""

import inspect
import os
import sys

dependencies = ["torch", "numpy"]

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from redimnet.hub import pretrained as _pretrained  # noqa: E402
from redimnet.hub import registry as _registry  # noqa: E402


def _weights(model_name, train_type, dataset, weights):
    if weights is not None:
        if (model_name, train_type, dataset) != (None, None, None):
            raise TypeError("pass either weights='b2.vox2-ft_lm' or model_name/train_type/dataset, not both")
        return _registry.get_weights(weights)
    return _registry.resolve_weights(model_name, train_type, dataset)


def ReDimNet(model_name=None, train_type=None, dataset=None, weights=None, **options):
    """A published ReDimNet model in eval mode (weights downloaded once and cached)."""
    return _pretrained.load_weights(_weights(model_name, train_type, dataset, weights), **options)


def ReDimNetEmbedder(model_name=None, train_type=None, dataset=None, weights=None, **options):
    """A :class:`redimnet.embedding.embedder.Embedder` around a published model (audio files in, embeddings out).

    Keyword arguments that :class:`~redimnet.embedding.embedder.Embedder` accepts go to it, the others to the loader.
    """
    from redimnet.embedding.embedder import Embedder

    embedder_keys = set(inspect.signature(Embedder).parameters) - {"model"}
    embedder_options = {k: options.pop(k) for k in list(options) if k in embedder_keys}
    return Embedder(ReDimNet(model_name, train_type, dataset, weights, **options), **embedder_options)


def redimnet2(model_name="b0", train_type="lm", dataset="vox2", pretrained=True, **options):
    """A ReDimNet2 model with the official PalabraAI/redimnet2 hub arguments, in eval mode.

    ``model_name`` ``b0`` ... ``b6``, ``train_type`` ``lm`` or ``ptn``, ``dataset`` ``vox2`` (or
    ``vb2+vox2_v0`` for ``b6``). ``pretrained=False`` gives the architecture with random weights.
    """
    arch = f"redimnet2-{model_name}" + ("-vb2" if str(dataset).startswith("vb2") else "")
    if not pretrained:
        return _pretrained.build(arch).eval()
    return _pretrained.load_weights(_registry.find_weights(arch, train_type, dataset), **options)
