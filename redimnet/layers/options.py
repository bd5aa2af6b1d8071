"""Option values the building blocks share with every family's configuration.

The configurations (:mod:`redimnet.models`) validate their options with these;
the blocks use them to build themselves.
"""

import re
from typing import Optional, Tuple

from ..errors import ConfigError

# The blocks a configuration may name (``block_2d_type``, ``block_1d_type``).
BLOCK_2D_TYPES = ("convnext_like", "convnext_like_relu", "basic_resnet", "basic_resnet_fwse")
BLOCK_1D_TYPES = ("fc", "conv", "att", "conv+att")

# Heads per attention layer in the time-context blocks (fixed in the original).
ATTENTION_HEADS = 4
# Heads of the MHASTP pooling, and heads per query of MQMHASTP (original defaults).
MHASTP_HEADS = 2
MQMHASTP_HEADS = 8

HEAD_ACTIVATIONS = ("sigmoid", "tanh", "relu", "softmax", "log_softmax")
_ACTIVATION_CLASS_NAMES = {
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "relu": "relu",
    "softmax": "softmax",
    "logsoftmax": "log_softmax",
}


def grouped(channels: int, divisor: Optional[int]) -> int:
    """Groups of a convolution over ``channels`` with ``group_divisor`` channels per group."""
    return 1 if divisor is None else channels // divisor


def parse_head_activation(value: Optional[str]) -> Optional[Tuple[str, Optional[int]]]:
    """``(name, dim)`` for a ``head_activation`` string, or None.

    Accepts plain names ("sigmoid", "softmax") and the spelling the original
    evaluates ("nn.Sigmoid()", "nn.Softmax(dim=-1)", "torch.nn.LogSoftmax(dim=1)").
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"head_activation must be a string or None, got {value!r}")
    text = value.strip()
    name: Optional[str]
    dim: Optional[int]
    if text.lower() in HEAD_ACTIVATIONS:
        name, dim = text.lower(), None
    else:
        match = re.fullmatch(r"(?:torch\.)?(?:nn\.)?(\w+)\(\s*(?:dim\s*=\s*)?(-?\d+)?\s*\)", text)
        name = _ACTIVATION_CLASS_NAMES.get(match.group(1).lower()) if match else None
        if match is None or name is None:
            raise ConfigError(
                f"head_activation={value!r} is not supported; use one of {', '.join(HEAD_ACTIVATIONS)} "
                "or the form 'nn.Softmax(dim=-1)'"
            )
        dim = int(match.group(2)) if match.group(2) is not None else None
    if name in ("softmax", "log_softmax") and dim is None:
        dim = -1
    return name, dim
