"""Multi-process training with torchrun: who am I, talk to the others, wrap the model.

Launch (one machine, 2 processes; CUDA uses NCCL, the CPU gloo):

    torchrun --standalone --nproc_per_node 2 -m lstndsl train specs/lstn.spec --backbone resnet50

Multi-node: `torchrun --nnodes N --node_rank R --rdzv_backend c10d --rdzv_endpoint HOST:PORT
--nproc_per_node G -m lstndsl train …` on every node.

What it is: `DistContext` read from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK),
process-group setup/teardown, `all_reduce_sum`, `barrier`, `wrap` (DistributedDataParallel).
Rank 0 alone prints and writes files; every rank trains on its own shard of each epoch (the
data layer's `rank`/`world_size`: DistributedSampler's order), with `batch_size` examples per
process per step. What it is not: the loop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_environment(env: dict[str, str] | None = None) -> DistContext:
    """The context torchrun's variables describe (single process when they are absent)."""
    env = dict(os.environ) if env is None else env
    world = int(env.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    return DistContext(int(env["RANK"]), world, int(env.get("LOCAL_RANK", env["RANK"])))


def setup(ctx: DistContext, device: torch.device) -> None:
    """Join the process group (NCCL on CUDA, gloo on the CPU)."""
    if not ctx.enabled or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend="nccl" if device.type == "cuda" else "gloo",
        rank=ctx.rank,
        world_size=ctx.world_size,
    )


def teardown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum across processes (a copy; the identity when alone). gloo reduces on the CPU."""
    if not (dist.is_available() and dist.is_initialized()):
        return tensor
    out = tensor.clone()
    if dist.get_backend() == "nccl":
        out = out.cuda()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.cpu()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast_object(obj: Any) -> Any:
    """Rank 0's `obj` on every rank (itself when alone)."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_rank(flag: bool) -> bool:
    """True on every rank when `flag` is True on one of them (keeps decisions in step)."""
    # cpu-ok: a host flag; all_reduce_sum moves it where the backend reduces
    return bool(all_reduce_sum(torch.tensor([1.0 if flag else 0.0])).item() > 0)


def wrap(model: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """DistributedDataParallel around `model` when there are several processes."""
    if not ctx.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)
