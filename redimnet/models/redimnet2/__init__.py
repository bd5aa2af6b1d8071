"""ReDimNet2, the successor family: same toolkit, its own stage wiring and options.

Names are imported on first use, so reading the presets (:mod:`.presets`) does
not load PyTorch.
"""

import importlib

_EXPORTS = {"ReDimNet2": "model", "ReDimNet2Config": "config", "Stage2Spec": "config"}

__all__ = ["ReDimNet2", "ReDimNet2Config", "Stage2Spec"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'redimnet.models.redimnet2' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
