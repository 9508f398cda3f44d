"""torchrun / DistributedDataParallel support for the training entry points.

The same ``dudes train-teacher`` / ``train-student`` commands run single-process or under
``torchrun``: when ``WORLD_SIZE`` > 1 the process group is initialised from the environment
(NCCL on GPUs, gloo on CPUs), each process takes ``LOCAL_RANK``'s GPU, data is sharded, and
only rank 0 writes checkpoints and shows progress.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over processes in place (no-op single-process)."""
        if self.distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor


def process_device_of(device: str, local_rank: int = 0) -> torch.device:
    """This process's torch device: ``auto`` -> its GPU (``local_rank``) if CUDA is available,
    else the CPU; a GPU becomes the current CUDA device."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} requested but CUDA is not available")
        if dev.index is None:
            dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    return dev


def setup(device: str = "auto") -> DistContext:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1; pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(0, 1, 0, process_device_of(device), False)
    for var in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise RuntimeError(f"WORLD_SIZE={world} but {var} is not set; start distributed "
                               "runs with torchrun")
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    dev = process_device_of(device, local_rank)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return DistContext(rank, world, local_rank, dev, owns)


def teardown(ctx: DistContext) -> None:
    """Leave the process group if ``setup`` created it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()
