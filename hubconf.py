"""torch.hub entry points: ``torch.hub.load(<repo>, "ReDimNet", model_name="b2", train_type="ft_lm", dataset="vox2")``.

Works with ``source="local"`` on a checkout of this repository, with the same
arguments as the original IDRnD/ReDimNet hub entry.  Extra keyword arguments
(``cache_dir``, ``base_url``, ``progress``, ``check_hash``, ``map_location``)
go to :func:`redimnet.pretrained.from_pretrained`.
"""

import os
import sys

dependencies = ["torch", "numpy"]

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from redimnet.pretrained import from_pretrained as _from_pretrained  # noqa: E402


def ReDimNet(model_name: str = "b2", train_type: str = "ptn", dataset: str = "vox2", **options):
    """A published ReDimNet model in eval mode (weights downloaded once and cached).

    ``train_type`` defaults to ``"ptn"`` as in the original hub entry; the
    large-margin fine-tuned models are ``"ft_lm"``.
    """
    return _from_pretrained(model_name, train_type=train_type, dataset=dataset, **options)


def ReDimNetEmbedder(model_name: str = "b2", train_type: str = "ft_lm", dataset: str = "vox2", **options):
    """A :class:`redimnet.inference.Embedder` around a published model (audio files in, embeddings out)."""
    from redimnet.inference import Embedder

    embedder_keys = {"device", "precision", "optimize", "max_seconds", "overlap_seconds", "channel",
                     "trim_silence", "batch_size"}
    embedder_options = {k: options.pop(k) for k in list(options) if k in embedder_keys}
    return Embedder(_from_pretrained(model_name, train_type=train_type, dataset=dataset, **options),
                    **embedder_options)
