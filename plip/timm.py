"""``import plip.timm`` registers the PLIP image encoders with timm (``timm.create_model("plip_rn50")``).

See :mod:`plip.downstream.timm_models` for the models and their pretrained configs.
"""

from .downstream.timm_models import PLIPResNet, checkpoint_filter_fn  # noqa: F401  (registers)

__all__ = ["PLIPResNet", "checkpoint_filter_fn"]
