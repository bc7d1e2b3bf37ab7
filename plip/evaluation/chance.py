"""Chance level of retrieval metrics: what a uniformly random ranking scores on average.

For a query with ``P`` matching items in a gallery of ``N``, a random ranking is a uniformly
random permutation of the gallery, and the expected metrics have closed forms:

* **R@K**: the probability that at least one match is among the first ``K`` items,
  ``1 - C(N-P, K) / C(N, K)`` (so R@1 = ``P / N``).
* **AP** (the standard definition, ``(1/P) * sum_j j / r_j``): writing AP as a sum over pairs
  of matches and taking the expectation over the rank ``r`` of a match (uniform on 1..N)
  and over the other ``P - 1`` matches (each before rank ``r`` with probability
  ``(r-1)/(N-1)``) gives ``E[AP] = (H_N + (P-1)(N-H_N)/(N-1)) / N``, with ``H_N`` the
  ``N``-th harmonic number. ``P = 1`` gives ``H_N / N``; ``P = N`` gives 1.

The values are exact expectations (no sampling); :func:`chance_retrieval_metrics` averages
them over the queries exactly as :mod:`plip.evaluation.retrieval_metrics` averages the
model's scores, so the two can be compared line by line.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["chance_recall_at_k", "chance_average_precision", "chance_retrieval_metrics"]


def chance_recall_at_k(num_relevant: int, gallery_size: int, k: int) -> float:
    """Probability that a random ranking puts one of ``num_relevant`` matches in the top ``k``."""
    _check(num_relevant, gallery_size)
    if num_relevant == 0:
        return 0.0
    k = min(k, gallery_size)
    # C(N-P, K) / C(N, K) = prod_{i<K} (N-P-i) / (N-i); a zero factor ends it.
    miss = 1.0
    for i in range(k):
        miss *= max(gallery_size - num_relevant - i, 0) / (gallery_size - i)
        if miss == 0.0:
            break
    return 1.0 - miss


def chance_average_precision(num_relevant: int, gallery_size: int) -> float:
    """Expected average precision of a random ranking (see the module docstring)."""
    _check(num_relevant, gallery_size)
    if num_relevant == 0:
        return float("nan")
    harmonic = _harmonic(gallery_size)
    if gallery_size == 1:
        return 1.0
    return (harmonic + (num_relevant - 1) * (gallery_size - harmonic) / (gallery_size - 1)) / gallery_size


def chance_retrieval_metrics(
    query_ids: Sequence[int] | np.ndarray,
    gallery_ids: Sequence[int] | np.ndarray,
    ks: Sequence[int] = (1, 5, 10),
    unmatched: str = "exclude",
) -> dict[str, float]:
    """Chance-level ``R@K`` and ``mAP`` (percent) for these queries against this gallery.

    Averaged like :func:`plip.evaluation.retrieval_metrics.retrieval_metrics`: R@K over all
    queries (a query without any match scores 0), mAP over the queries with a match
    (``unmatched="exclude"``) or over all of them, counting 0 for the others
    (``unmatched="zero"``).
    """
    if unmatched not in ("exclude", "zero"):
        raise ValueError(f"unmatched must be 'exclude' or 'zero', got {unmatched!r}")
    query_ids = np.asarray(query_ids)
    gallery_ids = np.asarray(gallery_ids)
    n = int(gallery_ids.shape[0])
    if n == 0 or query_ids.shape[0] == 0:
        raise ValueError(f"need a non-empty gallery and query set, got {n} and {query_ids.shape[0]}")
    ids, counts = np.unique(gallery_ids, return_counts=True)
    per_id = dict(zip(ids.tolist(), counts.tolist()))
    relevant = np.array([per_id.get(q, 0) for q in query_ids.tolist()], dtype=np.int64)
    out: dict[str, float] = {}
    groups = np.unique(relevant)  # queries with the same number of matches score the same
    for k in ks:
        table = {int(p): chance_recall_at_k(int(p), n, int(k)) for p in groups}
        out[f"R@{k}"] = 100.0 * float(np.mean([table[int(p)] for p in relevant]))
    matched = relevant[relevant > 0]
    ap_table = {int(p): chance_average_precision(int(p), n) for p in groups if p > 0}
    ap = [ap_table[int(p)] for p in matched]
    if unmatched == "zero":
        ap += [0.0] * int((relevant == 0).sum())
    out["mAP"] = 100.0 * float(np.mean(ap)) if ap else float("nan")
    return out


def _harmonic(n: int) -> float:
    return float(np.sum(1.0 / np.arange(1, n + 1, dtype=np.float64)))


def _check(num_relevant: int, gallery_size: int) -> None:
    if gallery_size < 1 or not 0 <= num_relevant <= gallery_size:
        raise ValueError(f"need 0 <= num_relevant <= gallery_size and gallery_size >= 1, got {num_relevant}, {gallery_size}")
