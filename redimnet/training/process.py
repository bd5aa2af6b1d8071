"""Where a training process runs: its rank in a ``torchrun`` job, its device, and what processes share.

With one process everything here is a no-op; under ``torchrun`` the sums, the barrier
and the random states go through ``torch.distributed``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, List

import torch
import torch.distributed as dist

from .._utils.distributed import World, current_world, init
from ..errors import TrainingError
from .checkpointing import rng_states


@dataclass(frozen=True)
class Process(World):
    """This process's place in the run (:class:`redimnet._utils.distributed.World`) and its device."""

    device: torch.device = torch.device("cpu")


def setup_process(device_choice: str) -> Process:
    """This process's place and device (``"auto"``, ``"cuda"`` or ``"cpu"``); joins the process group."""
    world = current_world()
    use_cuda = device_choice == "cuda" or (device_choice == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise TrainingError("train.device is 'cuda' but no CUDA GPU is available; use 'auto' or 'cpu'")
    device = torch.device("cuda", world.local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    init(world, backend="nccl" if use_cuda else "gloo")
    return Process(world.rank, world.size, world.local_rank, device)


def all_sum(values: List[float], process: Process) -> List[float]:
    """``values`` summed over every process."""
    if not process.distributed:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=process.device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def barrier(process: Process):
    """Wait for every process."""
    if process.distributed:
        dist.barrier()


def all_rng_states(process: Process) -> list:
    """Every process's random states, gathered on the main process."""
    mine = rng_states()
    if not process.distributed:
        return [mine]
    gathered = [None] * process.size
    dist.all_gather_object(gathered, mine)
    return gathered


def autocast_factory(precision: str, device: torch.device) -> Callable:
    """A context-manager factory for ``train.precision`` (``fp32``: none, ``bf16`` / ``fp16``: autocast)."""
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)
