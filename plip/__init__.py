"""plip: pretrained person encoders (PLIP, NeurIPS 2024) made easy to use.

>>> import plip
>>> model = plip.load("plip-rn50")
>>> gallery = model.encode_image(["a.jpg", "b.jpg"])
>>> hits = model.retrieve("a woman with a red backpack", gallery=gallery, top_k=5)

``import plip`` stays light: the downstream models, timm, training and integrations load on
first use (``plip.backbone(...)`` or ``import plip.timm`` registers the timm models).
"""

from typing import Any

from . import export  # callable package: plip.export(model, out, ...)
from .errors import PlipError
from .hub import list_models
from .inference import PLIPModel, RetrievalResult, create_model, load, retrieve
from .models import PLIP_MEAN, PLIP_STD, PLIPConfig
from .tokenizer import PLIPTokenizer
from .version import __version__

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


def __getattr__(name: str) -> Any:
    # plip.Index loads on first use (numpy memory maps, FAISS when installed).
    if name == "Index":
        from .index import Index

        return Index
    raise AttributeError(f"module 'plip' has no attribute {name!r}")
