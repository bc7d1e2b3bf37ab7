"""Pedestrian attribute recognition: the "Rethink" strong baseline (Jia et al., 2020).

backbone -> global average pooling -> Linear(C, A) -> BatchNorm1d(A) -> one logit per
attribute, trained with the weighted BCE of :class:`~plip.downstream.losses.WeightedBCELoss`
(weights from each attribute's positive ratio in the training set).

>>> model = AttributeRecognizer.from_pretrained("plip-rn50", attribute_names=PA100K_NAMES)
>>> criterion = WeightedBCELoss(positive_ratio(train_labels))
>>> loss = criterion(model(images), labels)
>>> model.predict_attributes(["person.jpg"])       # [{"Female": 0.93, "Hat": 0.02, ...}]
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ..errors import ConfigError, ImageLoadError, PlipError
from ..models.config import PLIPConfig
from ..inference.batching import iter_image_batches
from ..utils.modes import eval_mode
from .backbone import PLIPBackbone, resolve_backbone
from .base import DownstreamModel, register_downstream

__all__ = ["AttributeRecognizer"]


@register_downstream("attribute_recognizer")
class AttributeRecognizer(DownstreamModel):
    """Backbone + GAP + linear classifier with BN, one logit per attribute.

    Args:
        attribute_names: the attributes' names (their order is the logits' order), or a count
            (names become ``attribute_0`` ...).
        backbone: a PLIP model name / path / config (see :func:`plip.backbone`) or a prebuilt
            :class:`~plip.downstream.PLIPBackbone`.
        pretrained: load the backbone's weights (strictly; ``self.backbone.load_report``).
        last_stride: 2 (the strong baseline's plain ResNet-50) or 1.
        image_size: input ``(H, W)``; default the backbone's (256x128). The Rethink
            baseline uses 256x192.
        classifier_bn: BatchNorm1d after the linear layer (the 2020 paper's baseline; its
            later configs turn it off).
    """

    def __init__(
        self,
        attribute_names: Sequence[str] | int,
        backbone: Any = "plip-rn50",
        pretrained: bool = True,
        *,
        last_stride: int = 2,
        image_size: Sequence[int] | None = None,
        classifier_bn: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(attribute_names, int):
            attribute_names = [f"attribute_{i}" for i in range(attribute_names)]
        names = [str(n) for n in attribute_names]
        if not names:
            raise ConfigError("AttributeRecognizer: at least one attribute is needed")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"AttributeRecognizer: duplicate attribute names {duplicates}")
        self.attribute_names = names
        self.backbone: PLIPBackbone = resolve_backbone(
            backbone, pretrained, last_stride=last_stride, image_size=image_size, where="AttributeRecognizer"
        )
        channels = self.backbone.num_features
        self.classifier_bn = classifier_bn
        layers: list[nn.Module] = [nn.Linear(channels, len(names))]
        if classifier_bn:
            layers.append(nn.BatchNorm1d(len(names)))
        self.classifier = nn.Sequential(*layers)

    @classmethod
    def from_pretrained(
        cls, name_or_path: Any = "plip-rn50", *, attribute_names: Sequence[str] | int, **kwargs: Any
    ) -> "AttributeRecognizer":
        """The strong baseline on the pretrained PLIP image encoder ``name_or_path`` (new classifier)."""
        return cls(attribute_names, backbone=name_or_path, pretrained=True, **kwargs)

    @classmethod
    def tiny_example_kwargs(cls) -> dict[str, Any]:
        return {"attribute_names": ["female", "backpack", "hat"], "backbone": PLIPConfig.tiny(),
                "input_size": (64, 32)}

    @property
    def num_attributes(self) -> int:
        return len(self.attribute_names)

    def init_args(self) -> dict[str, Any]:
        """Constructor arguments besides the backbone (for :func:`plip.downstream.save_model`)."""
        return {"attribute_names": list(self.attribute_names), "last_stride": self.backbone.config.last_stride,
                "image_size": list(self.backbone.image_size), "classifier_bn": self.classifier_bn}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Attribute logits ``(B, num_attributes)`` (apply a sigmoid for probabilities)."""
        feat = self.backbone.forward_features(images).mean(dim=(2, 3))
        return self.classifier(feat)

    @torch.inference_mode()
    def predict_attributes(
        self, images: Any, names: Sequence[str] | None = None, *, batch_size: int = 64
    ) -> list[dict[str, float]]:
        """Attribute probabilities of each image, as ``[{name: probability}, ...]`` in input order.

        Args:
            images: paths, PIL images, uint8 arrays (preprocessed as PLIP does: bicubic resize
                to the model's input size, SYNTH-PEDES mean/std), or a preprocessed tensor
                ``(N, 3, H, W)``.
            names: attributes to report (default: all, in the model's order).
            batch_size: images per forward pass.
        """
        if batch_size < 1:
            raise PlipError(f"batch_size must be >= 1, got {batch_size}")
        names = list(self.attribute_names if names is None else names)
        unknown = [n for n in names if n not in self.attribute_names]
        if unknown:
            raise ConfigError(f"unknown attribute names {unknown}; the model has {self.attribute_names}")
        columns = [self.attribute_names.index(n) for n in names]
        param = next(self.parameters())
        probabilities = []
        with eval_mode(self):
            for items in iter_image_batches(
                images, preprocess=self.backbone.preprocess, image_size=self.backbone.image_size, batch_size=batch_size
            ):
                batch = torch.stack([_checked(t, error) for _, t, error in items])
                logits = self(batch.to(device=param.device, dtype=param.dtype))
                probabilities.append(torch.sigmoid(logits.float())[:, columns].cpu())
        if not probabilities:
            return []
        table = torch.cat(probabilities).tolist()
        return [dict(zip(names, row)) for row in table]


def _checked(tensor: torch.Tensor | None, error: str) -> torch.Tensor:
    if tensor is None:
        raise ImageLoadError(error)
    return tensor
