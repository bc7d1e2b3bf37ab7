"""Person re-identification metrics: CMC, mAP and mINP under the Market-1501 protocol.

For each query the gallery is ranked by increasing distance; gallery entries with the
query's identity **and** camera are removed (they would be trivial matches); the
remaining entries with the query's identity are the correct matches. A query without
any correct match left is skipped (it cannot be scored) and counted in
``num_skipped_queries``. Over the scored queries:

- CMC@k: the fraction whose first correct match is within the top k.
- mAP: the mean over queries of average precision, ``AP = (1/R) * sum_j j / rank_j``
  where ``rank_j`` is the 1-based rank of the j-th of the R correct matches.
- mINP: the mean of the inverse negative penalty ``INP = R / rank_R`` (Ye et al., "Deep
  Learning for Person Re-identification: A Survey and Outlook", TPAMI 2021), which
  scores how far down the hardest correct match lies.

These are the definitions of ``eval_market1501`` in torchreid and fast-reid
(``torchreid/metrics/rank.py``, ``fastreid/evaluation/rank.py``), which loop over
queries in Python; here queries are processed in chunks, so memory is bounded by
``chunk_size x num_gallery`` whatever the number of queries. Only the ranks of the
gallery entries sharing the query's identity are needed: the shared ranking core
(:mod:`plip.evaluation.ranking`, the compiled kernel for float32 distances on the CPU,
torch for float64 or GPU distances) counts them without sorting the gallery.

Ties in distance are broken by gallery index (``ties="stable"``, the default: a stable
sort): of two gallery entries at the same distance, the one listed first ranks first.
``ties="pessimistic"`` / ``"optimistic"`` rank every tied entry before / after a correct
match instead. torchreid's ``np.argsort`` (quicksort) leaves the order of ties unspecified.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .ranking import Positives, check_ties, hit_ranks, resolve_backend

__all__ = ["compute_rank_metrics", "evaluate_reid", "pairwise_distance"]

# Elements of one (queries x gallery) block; a few tensors of this size are alive at once.
_DEFAULT_BLOCK_ELEMENTS = 1 << 22


def _as_long(name: str, values: Any) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(values) if not torch.is_tensor(values) else values)
    if tensor.dim() != 1:
        raise DataError(f"{name} must be one-dimensional, got shape {tuple(tensor.shape)}")
    if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise DataError(f"{name} must hold integer ids, got dtype {tensor.dtype}")
    return tensor.to(device="cpu", dtype=torch.long)


def _check_ids(
    q_pids: Any, q_camids: Any, g_pids: Any, g_camids: Any, num_q: int, num_g: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    ids = (
        _as_long("query_pids", q_pids),
        _as_long("query_camids", q_camids),
        _as_long("gallery_pids", g_pids),
        _as_long("gallery_camids", g_camids),
    )
    names = ("query_pids", "query_camids", "gallery_pids", "gallery_camids")
    for name, tensor, expected in zip(names, ids, (num_q, num_q, num_g, num_g), strict=True):
        if tensor.numel() != expected:
            raise DataError(f"{name} has {tensor.numel()} entries, expected {expected}")
    if num_q == 0 or num_g == 0:
        raise DataError(f"need at least one query and one gallery item, got {num_q} and {num_g}")
    return ids


def _as_sortable(dist: torch.Tensor) -> torch.Tensor:
    """float32/float64 distances (exactly: half precision and integers upcast), no NaN."""
    dist = dist.detach()
    if dist.dtype not in (torch.float32, torch.float64):
        dist = dist.to(torch.float64 if not dist.is_floating_point() else torch.float32)
    if torch.isnan(dist).any():
        raise DataError("the distances contain NaN")
    return dist


def _scores_for_ranking(dist: torch.Tensor) -> tuple[np.ndarray | torch.Tensor, str]:
    """``-dist`` (higher = closer) and the backend ranking it: float32 on the CPU goes to
    the compiled kernel; float64 (compared exactly) and GPU distances stay in torch."""
    if dist.device.type == "cpu" and dist.dtype == torch.float32:
        return np.negative(dist.contiguous().numpy()), resolve_backend(None, "auto")
    return -dist, "torch"


class _RankAccumulator:
    """Sums the per-query statistics of successive blocks of queries."""

    def __init__(self, q_pids: torch.Tensor, q_camids: torch.Tensor, g_pids: torch.Tensor,
                 g_camids: torch.Tensor, max_rank: int, ties: str):
        self.positives = Positives(q_pids.numpy(), g_pids.numpy())
        self.q_camids = q_camids.numpy()
        self.g_camids = g_camids.numpy()
        self.max_rank = max_rank
        self.ties = check_ties(ties)
        self.first_hit_hist = np.zeros(max_rank, dtype=np.float64)
        self.ap_sum = 0.0
        self.inp_sum = 0.0
        self.num_valid = 0
        self.num_queries = 0

    def add(self, dist: torch.Tensor, rows: slice) -> None:
        """Score one block of queries: ``dist`` is (q, G) for queries ``rows``, on any device."""
        self.num_queries += dist.shape[0]
        scores, backend = _scores_for_ranking(_as_sortable(dist))
        # Every metric depends only on the ranks of the gallery entries with the query's
        # identity, and they are few: rank those instead of ordering the whole gallery.
        pos_idx, valid = self.positives.block(rows)
        if not valid.any():
            return
        rank, cols = hit_ranks(scores, pos_idx, valid, ties=self.ties, backend=backend,
                               first_row=rows.start, return_columns=True)
        # entries of the query's camera are removed: the ones after them move up
        removed = valid & (self.g_camids[np.maximum(cols, 0)] == self.q_camids[rows][:, None])
        kept = valid & ~removed
        hit_rank = rank - 1 - (np.cumsum(removed, axis=1) - removed)  # 0-based among the kept
        num_rel = kept.sum(axis=1)
        scored = num_rel > 0
        if not scored.any():
            return
        kept, hit_rank, num_rel = kept[scored], hit_rank[scored], num_rel[scored]
        hit_index = np.cumsum(kept, axis=1)  # 1-based j of each kept entry
        precision = np.where(kept, hit_index / np.where(kept, hit_rank + 1, 1).astype(np.float64), 0.0)
        ap = precision.sum(axis=1) / num_rel
        rows_i = np.arange(len(num_rel))
        first_rank = hit_rank[rows_i, np.argmax(kept, axis=1)]
        last_rank = hit_rank[rows_i, kept.shape[1] - 1 - np.argmax(kept[:, ::-1], axis=1)]
        inp = num_rel / (last_rank + 1.0)
        self.ap_sum += float(ap.sum())
        self.inp_sum += float(inp.sum())
        self.num_valid += int(len(num_rel))
        first_rank = first_rank[first_rank < self.max_rank]
        self.first_hit_hist += np.bincount(first_rank, minlength=self.max_rank)

    def result(self, ranks: Sequence[int]) -> dict[str, Any]:
        if self.num_valid == 0:
            raise DataError(
                "no query identity appears in the gallery (after removing same-camera "
                "images of the same person): the metrics are undefined"
            )
        cmc = (np.cumsum(self.first_hit_hist) / self.num_valid).tolist()
        out: dict[str, Any] = {f"rank{k}": cmc[min(k, self.max_rank) - 1] for k in ranks}
        out.update(
            mAP=self.ap_sum / self.num_valid,
            mINP=self.inp_sum / self.num_valid,
            cmc=cmc,
            num_queries=self.num_queries,
            num_valid_queries=self.num_valid,
            num_skipped_queries=self.num_queries - self.num_valid,
        )
        return out


def _check_ranks(ranks: Sequence[int], max_rank: int) -> int:
    if max_rank < 1:
        raise DataError(f"max_rank must be at least 1, got {max_rank}")
    for k in ranks:
        if k < 1:
            raise DataError(f"CMC ranks must be at least 1, got {k}")
    return max(max_rank, *ranks) if ranks else max_rank


def _chunk_size(chunk_size: int | None, num_g: int) -> int:
    if chunk_size is None:
        return max(1, _DEFAULT_BLOCK_ELEMENTS // max(num_g, 1))
    if chunk_size < 1:
        raise DataError(f"chunk_size must be at least 1, got {chunk_size}")
    return chunk_size


def compute_rank_metrics(
    distmat: Any,
    query_pids: Any,
    gallery_pids: Any,
    query_camids: Any,
    gallery_camids: Any,
    *,
    max_rank: int = 50,
    ranks: Sequence[int] = (1, 5, 10),
    chunk_size: int | None = None,
    ties: str = "stable",
) -> dict[str, Any]:
    """CMC, mAP and mINP from a (num_query, num_gallery) distance matrix (smaller = closer).

    The argument order follows torchreid's ``evaluate_rank(distmat, q_pids, g_pids,
    q_camids, g_camids)``. ``ties``: how equal distances rank (module docstring).

    Returns:
        A dict with ``rank{k}`` for each k of ``ranks``, ``mAP``, ``mINP`` (fractions in
        [0, 1]), ``cmc`` (list of ``max(max_rank, *ranks)`` values), ``num_queries``,
        ``num_valid_queries`` and ``num_skipped_queries``.

    Raises:
        DataError: shapes disagree, or no query has a correct match in the gallery.
    """
    dist = torch.as_tensor(distmat) if not torch.is_tensor(distmat) else distmat
    if dist.dim() != 2:
        raise DataError(f"distmat must be (num_query, num_gallery), got shape {tuple(dist.shape)}")
    num_q, num_g = dist.shape
    q_pids, q_camids, g_pids, g_camids = _check_ids(
        query_pids, query_camids, gallery_pids, gallery_camids, num_q, num_g
    )
    acc = _RankAccumulator(q_pids, q_camids, g_pids, g_camids, _check_ranks(ranks, max_rank), ties)
    step = _chunk_size(chunk_size, num_g)
    for start in range(0, num_q, step):
        acc.add(dist[start : start + step], slice(start, min(start + step, num_q)))
    return acc.result(ranks)


def pairwise_distance(
    query: torch.Tensor, gallery: torch.Tensor, metric: str = "euclidean"
) -> torch.Tensor:
    """Distances between rows of ``query`` (q, D) and ``gallery`` (G, D).

    ``"euclidean"``: squared Euclidean distance (same ranking as the distance itself);
    ``"cosine"``: ``1 - cosine similarity``.
    """
    if metric == "euclidean":
        dist = (query * query).sum(1, keepdim=True) + (gallery * gallery).sum(1)[None, :]
        return dist.addmm_(query, gallery.t(), beta=1.0, alpha=-2.0)
    if metric == "cosine":
        q = torch.nn.functional.normalize(query, dim=1)
        g = torch.nn.functional.normalize(gallery, dim=1)
        return 1.0 - q @ g.t()
    raise DataError(f"unknown distance metric {metric!r}; choose 'euclidean' or 'cosine'")


def _as_features(name: str, feats: Any) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(feats) if not torch.is_tensor(feats) else feats)
    if tensor.dim() != 2:
        raise DataError(f"{name} must be (N, D), got shape {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        tensor = tensor.float()
    return tensor


def evaluate_reid(
    query_feats: Any,
    query_pids: Any,
    query_camids: Any,
    gallery_feats: Any,
    gallery_pids: Any,
    gallery_camids: Any,
    *,
    metric: str = "euclidean",
    max_rank: int = 50,
    ranks: Sequence[int] = (1, 5, 10),
    chunk_size: int | None = None,
    device: str | torch.device | None = None,
    ties: str = "stable",
) -> dict[str, Any]:
    """Evaluate ReID features under the Market-1501 protocol (see the module docstring).

    Distances are computed one block of queries at a time, so the full
    (num_query x num_gallery) matrix is never held in memory.

    Args:
        query_feats: (N, D) query features (a tensor or an array).
        gallery_feats: (M, D) gallery features.
        query_pids: integer person id per query.
        query_camids: integer camera id per query.
        gallery_pids: integer person id per gallery item.
        gallery_camids: integer camera id per gallery item.
        metric: ``"euclidean"`` (torchreid's default) or ``"cosine"``.
        max_rank: length of the returned CMC curve.
        ranks: the CMC ranks reported as ``rank{k}``.
        chunk_size: queries per block (default: about 4M distances per block).
        device: where distances and ranking run (default: the features' device).
        ties: how equal distances rank (module docstring; default ``"stable"``).

    Returns:
        ``rank1``, ``rank5``, ``rank10``, ``mAP``, ``mINP``, ``cmc``, ``num_queries``,
        ``num_valid_queries``, ``num_skipped_queries`` (metrics as fractions).
    """
    q = _as_features("query_feats", query_feats)
    g = _as_features("gallery_feats", gallery_feats)
    if q.shape[1] != g.shape[1]:
        raise DataError(
            f"query_feats have dimension {q.shape[1]} but gallery_feats have {g.shape[1]}"
        )
    dtype = torch.promote_types(q.dtype, g.dtype)
    target = torch.device(device) if device is not None else g.device
    q, g = q.to(target, dtype), g.to(target, dtype)
    num_q, num_g = q.shape[0], g.shape[0]
    q_pids, q_camids, g_pids, g_camids = _check_ids(
        query_pids, query_camids, gallery_pids, gallery_camids, num_q, num_g
    )
    if metric not in ("euclidean", "cosine"):
        raise DataError(f"unknown distance metric {metric!r}; choose 'euclidean' or 'cosine'")
    acc = _RankAccumulator(q_pids, q_camids, g_pids, g_camids, _check_ranks(ranks, max_rank), ties)
    step = _chunk_size(chunk_size, num_g)
    with torch.no_grad():
        for start in range(0, num_q, step):
            dist = pairwise_distance(q[start : start + step], g, metric)
            acc.add(dist, slice(start, min(start + step, num_q)))
    return acc.result(ranks)
