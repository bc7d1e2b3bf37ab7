"""Losses of the re-identification and attribute-recognition baselines.

* :class:`CrossEntropyLabelSmooth`: identity loss with label smoothing (Szegedy et al. 2016;
  BoT, Luo et al. 2019, eps 0.1): targets ``(1 - eps) * one_hot + eps / K``.
* :class:`TripletLoss`: batch-hard triplet loss (Hermans et al. 2017) on Euclidean distances,
  hinge with a margin (BoT 0.3, MGN 1.2) or soft margin ``log(1 + exp(d_ap - d_an))``.
* :class:`CenterLoss`: squared distance of each feature to its identity's learned centre
  (Wen et al. 2016), averaged over the batch as the BoT code does.
* :class:`WeightedBCELoss`: the "Rethink" PAR strong baseline's (Jia et al. 2020) weighted
  binary cross-entropy: positives weighted ``exp(1 - r)``, negatives ``exp(r)``, ``r`` the
  attribute's positive ratio in the training set; summed over attributes, averaged over images.

Distances and losses are computed in float32 whatever the autocast dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

__all__ = [
    "CrossEntropyLabelSmooth",
    "TripletLoss",
    "CenterLoss",
    "WeightedBCELoss",
    "euclidean_distance",
    "hard_example_mining",
    "positive_ratio",
]


class CrossEntropyLabelSmooth(nn.Module):
    """Cross-entropy against ``(1 - eps) * one_hot(y) + eps / K``, averaged over the batch."""

    def __init__(self, epsilon: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= epsilon < 1.0:
            raise ConfigError(f"label smoothing epsilon must be in [0, 1), got {epsilon!r}")
        self.epsilon = epsilon

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # torch's label_smoothing is exactly this target distribution
        return F.cross_entropy(logits.float(), targets, label_smoothing=self.epsilon)


def euclidean_distance(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Pairwise Euclidean distances ``(N, M)``, with ``sqrt(max(d^2, 1e-12))`` for a finite gradient."""
    x = x.float()
    y = x if y is None else y.float()
    squared = x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1).unsqueeze(0) - 2.0 * x @ y.t()
    return squared.clamp(min=1e-12).sqrt()


def hard_example_mining(dist: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each anchor: the farthest positive and the closest negative.

    Returns ``(dist_ap, dist_an, valid)``; ``valid`` is False for anchors without a negative
    in the batch (their ``dist_an`` is meaningless). The anchor itself counts as a positive
    (distance ~0), as in the reference implementations, so an identity with one image in the
    batch still contributes through its hardest negative.
    """
    same = labels.view(-1, 1) == labels.view(1, -1)
    dist_ap = dist.masked_fill(~same, float("-inf")).amax(dim=1)
    dist_an = dist.masked_fill(same, float("inf")).amin(dim=1)
    valid = (~same).any(dim=1)
    return dist_ap, dist_an, valid


class TripletLoss(nn.Module):
    """Batch-hard triplet loss.

    Args:
        margin: hinge margin ``mean(max(0, d_ap - d_an + margin))``; ``None`` or 0 uses the soft
            margin ``mean(log(1 + exp(d_ap - d_an)))``.
        normalize_feature: L2-normalise features first (off in BoT and MGN).
    """

    def __init__(self, margin: float | None = 0.3, normalize_feature: bool = False) -> None:
        super().__init__()
        if margin is not None and margin < 0:
            raise ConfigError(f"triplet margin must be >= 0 (or None for the soft margin), got {margin!r}")
        self.margin = margin or None
        self.normalize_feature = normalize_feature

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        features = features.float()
        if self.normalize_feature:
            features = F.normalize(features, dim=1)
        dist_ap, dist_an, valid = hard_example_mining(euclidean_distance(features), labels)
        if not bool(valid.any()):
            return features.sum() * 0.0  # a batch of one identity has no triplet
        diff = dist_ap[valid] - dist_an[valid]
        if self.margin is None:
            return F.softplus(diff).mean()
        return F.relu(diff + self.margin).mean()

    def extra_repr(self) -> str:
        return f"margin={self.margin if self.margin is not None else 'soft'}, normalize_feature={self.normalize_feature}"


class CenterLoss(nn.Module):
    """``mean_i ||f_i - c_{y_i}||^2`` with learned centres ``c`` (BoT weight 0.0005, centre lr 0.5)."""

    def __init__(self, num_classes: int, feat_dim: int) -> None:
        super().__init__()
        self.centers = nn.Parameter(torch.randn(num_classes, feat_dim))

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        diff = features.float() - self.centers.float()[labels]
        return diff.pow(2).sum(dim=1).clamp(min=1e-12, max=1e12).mean()


def positive_ratio(labels: torch.Tensor) -> torch.Tensor:
    """Fraction of positive labels per attribute over a training set ``(N, A)`` (labels > 0.5)."""
    labels = torch.as_tensor(labels)
    if labels.dim() != 2:
        raise ConfigError(f"attribute labels must be (images, attributes), got shape {tuple(labels.shape)}")
    return (labels > 0.5).float().mean(dim=0)


class WeightedBCELoss(nn.Module):
    """Weighted binary cross-entropy of the PAR strong baseline (``ratio2weight``).

    ``loss = sum_{i,j} w_ij * BCE(logit_ij, y_ij) / N`` with ``w_ij = exp(1 - r_j)`` for a
    positive label and ``exp(r_j)`` for a negative one. Labels outside {0, 1} (e.g. RAP's
    "uncertain" 2, or -1) are ignored. Without ``pos_ratio`` every weight is 1.

    Args:
        pos_ratio: ``(A,)`` positive ratio of each attribute in the training set
            (:func:`positive_ratio`).
    """

    def __init__(self, pos_ratio: torch.Tensor | None = None) -> None:
        super().__init__()
        if pos_ratio is not None:
            pos_ratio = torch.as_tensor(pos_ratio, dtype=torch.float32).flatten()
            if bool(((pos_ratio < 0) | (pos_ratio > 1)).any()):
                raise ConfigError("pos_ratio values must be fractions in [0, 1]")
        self.register_buffer("pos_ratio", pos_ratio, persistent=True)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits, targets = logits.float(), targets.float()
        if logits.shape != targets.shape:
            raise ConfigError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ in shape")
        known = (targets == 0) | (targets == 1)
        positive = (targets > 0.5).float()
        loss = F.binary_cross_entropy_with_logits(logits, targets.clamp(0, 1), reduction="none")
        weights = known.float()
        if self.pos_ratio is not None:
            if self.pos_ratio.numel() != logits.shape[1]:
                raise ConfigError(
                    f"pos_ratio has {self.pos_ratio.numel()} attributes, the logits {logits.shape[1]}"
                )
            ratio = self.pos_ratio.to(logits.device).view(1, -1)
            weights = weights * torch.exp(positive * (1 - ratio) + (1 - positive) * ratio)
        return (loss * weights).sum() / logits.shape[0]
