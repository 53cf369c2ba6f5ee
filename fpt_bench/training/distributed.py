"""Data-parallel cells under ``torchrun`` (DDP: NCCL on GPUs, gloo on CPU).

``torchrun --nproc_per_node N -m fpt_bench.cli run ...`` runs every cell of the sweep on N processes with the
same global batch: each rank takes its share of the step's batch, gradients are averaged, and rank 0 alone
writes checkpoints and results.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


def launched() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def init(device: str) -> str:
    """Join the process group torchrun describes; return this rank's device."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl")
        return f"cuda:{local_rank}"
    dist.init_process_group("gloo")
    return "cpu"


def broadcast(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (identity when not distributed)."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shard(size: int, device: torch.device | str) -> torch.Tensor:
    """The indices of a batch of ``size`` that this rank trains on (all of them when not distributed)."""
    return torch.arange(rank(), size, world(), device=device)


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def shutdown() -> None:
    if active():
        dist.destroy_process_group()
