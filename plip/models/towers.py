"""The image-tower registry: ``vision.kind`` -> the module that builds it.

>>> from plip.models.towers import build_vision_tower
>>> visual = build_vision_tower(config.vision)   # ModifiedResNet or TimmVisionTower

A tower class registers itself with :func:`register_vision_tower` where it is defined; the
heads each kind accepts are :data:`plip.models.config.VISION_KINDS` (config validation runs
without torch).
"""

from __future__ import annotations

from typing import Callable, TypeVar

from torch import nn

from ..errors import ConfigError
from .config import VISION_KINDS, VisionConfig

__all__ = ["VISION_TOWERS", "register_vision_tower", "build_vision_tower"]

#: ``vision.kind`` -> tower class (built as ``cls(vision_config)``).
VISION_TOWERS: dict[str, type[nn.Module]] = {}

T = TypeVar("T", bound=type)


def register_vision_tower(kind: str) -> Callable[[T], T]:
    """Class decorator: the tower built for ``vision.kind == kind``."""
    if kind not in VISION_KINDS:
        raise ConfigError(f"tower kind {kind!r} is not in plip.models.config.VISION_KINDS")

    def wrap(cls: T) -> T:
        if kind in VISION_TOWERS:
            raise ConfigError(f"a vision tower for kind {kind!r} is already registered")
        VISION_TOWERS[kind] = cls  # type: ignore[assignment]
        return cls

    return wrap


def build_vision_tower(config: VisionConfig) -> nn.Module:
    """The image tower ``config`` describes, randomly initialised."""
    from . import modified_resnet, timm_tower  # noqa: F401  (each registers its tower)

    config.validate()
    return VISION_TOWERS[config.kind](config)
