"""Ranks under ``torchrun``: a gloo group used only for barriers (CPU and GPU runs alike).

Shards are exchanged through the shared work folder, so no tensor collective is needed and
gloo works whatever the devices; the group is created here only when ``WORLD_SIZE > 1``.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch.distributed as dist

# Ranks wait at barriers while others encode or rank 0 merges and trains FAISS.
TIMEOUT = datetime.timedelta(seconds=float(os.environ.get("PLIP_INDEX_DIST_TIMEOUT", 24 * 3600)))


@dataclass
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_group = False


def ranks() -> Ranks:
    """This process's rank; joins the ``torchrun`` group (gloo) when there is one."""
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    dist.init_process_group("gloo", timeout=TIMEOUT)
    return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), owns_group=True)
