"""Build the image tower a config describes (every registered kind is imported here).

>>> from plip.models import build_vision_tower
>>> visual = build_vision_tower(config.vision)   # ModifiedResNet or TimmVisionTower
"""

from __future__ import annotations

from torch import nn

from . import modified_resnet, timm_tower  # noqa: F401  (each registers its tower)
from .config import VisionConfig
from .towers import VISION_TOWERS

__all__ = ["build_vision_tower"]


def build_vision_tower(config: VisionConfig) -> nn.Module:
    """The image tower ``config`` describes (``config.kind``), randomly initialised."""
    config.validate()
    return VISION_TOWERS[config.kind](config)
