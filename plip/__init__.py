"""plip: pretrained person encoders (PLIP, NeurIPS 2024) made easy to use.

>>> import plip
>>> model = plip.load("plip-rn50")
>>> gallery = model.encode_image(["a.jpg", "b.jpg"])
>>> hits = model.retrieve("a woman with a red backpack", gallery=gallery, top_k=5)

``import plip`` stays light (no torch): the model API, the downstream models, timm, training
and integrations load on first use (``plip.backbone(...)`` or ``import plip.timm`` registers the timm models).
"""

import importlib
from typing import TYPE_CHECKING, Any

from .errors import PlipError
from .version import __version__

if TYPE_CHECKING:  # the names below load on first use, so that `plip --help` needs no torch
    from .hub import list_models
    from .inference import PLIPModel, RetrievalResult, create_model, load, retrieve
    from .models import PLIP_MEAN, PLIP_STD, PLIPConfig
    from .tokenizer import PLIPTokenizer

_LAZY = {
    "list_models": "hub", "PLIPModel": "inference", "RetrievalResult": "inference", "create_model": "inference",
    "load": "inference", "retrieve": "inference", "PLIP_MEAN": "models", "PLIP_STD": "models",
    "PLIPConfig": "models", "PLIPTokenizer": "tokenizer", "Index": "index",
}


def __getattr__(name: str) -> Any:
    """Public names and subpackages (``plip.inference`` ...) import on first access."""
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    if not name.startswith("_"):
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

__all__ = [
    "load", "create_model", "list_models", "export", "retrieve", "RetrievalResult", "backbone", "Index",
    "PLIPModel", "PLIPConfig", "PLIPTokenizer", "PlipError", "PLIP_MEAN", "PLIP_STD", "__version__",
]


def backbone(*args: Any, **kwargs: Any):
    """The PLIP image encoder as a ReID / attribute backbone: :func:`plip.downstream.backbone.backbone`.

    The first call imports :mod:`plip.downstream` and registers the PLIP models with timm.
    """
    from .downstream.backbone import backbone as build

    return build(*args, **kwargs)
