"""plip: pretrained person encoders (PLIP, NeurIPS 2024) made easy to use."""

from .version import __version__

__all__ = ["__version__"]
