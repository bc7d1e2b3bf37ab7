"""The PLIP towers as pure ``nn.Module``s (tensors in, tensors out) and their configs.

Nothing here imports anything of plip outside this package (except :mod:`plip.errors`);
the raw-input API (paths, strings, batching) is :mod:`plip.inference`.
"""

from .config import (
    ARCHITECTURES, PLIP_MEAN, PLIP_STD, VISION_KINDS, Architecture, PLIPConfig, PreprocessConfig, TextConfig,
    TimmTowerConfig, VisionConfig, build_config, register_architecture,
)
from .modified_resnet import AttentionPool2d, Bottleneck, ModifiedResNet
from .text_encoder import TextEncoder, TextFeatures
from .timm_tower import TimmVisionTower
from .build import build_vision_tower
from .towers import VISION_TOWERS, register_vision_tower

__all__ = [
    "PLIPConfig", "VisionConfig", "TimmTowerConfig", "TextConfig", "PreprocessConfig", "PLIP_MEAN", "PLIP_STD",
    "VISION_KINDS", "VISION_TOWERS", "build_vision_tower", "register_vision_tower", "TimmVisionTower",
    "ARCHITECTURES", "Architecture", "build_config", "register_architecture",
    "ModifiedResNet", "Bottleneck", "AttentionPool2d", "TextEncoder", "TextFeatures",
]
