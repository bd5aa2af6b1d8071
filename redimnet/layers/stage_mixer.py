"""Learned mixture of earlier stage outputs (ReDimNet's dense connections)."""

from typing import List, Sequence

import torch
from torch import nn


class StageMixer(nn.Module):
    """Weighted sum of ``num_inputs`` tensors of shape ``[N, rows, T]``.

    Every row has its own softmax over the inputs, so each channel/frequency
    row chooses how much of every earlier stage it takes.  With a single input
    the weight is 1 and the logits are a fixed placeholder (kept only so the
    parameter layout matches the published checkpoints; ReDimNet's store a
    1x1 placeholder, ReDimNet2's a full-size one: ``full_placeholder=True``).
    """

    def __init__(self, num_inputs: int, rows: int, trainable: bool = True, full_placeholder: bool = False):
        super().__init__()
        self.num_inputs = num_inputs
        if num_inputs == 1 and not full_placeholder:
            rows, trainable = 1, False
        elif num_inputs == 1:
            trainable = False
        self.logits = nn.Parameter(torch.zeros(1, num_inputs, rows, 1), requires_grad=trainable)

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(inputs) != self.num_inputs:
            raise ValueError(f"StageMixer expects {self.num_inputs} inputs, got {len(inputs)}")
        if self.num_inputs == 1:
            return inputs[0]
        weights = torch.softmax(self.logits, dim=1)
        mixed = inputs[0] * weights[:, 0]
        for i in range(1, self.num_inputs):
            mixed = mixed + inputs[i] * weights[:, i]
        return mixed

    def extra_repr(self) -> str:
        return f"num_inputs={self.num_inputs}, rows={self.logits.shape[2]}"

    def for_inference(self) -> nn.Module:
        """Inference form: softmax weights computed once, time-major inputs."""
        return FastMixer(self)


class FastMixer(nn.Module):
    """:class:`~redimnet.layers.StageMixer` on time-major inputs, softmax weights precomputed."""

    def __init__(self, mixer: StageMixer):
        super().__init__()
        self.num_inputs = mixer.num_inputs
        weights = torch.softmax(mixer.logits.detach(), dim=1)[0, :, :, 0]  # [inputs, rows]
        self.weights: torch.Tensor
        self.register_buffer("weights", weights.contiguous())

    def forward(self, inputs: List[torch.Tensor]) -> torch.Tensor:
        if self.num_inputs == 1:
            return inputs[0]
        mixed = inputs[0] * self.weights[0]
        inplace = not torch.is_grad_enabled()
        for i in range(1, self.num_inputs):
            if inplace:
                mixed.addcmul_(inputs[i], self.weights[i])
            else:
                mixed = torch.addcmul(mixed, inputs[i], self.weights[i])
        return mixed
