"""The image-tower registry: ``vision.kind`` -> the class that builds it.

A tower class registers itself with :func:`register_vision_tower` where it is defined; the
heads each kind accepts are :data:`plip.models.config.VISION_KINDS` (config validation runs
without torch). :func:`plip.models.build.build_vision_tower` builds one.
"""

from __future__ import annotations

from typing import Callable, TypeVar

from torch import nn

from ..errors import ConfigError
from .config import VISION_KINDS

__all__ = ["VISION_TOWERS", "register_vision_tower"]

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
