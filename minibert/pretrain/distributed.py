"""Data-parallel pretraining under ``torchrun``: joining the process group, and what every process must agree on."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from ..runtime import get_device


def init_distributed() -> tuple[int, int, torch.device]:
    """Join the process group that ``torchrun`` describes in the environment (gloo on CPU, nccl on GPU).

    Returns (rank, world_size, device); a plain ``python`` run is rank 0 of 1.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = 0, 1
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    else:
        device = get_device()
    return rank, world, device


def _world() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def _all_ranks_agree(ok: bool) -> bool:
    """Whether ``ok`` holds on every rank: all ranks must resume from the same checkpoint."""
    if not dist.is_initialized():
        return ok
    flag = torch.tensor([float(ok)])
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())
