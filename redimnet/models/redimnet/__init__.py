"""ReDimNet (IDRnD): configuration, key map of the original checkpoints, network, presets, and
:data:`FAMILY`, the family object that registers its architectures and published weights.

The network's names are imported on first use, so reading the family (:mod:`.family`,
:mod:`.presets`) does not load PyTorch.
"""

import importlib

from .family import FAMILY

_EXPORTS = {
    "Backbone": "backbone",
    "ReDimNet": "network",
    "WaveformEmbedder": "network",
    "Stage": "stage",
    "ModelConfig": "config",
    "StageSpec": "config",
}

__all__ = ["FAMILY", "Backbone", "ModelConfig", "ReDimNet", "Stage", "StageSpec", "WaveformEmbedder"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'redimnet.models.redimnet' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
