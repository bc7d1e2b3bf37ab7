"""How many images one CPU forward takes: the largest activation stays under glibc's mmap threshold."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ..models.config import VisionConfig
    from .model import PLIPModel

# Largest activation of one CPU forward. glibc serves bigger blocks with mmap and gives them
# back on free (its adaptive threshold stops at 32 MiB), so every forward would page-fault
# fresh zeroed memory again: at batch 32 that alone costs plip-rn50 ~40% of its speed on
# CPU. Below the threshold, freed activations are reused. (benchmarks/bench_encoding.py)
_CPU_ACTIVATION_BYTES = 16 * 2**20


def image_micro_batch(model: "PLIPModel") -> int:
    """Images per forward on the CPU for ``model`` (see :func:`micro_batch_for`)."""
    return micro_batch_for(model.config.vision, model.dtype)


def micro_batch_for(vision: "VisionConfig", dtype: torch.dtype) -> int:
    """As many images as keep the largest activation (the first stage's output, ``4 * width``
    channels at 1/4 resolution) within 16 MiB."""
    height, width = vision.image_size
    if vision.kind != "modified_resnet":
        return 8  # a timm tower's widest map is unknown here; small batches stay within the budget
    per_image = 4 * vision.width * (height // 4) * (width // 4) * torch.finfo(dtype).bits // 8
    return max(1, _CPU_ACTIVATION_BYTES // per_image)
