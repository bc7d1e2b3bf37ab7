"""PLIP as a drop-in backbone: image ReID (BoT, MGN) and attribute recognition models.

>>> import plip
>>> net = plip.backbone("plip-rn50", last_stride=1)                      # stage maps
>>> from plip.downstream import BoT, MGN, AttributeRecognizer
>>> bot = BoT.from_pretrained("plip-rn50", num_classes=751)

Each model type registers itself (``@register_downstream``) in :data:`DOWNSTREAM_MODELS`;
:func:`save_model` / :func:`load_model` work for every registered type. The timm models are
in :mod:`plip.downstream.timm_models` (``import plip.timm`` or a first ``plip.backbone`` call
registers them); the training tasks ``bot``, ``mgn`` and ``par`` are in :mod:`plip.training.tasks`.
"""

from .backbone import BackboneLoadReport, PLIPBackbone
from .positional import ResizedPositionalEmbeddingWarning, resize_positional_embedding
from .base import DOWNSTREAM_MODELS, DownstreamModel, load_model, register_downstream, save_model
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
from .mgn import MGN, MGNLoss, MGNOutput
from .par import AttributeRecognizer

# ``plip.backbone`` is the factory function; ``plip.downstream.backbone`` stays the module.
__all__ = [
    "PLIPBackbone", "BackboneLoadReport", "ResizedPositionalEmbeddingWarning", "resize_positional_embedding",
    "DownstreamModel", "DOWNSTREAM_MODELS", "register_downstream", "load_model", "save_model",
    "BoT", "BoTLoss", "BoTOutput", "MGN", "MGNLoss", "MGNOutput", "AttributeRecognizer",
    "CrossEntropyLabelSmooth", "TripletLoss", "CenterLoss", "WeightedBCELoss",
    "euclidean_distance", "hard_example_mining", "positive_ratio",
]
