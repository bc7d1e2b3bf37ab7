"""PLIP as a drop-in backbone: image ReID (BoT, MGN) and attribute recognition models.

>>> import plip
>>> net = plip.backbone("plip-rn50", last_stride=1)                      # stage maps
>>> from plip.downstream import BoT, MGN, AttributeRecognizer
>>> bot = BoT.from_pretrained("plip-rn50", num_classes=751)

Importing this package (``import plip`` does) registers ``plip_rn50`` with timm
(``timm.create_model``). The training tasks ``bot``, ``mgn`` and ``par`` (``plip train``)
are in :mod:`plip.training.tasks` (``bot``, ``mgn``, ``par``).
"""

from . import timm_models  # noqa: F401  (registers the timm models)
from .backbone import (
    BackboneLoadReport,
    PLIPBackbone,
    ResizedPositionalEmbeddingWarning,
    resize_positional_embedding,
)
from .bot import BoT, BoTLoss, BoTOutput
from .losses import (
    CenterLoss,
    CrossEntropyLabelSmooth,
    TripletLoss,
    WeightedBCELoss,
    euclidean_distance,
    hard_example_mining,
    positive_ratio,
)
from .io import load_model, save_model
from .mgn import MGN, MGNLoss, MGNOutput
from .par import AttributeRecognizer
from .timm_models import PLIPResNet

# ``plip.backbone`` is the factory function; ``plip.downstream.backbone`` stays the module.
__all__ = [
    "PLIPBackbone", "BackboneLoadReport", "ResizedPositionalEmbeddingWarning",
    "resize_positional_embedding", "PLIPResNet",
    "load_model", "save_model",
    "BoT", "BoTLoss", "BoTOutput", "MGN", "MGNLoss", "MGNOutput", "AttributeRecognizer",
    "CrossEntropyLabelSmooth", "TripletLoss", "CenterLoss", "WeightedBCELoss",
    "euclidean_distance", "hard_example_mining", "positive_ratio",
]
