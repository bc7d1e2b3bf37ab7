"""BoT (Luo et al. 2019) on the PLIP backbone: ``plip train bot --config bot_market1501``.

As reid-strong-baseline (rsb): ID loss with label smoothing + batch-hard triplet (+ centre
loss), P x K batches, and the centres updated by their own SGD (lr ``model.center_lr``, 0.5)
with their gradient divided by the centre-loss weight, outside the main optimizer and its
schedule. Under DDP the losses see the whole global batch (``model.triplet_gather``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from ..config import RunConfig
from ..optim import ScaledGradSGD, param_groups_by_prefix
from ..task import register_task, unwrap_model
from ._downstream import DownstreamModelConfig, ReIDDataConfig, ReIDEvalConfig, ReIDTask

__all__ = ["BoTModelConfig", "BoTConfig", "BoTTask"]


@dataclass
class BoTModelConfig(DownstreamModelConfig):
    """Attributes:
        last_stride: 1 as in BoT.
        neck_feat: ``after`` / ``before`` the BNNeck for evaluation.
        label_smoothing: epsilon of the ID loss (0.1).
        margin: triplet margin (0.3; ``null``: soft margin).
        id_weight, triplet_weight: loss weights.
        center_weight: centre-loss weight (0.0005; 0 turns it off).
        center_lr: learning rate of the centres' own SGD (rsb: 0.5; their gradient is
            divided by ``center_weight`` first, as rsb does).
        triplet_gather: under DDP, compute the losses (batch-hard mining included) over the
            whole global batch; ``false``: each rank mines its own batch.
    """

    last_stride: int = 1
    neck_feat: Literal["after", "before"] = "after"
    label_smoothing: float = 0.1
    margin: float | None = 0.3
    id_weight: float = 1.0
    triplet_weight: float = 1.0
    center_weight: float = 0.0005
    center_lr: float = 0.5
    triplet_gather: bool = True


@dataclass
class BoTConfig(RunConfig):
    model: BoTModelConfig = field(default_factory=BoTModelConfig)
    data: ReIDDataConfig = field(default_factory=ReIDDataConfig)
    eval: ReIDEvalConfig = field(default_factory=ReIDEvalConfig)


@register_task("bot")
class BoTTask(ReIDTask):
    """BoT on the PLIP backbone."""

    config_class = BoTConfig
    default_recipe = "bot_market1501"

    def build_net(self, cfg: BoTConfig, num_classes: int) -> nn.Module:
        from ...downstream.bot import BoT

        m = cfg.model
        return BoT(num_classes, backbone=m.name, pretrained=m.pretrained, last_stride=m.last_stride,
                   image_size=cfg.data.image_size, neck_feat=m.neck_feat)

    def build_criterion(self, cfg: BoTConfig, net: nn.Module) -> nn.Module:
        from ...downstream.bot import BoTLoss

        m = cfg.model
        return BoTLoss(net.num_classes, net.feat_dim, epsilon=m.label_smoothing, margin=m.margin,
                       id_weight=m.id_weight, triplet_weight=m.triplet_weight, center_weight=m.center_weight)

    def param_groups(self, model: nn.Module, cfg: BoTConfig) -> list[dict[str, Any]]:
        groups = param_groups_by_prefix(model, cfg.optim.lr_mult, no_weight_decay_1d=cfg.optim.no_weight_decay_1d)
        centers = _centers(model)
        if centers is not None:  # updated by their own optimizer (extra_optimizers)
            for group in groups:
                group["params"] = [p for p in group["params"] if p is not centers]
            groups = [g for g in groups if g["params"]]
        return groups

    def extra_optimizers(self, model: nn.Module, cfg: BoTConfig) -> dict[str, torch.optim.Optimizer]:
        centers = _centers(model)
        if centers is None:
            return {}
        m = cfg.model
        return {"center": ScaledGradSGD([centers], lr=m.center_lr, grad_scale=1.0 / m.center_weight)}


def _centers(model: nn.Module) -> nn.Parameter | None:
    center = unwrap_model(model).criterion.center
    return None if center is None else center.centers
