"""Resizing the attention pool's learned positional embedding to another feature grid."""

from __future__ import annotations

from typing import Sequence

import torch

from ..errors import ConfigError

__all__ = ["POS_EMBED_KEY", "ResizedPositionalEmbeddingWarning", "resize_positional_embedding"]

POS_EMBED_KEY = "attnpool.positional_embedding"
_INTERPOLATIONS = ("bicubic", "bilinear")


class ResizedPositionalEmbeddingWarning(UserWarning):
    """Pretrained attention-pool positions were interpolated to a new feature grid."""


def resize_positional_embedding(
    positional_embedding: torch.Tensor,
    old_grid: Sequence[int],
    new_grid: Sequence[int],
    *,
    interpolation: str = "bicubic",
) -> torch.Tensor:
    """Resize an attention-pool positional embedding to a new feature grid.

    Args:
        positional_embedding: ``(1 + H*W, C)``: row 0 belongs to the mean (class) token, the
            others to the ``H x W`` grid flattened row-major, as in CLIP's attention pool.
        old_grid: ``(H, W)`` the embedding was trained for (8x4 for PLIP-RN50).
        new_grid: the target ``(H', W')`` (12x4 for 384x128 inputs, 16x8 with last stride 1).
        interpolation: ``"bicubic"`` (default, as CLIP / open_clip / timm do) or ``"bilinear"``.

    Returns:
        ``(1 + H'*W', C)``; the class-token row is kept as is. The same grid returns the
        input unchanged.
    """
    old_grid, new_grid = tuple(int(v) for v in old_grid), tuple(int(v) for v in new_grid)
    if interpolation not in _INTERPOLATIONS:
        raise ConfigError(f"interpolation must be one of {_INTERPOLATIONS}, got {interpolation!r}")
    if positional_embedding.dim() != 2 or positional_embedding.shape[0] != 1 + old_grid[0] * old_grid[1]:
        raise ConfigError(
            f"positional embedding of shape {tuple(positional_embedding.shape)} does not fit a "
            f"{old_grid[0]}x{old_grid[1]} grid plus one class token"
        )
    if min(new_grid) < 1:
        raise ConfigError(f"new grid must be positive, got {new_grid}")
    if old_grid == new_grid:
        return positional_embedding
    from timm.layers import resample_abs_pos_embed

    resized = resample_abs_pos_embed(
        positional_embedding.unsqueeze(0),
        new_size=list(new_grid),
        old_size=list(old_grid),
        num_prefix_tokens=1,
        interpolation=interpolation,
        antialias=True,
    )
    return resized[0]
