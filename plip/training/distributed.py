"""Plain ``torch.distributed`` helpers for runs launched by ``torchrun`` (or not at all).

There is no launcher here: ``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_distributed` reads them and starts the
process group (nccl for CUDA, gloo for CPU). Without them the run is a single process.
"""

from __future__ import annotations

import datetime
import os
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..errors import ConfigError

__all__ = [
    "DistInfo",
    "init_distributed",
    "cleanup_distributed",
    "is_dist",
    "get_rank",
    "get_world_size",
    "is_main",
    "barrier",
    "gather_with_grad",
    "all_reduce_mean",
    "all_gather_objects",
    "seed_everything",
]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: rank, world size, local rank and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not an integer") from None


def init_distributed(device: str = "auto", timeout_minutes: int = 60) -> DistInfo:
    """Start the process group from the ``torchrun`` environment (when there is one).

    Args:
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        timeout_minutes: timeout of collective operations.

    Returns:
        The rank, world size, local rank and the device this process computes on
        (``cuda:LOCAL_RANK`` on GPUs).

    Raises:
        ConfigError: ``device='cuda'`` without a GPU.
    """
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise ConfigError("config key 'train.device' is 'cuda' but no CUDA device is available")
    rank, world = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1)
    local_rank = _env_int("LOCAL_RANK", 0)
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    initialized_here = False
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        dist.init_process_group(
            backend=backend,
            timeout=datetime.timedelta(minutes=timeout_minutes),
            **({"device_id": dev} if use_cuda else {}),
        )
        initialized_here = True
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev,
                    initialized_here=initialized_here)


def cleanup_distributed(info: DistInfo) -> None:
    """Destroy the process group if :func:`init_distributed` created it."""
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_dist() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def is_main() -> bool:
    """True on rank 0 (and in a single-process run)."""
    return get_rank() == 0


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if is_dist() and get_world_size() > 1:
        dist.barrier()


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sends every rank the sum of the gradients for its shard.

    Every rank computes the same loss of the gathered batch; the gradient of the loss with
    respect to the local shard is the sum over ranks of what each rank's copy of the loss
    sends back. DDP then averages parameter gradients over ranks, which yields exactly the
    gradient a single process would get for the whole batch.
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        rank = dist.get_rank()
        ctx.sizes, ctx.rank = sizes, rank
        max_n = max(sizes)
        padded = tensor
        if tensor.shape[0] < max_n:  # all_gather needs equal shapes
            pad = tensor.new_zeros((max_n - tensor.shape[0], *tensor.shape[1:]))
            padded = torch.cat([tensor, pad])
        out = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(out, padded.contiguous())
        return torch.cat([o[:n] for o, n in zip(out, sizes)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start:start + ctx.sizes[ctx.rank]], None


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` (first dimension) from every rank, in rank order, keeping gradients.

    For losses that need the whole global batch (CMPM, contrastive, triplet with hard
    mining): compute the loss on the gathered tensors on every rank. Gradients flow back to
    each rank's own shard, summed over ranks, so that with DDP's gradient averaging the
    parameters get exactly the gradient of a single process holding the whole batch.
    Shards may differ in length. In a single process the tensor is returned unchanged.
    """
    if not is_dist() or get_world_size() == 1:
        return tensor
    n = torch.tensor([tensor.shape[0]], device=tensor.device)
    sizes_t = [torch.empty_like(n) for _ in range(get_world_size())]
    dist.all_gather(sizes_t, n)
    sizes = [int(s.item()) for s in sizes_t]
    return _GatherWithGrad.apply(tensor, sizes)


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of ``tensor`` over ranks (a new tensor; no gradient)."""
    tensor = tensor.detach().clone()
    if is_dist() and get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= get_world_size()
    return tensor


def all_gather_objects(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` (``[obj]`` in a single process)."""
    if not is_dist() or get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
