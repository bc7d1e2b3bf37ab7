"""PAR metrics against hand-computed values.

Reference: ``get_pedestrian_metrics`` of valencebond/Rethinking_of_PAR
(``metrics/pedestrian_metrics.py``): strict threshold ``prob > 0.5``, eps = 1e-20,
instance F1 from the mean precision and mean recall.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from plip.errors import DataError
from plip.evaluation.attribute_metrics import evaluate_attributes, pedestrian_metrics

GT = np.array([[1, 0, 1],
               [0, 0, 1],
               [1, 1, 0],
               [0, 0, 0]])  # fmt: skip
PRED = np.array([[1, 1, 1],
                 [0, 1, 1],
                 [1, 1, 0],
                 [0, 0, 0]])  # fmt: skip


def test_hand_computed_label_and_instance_metrics():
    """Columns: (TP/P + TN/N)/2 = (2/2 + 2/2)/2, (1/1 + 1/3)/2, (2/2 + 2/2)/2.
    Rows (inter/union, inter/pred, inter/gt): (2/3, 2/3, 1), (1/2, 1/2, 1), (1, 1, 1),
    and the all-negative row scores 0 on each (0 / eps)."""
    r = pedestrian_metrics(GT, PRED)
    np.testing.assert_allclose(r["label_mA"], [1.0, 2 / 3, 1.0])
    assert r["mA"] == pytest.approx(8 / 9)
    np.testing.assert_allclose(r["label_pos_recall"], [1, 1, 1])
    np.testing.assert_allclose(r["label_neg_recall"], [1, 1 / 3, 1])
    np.testing.assert_allclose(r["label_prec"], [1, 1 / 3, 1])
    np.testing.assert_allclose(r["label_f1"], [1, 0.5, 1])
    np.testing.assert_array_equal(r["fp_num"], [0, 2, 0])
    precision = (2 / 3 + 1 / 2 + 1 + 0) / 4
    recall = (1 + 1 + 1 + 0) / 4
    assert r["instance_acc"] == pytest.approx(precision)  # same values here by construction
    assert r["instance_prec"] == pytest.approx(precision)
    assert r["instance_recall"] == pytest.approx(recall)
    # F1 of the means (0.629...), not the mean of per-image F1s ((0.8 + 2/3 + 1 + 0) / 4).
    assert r["instance_f1"] == pytest.approx(2 * precision * recall / (precision + recall))
    assert r["instance_f1"] != pytest.approx((0.8 + 2 / 3 + 1 + 0) / 4)


def test_attribute_without_positives_uses_reference_epsilon():
    """A column with no positive label: TP / (0 + eps) = 0, so its mA is (0 + 1) / 2."""
    gt = np.array([[0, 1], [0, 0]])
    pred = np.array([[0, 1], [0, 0]])
    r = pedestrian_metrics(gt, pred)
    np.testing.assert_allclose(r["label_mA"], [0.5, 1.0])


def test_evaluate_attributes_threshold_is_strict_and_names():
    probs = np.where(PRED == 1, 0.9, 0.1)
    probs[3, 2] = 0.5  # exactly at the threshold: predicted absent, as prob > 0.5 says
    r = evaluate_attributes(torch.tensor(probs), GT, attribute_names=["a", "b", "c"])
    assert r["mA"] == pytest.approx(8 / 9)
    assert r["per_attribute_mA"] == pytest.approx({"a": 1.0, "b": 2 / 3, "c": 1.0})
    assert r["num_images"] == 4 and r["threshold"] == 0.5
    r = evaluate_attributes(probs, GT, threshold=0.45)
    assert r["per_attribute_mA"][2] == pytest.approx((1 + 1 / 2) / 2)  # row 3 now a false positive


def test_validation():
    with pytest.raises(DataError, match="shape"):
        evaluate_attributes(np.zeros((4, 2)), GT)
    with pytest.raises(DataError, match=r"labels\[0, 0\] = 2"):
        pedestrian_metrics(np.full((1, 1), 2), np.zeros((1, 1)))
    with pytest.raises(DataError, match="attribute names"):
        evaluate_attributes(np.zeros((4, 3)), GT, attribute_names=["a"])


def _reference_get_pedestrian_metrics(gt_label, preds_probs, threshold=0.5):
    """The reference's formulas, column sums with ``(gt == 1) * (pred == 1)`` products."""
    pred_label = preds_probs > threshold
    eps = 1e-20
    gt_pos = np.sum(gt_label == 1, axis=0).astype(float)
    gt_neg = np.sum(gt_label == 0, axis=0).astype(float)
    true_pos = np.sum((gt_label == 1) * (pred_label == 1), axis=0).astype(float)
    true_neg = np.sum((gt_label == 0) * (pred_label == 0), axis=0).astype(float)
    ma = np.mean((true_pos / (gt_pos + eps) + true_neg / (gt_neg + eps)) / 2)
    gt_pos = np.sum(gt_label == 1, axis=1).astype(float)
    pred_pos = np.sum(pred_label == 1, axis=1).astype(float)
    inter = np.sum((gt_label == 1) * (pred_label == 1), axis=1).astype(float)
    union = np.sum((gt_label == 1) + (pred_label == 1), axis=1).astype(float)
    acc = np.mean(inter / (union + eps))
    prec = np.mean(inter / (pred_pos + eps))
    rec = np.mean(inter / (gt_pos + eps))
    return ma, acc, prec, rec, 2 * prec * rec / (prec + rec + eps)


@pytest.mark.parametrize("seed", range(3))
def test_matches_reference_formulas_on_random_data(seed):
    rng = np.random.default_rng(seed)
    gt = (rng.random((50, 7)) < 0.3).astype(np.int64)
    probs = rng.random((50, 7))
    probs[:5] = 0.2  # some images with no positive prediction
    gt[5:8] = 0  # and some with no positive label
    ma, acc, prec, rec, f1 = _reference_get_pedestrian_metrics(gt, probs)
    r = evaluate_attributes(probs, gt)
    assert (r["mA"], r["accuracy"], r["precision"], r["recall"], r["f1"]) == pytest.approx(
        (ma, acc, prec, rec, f1), abs=1e-12
    )
