"""Evaluating the downstream models on their benchmarks.

* :func:`evaluate_reid_model`: features of the query and gallery images (model in eval
  mode: BoT's after-BN feature, MGN's concatenated feature), optionally averaged with the
  horizontally flipped image, L2-normalised (BoT's ``FEAT_NORM``), then CMC / mAP / mINP
  under the Market-1501 protocol (:func:`plip.evaluation.reid_metrics.evaluate_reid`).
* :func:`evaluate_attribute_model`: sigmoid probabilities on a split, then label-based mA
  and instance-based accuracy / precision / recall / F1 as the strong-baseline PAR code
  computes them (:func:`plip.evaluation.attribute_metrics.evaluate_attributes`).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ..data.attributes import AttributeDataset
from ..data.image_reid import ImageReIDSplit, ReIDImage
from ..models.config import PreprocessConfig
from ..utils.modes import eval_mode
from .data import AttributeImageDataset, ReIDImageDataset, eval_transform

__all__ = ["extract_reid_features", "evaluate_reid_model", "predict_attribute_probs", "evaluate_attribute_model"]


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _preprocess_of(model: nn.Module) -> PreprocessConfig:
    backbone = getattr(model, "backbone", None)
    config = getattr(model, "preprocess_config", None) or getattr(backbone, "preprocess_config", None)
    if config is None:
        raise ValueError(f"{type(model).__name__} carries no preprocess_config; pass preprocess=")
    return config


@torch.no_grad()
def extract_reid_features(
    model: nn.Module,
    items: Sequence[ReIDImage],
    *,
    batch_size: int = 128,
    num_workers: int = 0,
    flip: bool = False,
    normalize: bool = True,
    preprocess: PreprocessConfig | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(features, pids, camids)`` of ``items`` (features float32 on CPU, in input order)."""
    transform = eval_transform(preprocess or _preprocess_of(model))
    loader = DataLoader(ReIDImageDataset(items, transform), batch_size=batch_size, num_workers=num_workers)
    device = _device_of(model)
    feats, pids, camids = [], [], []
    with eval_mode(model):
        for batch in loader:
            images = batch["images"].to(device, non_blocking=True)
            out = model(images).float()
            if flip:
                out = out + model(images.flip(dims=[3])).float()
            feats.append((F.normalize(out, dim=1) if normalize else out).cpu())
            pids.append(batch["pids"])
            camids.append(batch["camids"])
    if not feats:
        return torch.empty(0, 0), torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long)
    return torch.cat(feats), torch.cat(pids), torch.cat(camids)


def evaluate_reid_model(
    model: nn.Module,
    split: ImageReIDSplit,
    *,
    batch_size: int = 128,
    num_workers: int = 0,
    flip: bool = False,
    normalize: bool = True,
    metric: str = "euclidean",
) -> dict[str, float]:
    """Rank-1/5/10, mAP and mINP (fractions) of ``model`` on ``split``'s query and gallery."""
    from ..evaluation.reid_metrics import evaluate_reid

    kwargs: dict[str, Any] = dict(batch_size=batch_size, num_workers=num_workers, flip=flip, normalize=normalize)
    q, q_pids, q_cams = extract_reid_features(model, split.query, **kwargs)
    g, g_pids, g_cams = extract_reid_features(model, split.gallery, **kwargs)
    result = evaluate_reid(q, q_pids, q_cams, g, g_pids, g_cams, metric=metric)
    return {key: float(result[key]) for key in ("mAP", "rank1", "rank5", "rank10", "mINP")}


@torch.no_grad()
def predict_attribute_probs(
    model: nn.Module, paths: Sequence, *, batch_size: int = 128, num_workers: int = 0
) -> torch.Tensor:
    """Sigmoid probabilities ``(N, A)`` of the images at ``paths`` (float32, CPU)."""
    transform = eval_transform(_preprocess_of(model))
    labels = torch.zeros(len(paths), 0)
    loader = DataLoader(AttributeImageDataset(paths, labels.numpy(), transform), batch_size=batch_size,
                        num_workers=num_workers)
    device = _device_of(model)
    probs = []
    with eval_mode(model):
        for batch in loader:
            probs.append(torch.sigmoid(model(batch["images"].to(device, non_blocking=True)).float()).cpu())
    return torch.cat(probs) if probs else torch.empty(0, 0)


def evaluate_attribute_model(
    model: nn.Module,
    dataset: AttributeDataset,
    split: str = "test",
    *,
    batch_size: int = 128,
    num_workers: int = 0,
    threshold: float = 0.5,
) -> dict[str, float]:
    """mA, accuracy, precision, recall and F1 (fractions) of ``model`` on ``dataset[split]``."""
    from ..evaluation.attribute_metrics import evaluate_attributes

    paths, labels = dataset.split(split)
    probs = predict_attribute_probs(model, paths, batch_size=batch_size, num_workers=num_workers)
    result = evaluate_attributes(probs.numpy(), labels, threshold=threshold)
    return {key: float(result[key]) for key in ("mA", "accuracy", "precision", "recall", "f1")}
