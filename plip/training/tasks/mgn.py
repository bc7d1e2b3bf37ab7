"""MGN (Wang et al. 2018) on the PLIP backbone: ``plip train mgn --config mgn_market1501``.

Softmax on the 8 reduced features + batch-hard triplet on the 3 global ones; under DDP the
losses see the whole global batch (``model.triplet_gather``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from torch import nn

from ..config import RunConfig
from ..task import register_task
from ._downstream import DownstreamModelConfig, ReIDDataConfig, ReIDEvalConfig, ReIDTask

__all__ = ["MGNModelConfig", "MGNConfig", "MGNTask"]


@dataclass
class MGNModelConfig(DownstreamModelConfig):
    """Attributes:
        feat_dim: size of each reduced feature (256).
        parts: stripe counts of the part branches ([2, 3]).
        pool: ``max`` (paper) or ``avg``.
        margin: triplet margin (1.2; ``null``: soft margin).
        label_smoothing: epsilon of the ID losses (0: plain softmax).
        id_weight, triplet_weight: loss weights.
        triplet_gather: under DDP, compute the losses over the whole global batch; ``false``:
            each rank mines its own batch.
    """

    feat_dim: int = 256
    parts: list[int] = field(default_factory=lambda: [2, 3])
    pool: Literal["max", "avg"] = "max"
    margin: float | None = 1.2
    label_smoothing: float = 0.0
    id_weight: float = 1.0
    triplet_weight: float = 1.0
    triplet_gather: bool = True


@dataclass
class MGNConfig(RunConfig):
    model: MGNModelConfig = field(default_factory=MGNModelConfig)
    data: ReIDDataConfig = field(default_factory=ReIDDataConfig)
    eval: ReIDEvalConfig = field(default_factory=ReIDEvalConfig)


@register_task("mgn")
class MGNTask(ReIDTask):
    """MGN on the PLIP backbone."""

    config_class = MGNConfig
    default_recipe = "mgn_market1501"

    def build_net(self, cfg: MGNConfig, num_classes: int) -> nn.Module:
        from ...downstream.mgn import MGN

        m = cfg.model
        return MGN(num_classes, backbone=m.name, pretrained=m.pretrained, image_size=cfg.data.image_size,
                   feat_dim=m.feat_dim, parts=m.parts, pool=m.pool)

    def build_criterion(self, cfg: MGNConfig, net: nn.Module) -> nn.Module:
        from ...downstream.mgn import MGNLoss

        m = cfg.model
        return MGNLoss(margin=m.margin, epsilon=m.label_smoothing, id_weight=m.id_weight,
                       triplet_weight=m.triplet_weight)
