"""Chance-level retrieval metrics.

Reference: the definition of an expectation over a uniformly random ranking, computed by
enumerating every permutation of small galleries and scoring each with the project's own
metrics (:func:`plip.evaluation.retrieval_metrics.retrieval_metrics`).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from plip.evaluation.chance import chance_average_precision, chance_recall_at_k, chance_retrieval_metrics
from plip.evaluation.retrieval_metrics import retrieval_metrics


def exhaustive(gallery_ids: list[int], query_id: int, ks=(1, 2, 3, 5)) -> dict[str, float]:
    """Mean metrics of one query over all orderings of the gallery (scores = -position)."""
    n = len(gallery_ids)
    perms = np.array(list(itertools.permutations(range(n))))
    scores = -perms.astype(np.float32)  # item j is at position perms[q, j]
    result = retrieval_metrics(scores, np.full(len(perms), query_id), np.array(gallery_ids), ks=ks)
    return {**{f"R@{k}": result.recall[k] for k in ks}, "mAP": result.mAP}


@pytest.mark.parametrize("gallery_ids", [[1, 2, 3, 4, 5, 6], [1, 1, 2, 3, 4, 5], [1, 1, 1, 2, 2, 3, 4], [1]])
def test_closed_forms_equal_the_mean_over_all_permutations(gallery_ids):
    n = len(gallery_ids)
    ks = (1, 2, 3, 5)
    reference = exhaustive(gallery_ids, 1, ks)
    p = gallery_ids.count(1)
    for k in ks:
        assert 100 * chance_recall_at_k(p, n, k) == pytest.approx(reference[f"R@{k}"], abs=1e-9)
    assert 100 * chance_average_precision(p, n) == pytest.approx(reference["mAP"], abs=1e-9)


def test_known_values_and_averaging():
    """R@1 = P/N; AP with one match = H_N/N; all matches = 1. Averages follow the metrics:
    R@K over all queries, mAP over matched ones (unmatched='exclude') or all ('zero')."""
    assert chance_recall_at_k(3, 10, 1) == pytest.approx(0.3)
    assert chance_recall_at_k(3, 10, 8) == 1.0
    assert chance_average_precision(1, 4) == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4) / 4)
    assert chance_average_precision(5, 5) == pytest.approx(1.0)
    gallery = [1, 1, 2, 3]
    out = chance_retrieval_metrics([1, 2, 9], gallery, ks=(1,))
    assert out["R@1"] == pytest.approx(100 * (2 / 4 + 1 / 4 + 0) / 3)
    ap = [chance_average_precision(2, 4), chance_average_precision(1, 4)]
    assert out["mAP"] == pytest.approx(100 * np.mean(ap))
    zero = chance_retrieval_metrics([1, 2, 9], gallery, ks=(1,), unmatched="zero")
    assert zero["mAP"] == pytest.approx(100 * sum(ap) / 3)
    assert math.isnan(chance_average_precision(0, 4))
    with pytest.raises(ValueError):
        chance_recall_at_k(5, 4, 1)
