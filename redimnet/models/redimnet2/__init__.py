"""ReDimNet2 (PalabraAI), the successor family: configuration, key map of the official
checkpoints, network, presets, and :data:`FAMILY`, the family object that registers its
architectures and published weights.

The network's names are imported on first use, so reading the family (:mod:`.family`,
:mod:`.presets`) does not load PyTorch.
"""

import importlib

from .family import FAMILY

_EXPORTS = {"ReDimNet2": "network", "ReDimNet2Config": "config", "Stage2Spec": "config"}

__all__ = ["FAMILY", "ReDimNet2", "ReDimNet2Config", "Stage2Spec"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'redimnet.models.redimnet2' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
