"""Running one command on several processes (``torchrun``): rank, sharding, gathering.

Under ``torchrun --nproc_per_node N`` every process sees ``RANK`` and
``WORLD_SIZE``; with ``WORLD_SIZE > 1`` a process group is started (gloo on
CPU, nccl when each rank has a GPU) so rank 0 can collect everyone's results.
Outside torchrun everything degrades to a single process.
"""

import os
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def current_world() -> World:
    """Rank and world size from the environment torchrun sets (1 process otherwise)."""
    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    rank = int(os.environ.get("RANK", "0") or 0)
    local = int(os.environ.get("LOCAL_RANK", str(rank)) or 0)
    return World(rank, size, local)


def init(world: World, backend: str = "gloo") -> None:
    """Start the process group when there is more than one process (idempotent)."""
    if not world.distributed:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=world.rank, world_size=world.size)


def shard(items: Sequence[T], world: World) -> List[T]:
    """This rank's share of ``items``: every ``size``-th item starting at ``rank``."""
    return list(items[world.rank :: world.size])


def gather(obj: Any, world: World) -> List[Any]:
    """Every rank's ``obj`` on rank 0 (in rank order); ``[]`` on the other ranks."""
    if not world.distributed:
        return [obj]
    import torch.distributed as dist

    gathered: Optional[List[Any]] = [None] * world.size if world.is_main else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered if gathered is not None else []  # None exactly on the ranks other than 0


def broadcast(obj: Any, world: World) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not world.distributed:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def finish(world: World) -> None:
    """Tear the process group down."""
    if world.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
