"""Pedestrian attribute recognition metrics, as the strong-baseline PAR code computes them.

Source: ``get_pedestrian_metrics`` in ``metrics/pedestrian_metrics.py`` of
valencebond/Rethinking_of_PAR ("Rethinking of Pedestrian Attribute Recognition: A
Reliable Evaluation under Zero-Shot Pedestrian Identity Setting"), the code behind the
"Rethink" baseline numbers PLIP reports. With ``pred = probs > threshold`` (strict) and
``eps = 1e-20``:

Label-based, per attribute (column):
    ``pos_recall = TP / (P + eps)``, ``neg_recall = TN / (N + eps)``,
    ``label_mA = (pos_recall + neg_recall) / 2``, ``mA = mean(label_mA)``;
    also ``label_prec = TP / (TP + FP + eps)``, ``label_acc = TP / (TP + FP + FN + eps)``,
    ``label_f1 = 2 * prec * pos_recall / (prec + pos_recall + eps)``.

Instance-based, per image (row), then averaged over images:
    ``acc = |gt & pred| / (|gt | pred| + eps)``, ``prec = |gt & pred| / (|pred| + eps)``,
    ``recall = |gt & pred| / (|gt| + eps)``;
    ``instance_f1 = 2 * mean(prec) * mean(recall) / (mean(prec) + mean(recall) + eps)``:
    the F1 of the **mean** precision and **mean** recall, not the mean of per-image F1s.

So an attribute with no positive image gets ``pos_recall = 0`` and an image with no
positive label and no positive prediction gets accuracy, precision and recall 0, as in
the reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import DataError

__all__ = ["pedestrian_metrics", "evaluate_attributes", "EPS"]

EPS = 1e-20


def _as_array(name: str, values: Any) -> np.ndarray:
    if hasattr(values, "detach"):  # torch tensor
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != 2:
        raise DataError(f"{name} must be (num_images, num_attributes), got shape {array.shape}")
    return array


def pedestrian_metrics(gt_label: Any, pred_label: Any) -> dict[str, Any]:
    """Label- and instance-based metrics of binary predictions (see the module docstring).

    Args:
        gt_label: (num_images, num_attributes) ground truth in {0, 1}.
        pred_label: same shape, predictions in {0, 1} (or booleans).

    Returns:
        ``mA``, ``instance_acc``, ``instance_prec``, ``instance_recall``, ``instance_f1``
        (floats) and per-attribute arrays ``label_mA``, ``label_pos_recall``,
        ``label_neg_recall``, ``label_prec``, ``label_acc``, ``label_f1``, plus
        ``error_num``, ``fn_num``, ``fp_num`` (per-attribute error counts).
    """
    gt = _as_array("labels", gt_label)
    pred = _as_array("predictions", pred_label)
    if gt.shape != pred.shape:
        raise DataError(f"labels have shape {gt.shape} but predictions have shape {pred.shape}")
    if gt.shape[0] == 0:
        raise DataError("no images to evaluate")
    for name, array in (("labels", gt), ("predictions", pred)):
        bad = np.argwhere((array != 0) & (array != 1))
        if bad.size:
            row, col = bad[0]
            raise DataError(f"{name}[{row}, {col}] = {array[row, col].item()!r}; expected 0 or 1")
    gt_pos = gt == 1
    pred_pos = pred == 1

    # label-based
    positives = gt_pos.sum(axis=0).astype(float)  # TP + FN
    negatives = (~gt_pos).sum(axis=0).astype(float)  # TN + FP
    true_pos = (gt_pos & pred_pos).sum(axis=0).astype(float)
    true_neg = (~gt_pos & ~pred_pos).sum(axis=0).astype(float)
    false_pos = (~gt_pos & pred_pos).sum(axis=0).astype(float)
    false_neg = (gt_pos & ~pred_pos).sum(axis=0).astype(float)
    pos_recall = true_pos / (positives + EPS)
    neg_recall = true_neg / (negatives + EPS)
    label_ma = (pos_recall + neg_recall) / 2
    label_prec = true_pos / (true_pos + false_pos + EPS)
    label_f1 = 2 * label_prec * pos_recall / (label_prec + pos_recall + EPS)

    # instance-based
    inst_gt = gt_pos.sum(axis=1).astype(float)
    inst_pred = pred_pos.sum(axis=1).astype(float)
    intersection = (gt_pos & pred_pos).sum(axis=1).astype(float)
    union = (gt_pos | pred_pos).sum(axis=1).astype(float)
    instance_acc = float(np.mean(intersection / (union + EPS)))
    instance_prec = float(np.mean(intersection / (inst_pred + EPS)))
    instance_recall = float(np.mean(intersection / (inst_gt + EPS)))
    instance_f1 = 2 * instance_prec * instance_recall / (instance_prec + instance_recall + EPS)

    return {
        "mA": float(np.mean(label_ma)),
        "instance_acc": instance_acc,
        "instance_prec": instance_prec,
        "instance_recall": instance_recall,
        "instance_f1": float(instance_f1),
        "label_mA": label_ma,
        "label_pos_recall": pos_recall,
        "label_neg_recall": neg_recall,
        "label_prec": label_prec,
        "label_acc": true_pos / (true_pos + false_pos + false_neg + EPS),
        "label_f1": label_f1,
        "error_num": false_pos + false_neg,
        "fn_num": false_neg,
        "fp_num": false_pos,
    }


def evaluate_attributes(
    probs: Any,
    labels: Any,
    threshold: float = 0.5,
    attribute_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Evaluate attribute probabilities against binary labels.

    Args:
        probs: (num_images, num_attributes) probabilities (after the sigmoid).
        labels: same shape, ground truth in {0, 1}.
        threshold: an attribute is predicted present when ``prob > threshold``.
        attribute_names: optional column names; adds ``per_attribute_mA`` (name -> mA).

    Returns:
        ``mA``, ``accuracy``, ``precision``, ``recall``, ``f1`` (instance-based), the
        ``threshold``, ``num_images``, and ``per_attribute_mA`` (a list, or a dict when
        names are given). All metrics are fractions in [0, 1].
    """
    scores = _as_array("probs", probs).astype(np.float64)
    if np.isnan(scores).any():
        raise DataError("probs contain NaN")
    gt = _as_array("labels", labels)
    if scores.shape != gt.shape:
        raise DataError(f"probs have shape {scores.shape} but labels have shape {gt.shape}")
    if attribute_names is not None and len(attribute_names) != gt.shape[1]:
        raise DataError(f"{len(attribute_names)} attribute names for {gt.shape[1]} label columns")
    result = pedestrian_metrics(gt, scores > threshold)
    label_ma = result["label_mA"].tolist()
    return {
        "mA": result["mA"],
        "accuracy": result["instance_acc"],
        "precision": result["instance_prec"],
        "recall": result["instance_recall"],
        "f1": result["instance_f1"],
        "threshold": float(threshold),
        "num_images": int(gt.shape[0]),
        "per_attribute_mA": (
            dict(zip(attribute_names, label_ma, strict=True))
            if attribute_names is not None
            else label_ma
        ),
    }
