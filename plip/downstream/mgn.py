"""MGN, the multiple granularity network (Wang et al., ACM MM 2018), on the PLIP backbone.

The stem, layer1, layer2 and ``layer3[0]`` are shared. Three branches each get their own copy
of ``layer3[1:]`` and ``layer4``: the global branch keeps layer4's stride 2; the part-2 and
part-3 branches use stride 1 (in this ResNet: the average pools of ``layer4[0]`` become
identities). Each branch map is max-pooled globally, the part branches also into 2 and 3
horizontal stripes; each of these 8 vectors is reduced to 256-d by its own 1x1 conv + BN +
ReLU and classified by its own linear layer. Training: softmax loss on all 8 logits and
triplet loss on the 3 reduced global features; retrieval feature: the 8 reduced features
concatenated (8 x 256 = 2048-d). Layout, initialisation and loss averaging follow the
widely used reproduction (seathiefwang/MGN-pytorch) with the paper's max pooling and
triplet margin 1.2. Input 384x128 by default, as in the paper.
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..models.config import PLIPConfig
from .backbone import PLIPBackbone, resolve_backbone
from .base import DownstreamModel, register_downstream
from .losses import CrossEntropyLabelSmooth, TripletLoss

__all__ = ["MGN", "MGNOutput", "MGNLoss"]


class MGNOutput(NamedTuple):
    """Training output of :class:`MGN`.

    Attributes:
        global_feats: the reduced global feature of each branch (3 x ``(B, feat_dim)``), for the triplet loss.
        logits: the ID logits of the 3 global then the 5 part features (8 x ``(B, num_classes)``).
        features: all 8 reduced features concatenated ``(B, 8 * feat_dim)`` (the eval output).
    """

    global_feats: tuple[torch.Tensor, ...]
    logits: tuple[torch.Tensor, ...]
    features: torch.Tensor


@register_downstream("mgn")
class MGN(DownstreamModel):
    """Multiple granularity network: one global and two part branches.

    Args:
        num_classes: training identities.
        backbone: a PLIP model name / path / config (see :func:`plip.backbone`) or a prebuilt
            :class:`~plip.downstream.PLIPBackbone` with last stride 2 (its layers are reused).
        pretrained: load the backbone's weights (strictly; ``self.load_report``).
        image_size: input ``(H, W)`` (384x128 as in the paper).
        feat_dim: size of each reduced feature (256).
        parts: stripe counts of the part branches ((2, 3)).
        pool: ``"max"`` (paper) or ``"avg"``.
    """

    def __init__(
        self,
        num_classes: int,
        backbone: Any = "plip-rn50",
        pretrained: bool = True,
        *,
        image_size: Sequence[int] | None = (384, 128),
        feat_dim: int = 256,
        parts: Sequence[int] = (2, 3),
        pool: str = "max",
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ConfigError(f"MGN: num_classes must be >= 1, got {num_classes!r}")
        if pool not in ("max", "avg"):
            raise ConfigError(f"MGN: pool must be 'max' or 'avg', got {pool!r}")
        if not parts or any(int(p) < 1 for p in parts):
            raise ConfigError(f"MGN: parts must be positive stripe counts, got {parts!r}")
        net: PLIPBackbone = resolve_backbone(backbone, pretrained, last_stride=2, image_size=image_size, where="MGN")
        if not isinstance(net, PLIPBackbone):
            raise ConfigError(
                "MGN: its branches copy the Modified ResNet's layer3 / layer4; a timm image tower "
                f"({net.config.timm.model_name}) cannot be split that way (use BoT or the attribute recogniser)"
            )
        self.num_classes, self.feat_dim, self.parts, self.pool = num_classes, feat_dim, tuple(int(p) for p in parts), pool
        self.image_size = net.image_size

        res_conv4 = net.layer3[1:]
        global_conv5 = net.layer4
        part_conv5 = copy.deepcopy(net.layer4)
        part_conv5[0].set_stride(1)
        self.branches = nn.ModuleList(
            [nn.Sequential(copy.deepcopy(res_conv4), copy.deepcopy(global_conv5))]
            + [nn.Sequential(copy.deepcopy(res_conv4), copy.deepcopy(part_conv5)) for _ in self.parts]
        )
        # the shared trunk: stem, layer1, layer2, layer3[0]
        net.layer3 = net.layer3[:1]
        net.layer4 = None
        net.out_indices, net.single_output = (2,), True
        self.backbone = net

        channels = net.stage_channels[-1]
        self.num_parts = len(self.branches) + sum(self.parts)
        self.reductions = nn.ModuleList(self._reduction(channels, feat_dim) for _ in range(self.num_parts))
        self.classifiers = nn.ModuleList(self._classifier(feat_dim, num_classes) for _ in range(self.num_parts))

    @staticmethod
    def _reduction(channels: int, feat_dim: int) -> nn.Sequential:
        block = nn.Sequential(nn.Conv2d(channels, feat_dim, 1, bias=False), nn.BatchNorm2d(feat_dim), nn.ReLU())
        nn.init.kaiming_normal_(block[0].weight, mode="fan_in")
        nn.init.normal_(block[1].weight, mean=1.0, std=0.02)
        nn.init.zeros_(block[1].bias)
        return block

    @staticmethod
    def _classifier(feat_dim: int, num_classes: int) -> nn.Linear:
        fc = nn.Linear(feat_dim, num_classes)
        nn.init.kaiming_normal_(fc.weight, mode="fan_out")
        nn.init.zeros_(fc.bias)
        return fc

    @classmethod
    def from_pretrained(cls, name_or_path: Any = "plip-rn50", *, num_classes: int, **kwargs: Any) -> "MGN":
        """MGN on the pretrained PLIP image encoder ``name_or_path`` (new branches' heads)."""
        return cls(num_classes, backbone=name_or_path, pretrained=True, **kwargs)

    @classmethod
    def tiny_example_kwargs(cls) -> dict[str, Any]:
        config = PLIPConfig.tiny()
        config.vision.layers = (1, 1, 2, 1)  # two layer3 blocks: the branches copy layer3[1:]
        return {"num_classes": 5, "backbone": config.validate(), "image_size": (96, 32), "feat_dim": 16,
                "input_size": (96, 32)}

    @property
    def embed_dim(self) -> int:
        """Size of the retrieval feature (8 x 256 = 2048 by default)."""
        return self.num_parts * self.feat_dim

    def init_args(self) -> dict[str, Any]:
        """Constructor arguments besides the backbone (for :func:`plip.downstream.save_model`)."""
        return {"num_classes": self.num_classes, "image_size": list(self.image_size), "feat_dim": self.feat_dim,
                "parts": list(self.parts), "pool": self.pool}

    def _pool(self, x: torch.Tensor, rows: int) -> torch.Tensor:
        pool = F.adaptive_max_pool2d if self.pool == "max" else F.adaptive_avg_pool2d
        return pool(x, (rows, 1))

    def forward(self, images: torch.Tensor) -> MGNOutput | torch.Tensor:
        """Training: :class:`MGNOutput`; eval: the concatenated ``(B, embed_dim)`` feature."""
        shared = self.backbone(images)
        maps = [branch(shared) for branch in self.branches]
        pooled = [self._pool(m, 1) for m in maps]  # global features, (B, C, 1, 1)
        for m, rows in zip(maps[1:], self.parts):
            stripes = self._pool(m, rows)
            pooled.extend(stripes[:, :, i : i + 1] for i in range(rows))
        feats = [reduce(z).flatten(1) for reduce, z in zip(self.reductions, pooled)]
        features = torch.cat(feats, dim=1)
        if not self.training:
            return features
        logits = tuple(fc(f) for fc, f in zip(self.classifiers, feats))
        return MGNOutput(global_feats=tuple(feats[: len(self.branches)]), logits=logits, features=features)


class MGNLoss(nn.Module):
    """``id_weight * mean_8(CE) + triplet_weight * mean_3(triplet)`` (MGN-pytorch averaging).

    Args:
        margin: triplet margin (1.2 as in the paper; ``None``: soft margin).
        epsilon: label smoothing of the ID loss (0: plain softmax cross-entropy, as in MGN).
    """

    def __init__(
        self, *, margin: float | None = 1.2, epsilon: float = 0.0, id_weight: float = 1.0, triplet_weight: float = 1.0
    ) -> None:
        super().__init__()
        self.id_loss = CrossEntropyLabelSmooth(epsilon)
        self.triplet = TripletLoss(margin)
        self.id_weight, self.triplet_weight = id_weight, triplet_weight

    def forward(self, output: MGNOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        id_term = torch.stack([self.id_loss(logit, labels) for logit in output.logits]).mean()
        triplet_term = torch.stack([self.triplet(f, labels) for f in output.global_feats]).mean()
        total = self.id_weight * id_term + self.triplet_weight * triplet_term
        return {"loss": total, "id": id_term, "triplet": triplet_term}
