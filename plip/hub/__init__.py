"""Where weights come from: the registry, the Hub, local folders, official checkpoints.

Everything here reads and writes files (configs, tensors, tokenizers); building models from
them is :mod:`plip.inference.factory` (``plip.load``).
"""

from .registry import MODELS, ModelEntry, list_models, register_model
from .sources import ModelSource, resolve_source

__all__ = ["list_models", "MODELS", "ModelEntry", "register_model", "ModelSource", "resolve_source"]
