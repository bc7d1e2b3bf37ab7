"""plip: pretrained person encoders (PLIP, NeurIPS 2024) made easy to use.

>>> import plip
>>> model = plip.load("plip-rn50")
>>> gallery = model.encode_image(["a.jpg", "b.jpg"])
>>> hits = model.retrieve("a woman with a red backpack", gallery=gallery, top_k=5)
"""

from . import export  # callable package: plip.export(model, out, ...)
from .errors import PlipError
from .hub import list_models, load
from .models import PLIPConfig, PLIPModel
from .retrieval import RetrievalResult, retrieve
from .tokenizer import PLIPTokenizer
from .version import __version__

# Last: importing plip.downstream also registers plip_rn50 with timm.
from .downstream.backbone import backbone  # noqa: E402

__all__ = [
    "load", "list_models", "export", "retrieve", "RetrievalResult", "backbone",
    "PLIPModel", "PLIPConfig", "PLIPTokenizer", "PlipError", "__version__",
]
