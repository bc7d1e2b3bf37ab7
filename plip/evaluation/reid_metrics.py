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
queries in Python; here queries are processed in chunks with tensor operations, so
memory is bounded by ``chunk_size x num_gallery`` whatever the number of queries.
Only the ranks of the gallery entries sharing the query's identity are needed, so each
row is sorted by value only and those entries are located by binary search.

Ties in distance are broken by gallery index (a stable sort): of two gallery entries
at the same distance, the one listed first ranks first. torchreid's ``np.argsort``
(quicksort) leaves the order of ties unspecified.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import DataError

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


def _sorted_rows(dist: torch.Tensor) -> torch.Tensor:
    """Each row's values in increasing order (values only: no permutation needed)."""
    if dist.device.type == "cpu":
        # numpy's SIMD sort is several times faster than torch's on CPU.
        return torch.from_numpy(np.sort(dist.contiguous().numpy(), axis=1))
    return torch.sort(dist, dim=1).values


def _ranks_of(dist: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """0-based rank of gallery entry ``cols[i]`` in the ranking of query ``rows[i]``.

    The ranking is a stable sort by distance: entry e precedes entry j when
    ``d_e < d_j``, or ``d_e == d_j`` and e has the lower gallery index. So
    ``rank_j = #{e: d_e < d_j} + #{e: d_e == d_j, e < j}``: the first term is a binary
    search in the sorted row; the second is counted directly, only for the entries
    whose distance occurs more than once in their row.
    """
    num_q, num_g = dist.shape
    device = dist.device
    values = dist[rows, cols]
    counts = torch.bincount(rows, minlength=num_q)
    slot = torch.arange(rows.numel(), device=device) - (torch.cumsum(counts, 0) - counts)[rows]
    # Batched binary search: one row of thresholds per query, padded with +inf.
    thresholds = torch.full(
        (num_q, int(counts.max())), float("inf"), dtype=dist.dtype, device=device
    )
    thresholds[rows, slot] = values
    sorted_dist = _sorted_rows(dist)
    before = torch.searchsorted(sorted_dist, thresholds)[rows, slot]
    equal = torch.searchsorted(sorted_dist, thresholds, right=True)[rows, slot] - before
    del sorted_dist, thresholds
    tied = (equal > 1).nonzero(as_tuple=True)[0]
    if tied.numel():
        step = max(1, _DEFAULT_BLOCK_ELEMENTS // max(num_g, 1))
        gallery_index = torch.arange(num_g, device=device)
        for start in range(0, tied.numel(), step):
            which = tied[start : start + step]
            block = dist[rows[which]]  # (k, G)
            same = (block == values[which, None]) & (gallery_index < cols[which, None])
            before[which] += same.sum(1)
    return before


class _RankAccumulator:
    """Sums the per-query statistics of successive blocks of queries."""

    def __init__(self, g_pids: torch.Tensor, g_camids: torch.Tensor, max_rank: int):
        self.g_pids = g_pids
        self.g_camids = g_camids
        self.max_rank = max_rank
        self.first_hit_hist = torch.zeros(max_rank, dtype=torch.float64)
        self.ap_sum = 0.0
        self.inp_sum = 0.0
        self.num_valid = 0
        self.num_queries = 0

    def _gallery_ids(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if self.g_pids.device != device:
            self.g_pids, self.g_camids = self.g_pids.to(device), self.g_camids.to(device)
        return self.g_pids, self.g_camids

    def add(self, dist: torch.Tensor, q_pids: torch.Tensor, q_camids: torch.Tensor) -> None:
        """Score one block of queries: ``dist`` is (q, G), on any device."""
        num_q, num_g = dist.shape
        self.num_queries += num_q
        device = dist.device
        g_pids, g_camids = self._gallery_ids(device)
        q_pids, q_camids = q_pids.to(device), q_camids.to(device)
        dist = _as_sortable(dist)
        # Every metric depends only on the ranks of the gallery entries with the query's
        # identity, and they are few: rank those instead of ordering the whole gallery.
        rows, cols = (g_pids[None, :] == q_pids[:, None]).nonzero(as_tuple=True)
        if rows.numel() == 0:
            return
        rank = _ranks_of(dist, rows, cols)
        # Order each query's entries by rank (ranks are distinct within a query).
        perm = torch.argsort(rows * num_g + rank)
        rows, cols, rank = rows[perm], cols[perm], rank[perm]
        removed = (g_camids[cols] == q_camids[rows]).long()
        counts = torch.bincount(rows, minlength=num_q)
        starts = torch.cumsum(counts, 0) - counts
        removed_excl = torch.cumsum(removed, 0) - removed  # removed entries before, all rows
        removed_before = removed_excl - removed_excl[starts[rows]]  # ... within the row
        kept = removed == 0
        hit_rows = rows[kept]
        hit_rank = (rank - removed_before)[kept]  # 0-based rank among the kept entries
        if hit_rows.numel() == 0:
            return
        num_rel = torch.bincount(hit_rows, minlength=num_q)
        valid = num_rel > 0
        hit_starts = torch.cumsum(num_rel, 0) - num_rel
        hit_index = torch.arange(hit_rows.numel(), device=device) - hit_starts[hit_rows]
        precision = (hit_index + 1).double() / (hit_rank + 1).double()  # j / rank_j
        ap = torch.zeros(num_q, dtype=torch.float64, device=device).index_add_(
            0, hit_rows, precision
        )
        ap = ap[valid] / num_rel[valid].double()
        first_rank = hit_rank[hit_starts[valid]]
        last_rank = hit_rank[(hit_starts + num_rel - 1)[valid]]
        inp = num_rel[valid].double() / (last_rank + 1).double()
        self.ap_sum += float(ap.sum())
        self.inp_sum += float(inp.sum())
        self.num_valid += int(valid.sum())
        first_rank = first_rank[first_rank < self.max_rank]
        self.first_hit_hist += torch.bincount(first_rank, minlength=self.max_rank).double().cpu()

    def result(self, ranks: Sequence[int]) -> dict[str, Any]:
        if self.num_valid == 0:
            raise DataError(
                "no query identity appears in the gallery (after removing same-camera "
                "images of the same person): the metrics are undefined"
            )
        cmc = (torch.cumsum(self.first_hit_hist, 0) / self.num_valid).tolist()
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
) -> dict[str, Any]:
    """CMC, mAP and mINP from a (num_query, num_gallery) distance matrix (smaller = closer).

    The argument order follows torchreid's ``evaluate_rank(distmat, q_pids, g_pids,
    q_camids, g_camids)``.

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
    acc = _RankAccumulator(g_pids, g_camids, _check_ranks(ranks, max_rank))
    step = _chunk_size(chunk_size, num_g)
    for start in range(0, num_q, step):
        acc.add(
            dist[start : start + step], q_pids[start : start + step], q_camids[start : start + step]
        )
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
        device: where distances and sorting run (default: the features' device).

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
    acc = _RankAccumulator(g_pids, g_camids, _check_ranks(ranks, max_rank))
    step = _chunk_size(chunk_size, num_g)
    with torch.no_grad():
        for start in range(0, num_q, step):
            dist = pairwise_distance(q[start : start + step], g, metric)
            acc.add(dist, q_pids[start : start + step], q_camids[start : start + step])
    return acc.result(ranks)
