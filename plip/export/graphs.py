"""The modules that get exported: each tower with its input conversion and output norm.

They are plain ``nn.Module`` wrappers around the model's own towers (``model.visual``,
``model.text``), so an exported graph computes exactly what ``encode_image`` /
``encode_text`` compute, from tensors the consumer prepares its own way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .conventions import InputConvention, affine_to_model

__all__ = ["ImageGraph", "TextGraph", "IMAGE_INPUT", "TEXT_INPUTS", "OUTPUT"]

IMAGE_INPUT = "images"  # boxmot's input name too
TEXT_INPUTS = ("input_ids", "attention_mask")
OUTPUT = "embedding"


class ImageGraph(nn.Module):
    """``(N, 3, H, W)`` consumer tensor -> ``(N, D)`` embedding (L2-normalised if asked)."""

    def __init__(self, visual: nn.Module, convention: InputConvention, mean, std, normalize: bool) -> None:
        super().__init__()
        self.visual = visual
        self.normalize = normalize
        self.bgr = convention.channels == "bgr"
        self.fold = not (convention.norm == "plip")
        scale, shift = affine_to_model(convention, mean, std)
        self.register_buffer("scale", torch.tensor(scale).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", torch.tensor(shift).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.bgr:
            images = images.flip(1)
        if self.fold:
            images = images * self.scale + self.shift
        embedding = self.visual(images)
        return F.normalize(embedding, dim=-1) if self.normalize else embedding


class TextGraph(nn.Module):
    """``input_ids``, ``attention_mask`` ``(N, L)`` int64 -> ``(N, D)`` embedding."""

    def __init__(self, text: nn.Module, normalize: bool) -> None:
        super().__init__()
        self.text = text
        self.normalize = normalize

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        embedding = self.text.embed(input_ids, attention_mask)
        return F.normalize(embedding, dim=-1) if self.normalize else embedding


def example_images(size: tuple[int, int], batch: int = 2) -> torch.Tensor:
    """A deterministic example batch for tracing."""
    generator = torch.Generator().manual_seed(0)
    return torch.randn(batch, 3, *size, generator=generator)


def example_tokens(vocab_size: int, pad_id: int, length: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Two captions of different lengths: the mask has zeros, so no exporter can drop it."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000 if vocab_size > 2000 else 5, vocab_size, (2, length), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, length // 2 :] = 0
    ids[1, length // 2 :] = pad_id
    return ids, mask
