"""The PLIP towers as pure ``nn.Module``s (tensors in, tensors out) and their configs.

Nothing here imports anything of plip outside this package (except :mod:`plip.errors`);
the raw-input API (paths, strings, batching) is :mod:`plip.inference`.
"""

from .config import (
    ARCHITECTURES, PLIP_MEAN, PLIP_STD, Architecture, PLIPConfig, PreprocessConfig, TextConfig, VisionConfig,
    build_config, register_architecture,
)
from .modified_resnet import AttentionPool2d, Bottleneck, ModifiedResNet
from .text_encoder import TextEncoder, TextFeatures

__all__ = [
    "PLIPConfig", "VisionConfig", "TextConfig", "PreprocessConfig", "PLIP_MEAN", "PLIP_STD",
    "ARCHITECTURES", "Architecture", "build_config", "register_architecture",
    "ModifiedResNet", "Bottleneck", "AttentionPool2d", "TextEncoder", "TextFeatures",
]
