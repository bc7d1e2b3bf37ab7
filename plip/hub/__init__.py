"""Where weights come from: the registry, the Hub, local folders, official checkpoints."""

from .loading import load
from .registry import MODELS, ModelEntry, list_models

__all__ = ["load", "list_models", "MODELS", "ModelEntry"]
