"""Optional classification head on top of the embedding."""

from typing import Optional

import torch
from torch import nn

from .options import parse_head_activation


class ClassifierHead(nn.Module):
    """ReLU -> dropout -> linear to ``num_classes`` -> optional activation."""

    def __init__(self, embed_dim: int, num_classes: int, dropout: float = 0.0, activation: Optional[str] = None):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(embed_dim, num_classes)
        self.activation = parse_head_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(self.dropout(torch.relu(x)))
        if self.activation is None:
            return x
        name, dim = self.activation
        if name in ("softmax", "log_softmax"):
            return getattr(torch, name)(x, dim=dim)
        return getattr(torch, name)(x)

    def for_inference(self) -> nn.Module:
        """Inference form: the head itself (it works on embeddings, which have one layout)."""
        return self
