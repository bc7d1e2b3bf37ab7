"""PLIP model definitions: image encoder, text encoder, the joint model, config."""

from .config import PLIPConfig, PreprocessConfig, TextConfig, VisionConfig
from .modified_resnet import AttentionPool2d, Bottleneck, ImageFeatures, ModifiedResNet
from .plip_model import PLIPModel
from .text_encoder import TextEncoder, TextFeatures

__all__ = [
    "PLIPConfig", "VisionConfig", "TextConfig", "PreprocessConfig",
    "ModifiedResNet", "Bottleneck", "AttentionPool2d", "ImageFeatures",
    "TextEncoder", "TextFeatures", "PLIPModel",
]
