"""BoT, the "bag of tricks" strong ReID baseline (Luo et al., CVPRW 2019), on the PLIP backbone.

backbone (last stride 1) -> global average pooling -> ``global_feat`` -> BNNeck (BatchNorm1d
whose bias is frozen at 0) -> ``feat`` -> bias-free ID classifier. Training uses the ID loss
with label smoothing on the classifier scores and the batch-hard triplet loss (optionally
the center loss) on ``global_feat``; retrieval uses ``feat`` (after BN), as the paper does.
The rest of the bag (PK sampler, warm-up, random erasing) lives in the training recipe.

>>> model = BoT.from_pretrained("plip-rn50", num_classes=751)
>>> criterion = BoTLoss(num_classes=751, feat_dim=model.feat_dim)
>>> loss = criterion(model(images), pids)["loss"]        # training mode
>>> emb = model.eval()(images)                           # (B, 2048) after-BN features
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..models.config import PLIPConfig
from .backbone import PLIPBackbone, resolve_backbone
from .base import DownstreamModel, register_downstream
from .losses import CenterLoss, CrossEntropyLabelSmooth, TripletLoss

__all__ = ["BoT", "BoTOutput", "BoTLoss"]


class BoTOutput(NamedTuple):
    """Training output of :class:`BoT` (unpacks as ``cls_score, global_feat``)."""

    cls_score: torch.Tensor
    global_feat: torch.Tensor


@register_downstream("bot")
class BoT(DownstreamModel):
    """Backbone + GAP + BNNeck + ID classifier.

    Args:
        num_classes: training identities.
        backbone: a PLIP model name / path / config (see :func:`plip.backbone`) or a prebuilt
            :class:`~plip.downstream.PLIPBackbone`.
        pretrained: load the backbone's weights (strictly; ``self.backbone.load_report``).
        last_stride: 1 as in BoT.
        image_size: input ``(H, W)``; default the backbone's (256x128).
        neck_feat: ``"after"`` (default) or ``"before"`` the BNNeck for the eval feature.
    """

    def __init__(
        self,
        num_classes: int,
        backbone: Any = "plip-rn50",
        pretrained: bool = True,
        *,
        last_stride: int = 1,
        image_size: Sequence[int] | None = None,
        neck_feat: str = "after",
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ConfigError(f"BoT: num_classes must be >= 1, got {num_classes!r}")
        if neck_feat not in ("after", "before"):
            raise ConfigError(f"BoT: neck_feat must be 'after' or 'before', got {neck_feat!r}")
        self.backbone: PLIPBackbone = resolve_backbone(
            backbone, pretrained, last_stride=last_stride, image_size=image_size, where="BoT"
        )
        self.num_classes = num_classes
        self.neck_feat = neck_feat
        self.feat_dim = self.backbone.num_features
        self.bottleneck = nn.BatchNorm1d(self.feat_dim)
        self.bottleneck.bias.requires_grad_(False)  # BNNeck: no shift, as in the paper
        self.classifier = nn.Linear(self.feat_dim, num_classes, bias=False)
        nn.init.ones_(self.bottleneck.weight)
        nn.init.zeros_(self.bottleneck.bias)
        nn.init.normal_(self.classifier.weight, std=0.001)

    @classmethod
    def from_pretrained(cls, name_or_path: Any = "plip-rn50", *, num_classes: int, **kwargs: Any) -> "BoT":
        """BoT on the pretrained PLIP image encoder ``name_or_path`` (new neck and classifier)."""
        return cls(num_classes, backbone=name_or_path, pretrained=True, **kwargs)

    @classmethod
    def tiny_example_kwargs(cls) -> dict[str, Any]:
        return {"num_classes": 5, "backbone": PLIPConfig.tiny(), "input_size": (64, 32)}

    @property
    def embed_dim(self) -> int:
        """Size of the retrieval feature."""
        return self.feat_dim

    def init_args(self) -> dict[str, Any]:
        """Constructor arguments besides the backbone (for :func:`plip.downstream.save_model`)."""
        return {"num_classes": self.num_classes, "last_stride": self.backbone.config.last_stride,
                "image_size": list(self.backbone.image_size), "neck_feat": self.neck_feat}

    def forward(self, images: torch.Tensor) -> BoTOutput | torch.Tensor:
        """Training: :class:`BoTOutput` ``(cls_score, global_feat)``; eval: the retrieval feature."""
        global_feat = self.backbone.forward_features(images).mean(dim=(2, 3))
        feat = self.bottleneck(global_feat)
        if self.training:
            return BoTOutput(self.classifier(feat), global_feat)
        return feat if self.neck_feat == "after" else global_feat


class BoTLoss(nn.Module):
    """``id_weight * CE_ls(cls_score) + triplet_weight * triplet(global_feat) [+ center_weight * center]``.

    Defaults are the paper's: epsilon 0.1, margin 0.3 (``None``: soft margin), center loss
    off (``center_weight=0.0005`` turns it on; give its centres their own SGD with lr 0.5).
    Returns a dict with ``loss`` (the total) and each term.
    """

    def __init__(
        self,
        num_classes: int,
        feat_dim: int,
        *,
        epsilon: float = 0.1,
        margin: float | None = 0.3,
        id_weight: float = 1.0,
        triplet_weight: float = 1.0,
        center_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.id_loss = CrossEntropyLabelSmooth(epsilon)
        self.triplet = TripletLoss(margin)
        self.id_weight, self.triplet_weight, self.center_weight = id_weight, triplet_weight, center_weight
        self.center = CenterLoss(num_classes, feat_dim) if center_weight > 0 else None

    def forward(self, output: BoTOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        cls_score, global_feat = output
        terms = {
            "id": self.id_loss(cls_score, labels),
            "triplet": self.triplet(global_feat, labels),
        }
        total = self.id_weight * terms["id"] + self.triplet_weight * terms["triplet"]
        if self.center is not None:
            terms["center"] = self.center(global_feat, labels)
            total = total + self.center_weight * terms["center"]
        return {"loss": total, **terms}
