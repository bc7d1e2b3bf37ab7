"""Retrieval metrics for text-based person search: R@K, mAP, mINP.

Every query is ranked against the whole gallery; a gallery item is a *hit* when it has the
query's identity (no camera filtering, as in CUHK-PEDES / ICFG-PEDES / RSTPReid papers).
With the 1-based ranks ``r_1 < r_2 < ... < r_P`` of the ``P`` hits of a query:

* **R@K** (CMC at K): 1 if ``r_1 <= K`` else 0, averaged over *all* queries.
* **AP** (standard; IRRA and later papers): ``(1/P) * sum_j j / r_j`` — the mean of the
  precision at each hit.
* **legacy AP** (``legacy_ap=True``; the official PLIP code, ``compute_mAP`` in the released
  ``utils.py``): every hit contributes the mean of the precision just *before* it and the
  precision *at* it: ``(1/P) * sum_j ((j-1)/(r_j-1) + j/r_j) / 2``, where the precision before
  a hit at rank 1 is defined as 1.0 (the official code: ``old_precision = i / rows_good[i]``
  if ``rows_good[i] != 0`` else ``1.0``, with ``i`` the 0-based hit number and ``rows_good[i]``
  its 0-based rank).
* **INP** (Ye et al., "Deep Learning for Person Re-identification: A Survey and Outlook",
  as IRRA computes it): ``P / r_P``, the share of the list a user must inspect to find the
  hardest hit. mAP / mINP are means over queries.

All metrics are returned in percent (NaN when there is no query to average over).

Queries without any hit in the gallery
    They count as misses for R@K (both IRRA and the official PLIP code divide by the number
    of all queries). For AP and INP they are excluded from the mean by default
    (``unmatched="exclude"``; IRRA's code would produce NaN for them) and reported as
    ``num_unmatched``; ``unmatched="zero"`` counts them as AP = INP = 0 instead, which is what
    the official PLIP ``test_map`` does (it skips them in the sum but divides by all queries).
    The standard benchmarks have no such query.

Ties
    Deterministic and conservative: an item scoring exactly the same as a hit ranks
    *before* it (ties count against the model, so a collapsed model with constant scores
    gets no credit from the order of the gallery), and hits tying with each other take
    consecutive ranks (their order does not change any metric). ``-0.0`` equals ``0.0``.
    The official code's ``np.argsort(score)[::-1]`` leaves the order of tied items to
    NumPy's unstable sort, so results can differ from it only where scores tie exactly.
    Scores are compared as float32 (a float64 similarity is rounded first); NaN scores raise
    ``ValueError``; infinite scores are ranked like any other.

Algorithm and memory
    No query is ranked by a full sort, and there is no Python loop over queries. For a
    chunk of queries, one vectorised comparison finds, per query, the items scoring at
    least as high as its worst hit: only these can push a hit down the list. A hit's rank
    is then the number of items scoring at least as high as it (with the tie rule above),
    counted either by sorting a query's candidates once (packed as ``row * 2**32 + score
    order`` int64 keys, one sort per chunk) or, for queries with many candidates, by one
    comparison pass per hit; each query takes the cheaper of the two. The cost is linear
    in the gallery size per query.

    The numba backend (below) does the same per query in one fused loop over its row.

    Memory: scores are processed in chunks of ``chunk_elements`` query x gallery entries
    (default ``2**23`` with numba, ``2**21`` otherwise), split evenly over the threads. The
    numba kernel needs only O(gallery) extra memory per thread. The NumPy backend needs at
    most about ``80 * chunk_elements`` bytes per thread (measured worst case, every gallery
    item a hit; about 50 when a query has few hits: under 170 MB by default). Add the
    chunk's similarity block when it is computed from embeddings or converted to float32
    (``4 * chunk_elements``), and O(queries + gallery) for labels and results. Nothing grows
    with queries x gallery: a 100k x 1M problem runs in chunks of a few queries, in well
    under 2 GB with 8 threads.

Backends: on the CPU the ranking runs in a compiled kernel (``backend="numba"``, the
default there; :mod:`plip.evaluation.ranking_kernel`) that reads each score row once and
counts, per hit, the items scoring at least as high while the row is in cache; chunks run in
``threads`` threads. ``backend="numpy"`` is the same computation with NumPy array passes
(used when numba cannot be imported). Scores on a GPU are ranked there with torch, by one
comparison pass per hit slot (``backend="torch"``; a GPU does such passes at memory speed),
and only the small per-hit counts travel to the host. Similarities computed from embeddings
use torch on the embeddings' device either way. All backends give identical results.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterator, Literal, Sequence

import numpy as np
import torch

__all__ = [
    "RetrievalMetrics",
    "retrieval_metrics",
    "retrieval_metrics_from_embeddings",
    "text_image_metrics",
    "DEFAULT_CHUNK_ELEMENTS",
]

DEFAULT_CHUNK_ELEMENTS = 2**21
# The numba kernel needs no temporaries: bigger chunks, fewer hand-offs between threads.
NUMBA_CHUNK_ELEMENTS = 2**23

Unmatched = Literal["exclude", "zero"]


@dataclass(frozen=True)
class RetrievalMetrics:
    """Retrieval metrics of one query set against one gallery (values in percent).

    Attributes:
        recall: ``{K: R@K}``.
        mAP: mean average precision (standard, or the official PLIP variant if ``legacy_ap``).
        mINP: mean inverse negative penalty.
        num_queries: number of queries (all of them; R@K is averaged over these).
        num_gallery: number of gallery items.
        num_unmatched: queries whose identity has no gallery item.
        legacy_ap: whether ``mAP`` is the official-PLIP AP.
        unmatched: how unmatched queries enter mAP / mINP ("exclude" or "zero").
        first_hit_rank: per query, the 1-based rank of its first hit (0 if none); only when
            ``per_query=True`` was asked.
        average_precision: per query AP in [0, 1] (NaN if no hit); only with ``per_query``.
        inverse_negative_penalty: per query INP in [0, 1] (NaN if no hit); only with ``per_query``.
    """

    recall: dict[int, float]
    mAP: float
    mINP: float
    num_queries: int
    num_gallery: int
    num_unmatched: int
    legacy_ap: bool = False
    unmatched: str = "exclude"
    first_hit_rank: np.ndarray | None = field(default=None, repr=False, compare=False)
    average_precision: np.ndarray | None = field(default=None, repr=False, compare=False)
    inverse_negative_penalty: np.ndarray | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, float | int | bool | str]:
        """Flat JSON-friendly dict: ``R@1 … R@K, mAP, mINP`` and the counts."""
        out: dict[str, float | int | bool | str] = {f"R@{k}": v for k, v in self.recall.items()}
        out.update(
            mAP=self.mAP,
            mINP=self.mINP,
            num_queries=self.num_queries,
            num_gallery=self.num_gallery,
            num_unmatched=self.num_unmatched,
            legacy_ap=self.legacy_ap,
            unmatched=self.unmatched,
        )
        return out


# --------------------------------------------------------------------------- inputs


def _as_ids(ids, name: str) -> np.ndarray:
    if isinstance(ids, torch.Tensor):
        ids = ids.detach().cpu().numpy()
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {tuple(arr.shape)}")
    if arr.dtype.kind not in "iub":
        raise ValueError(f"{name} must hold integer identity labels, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(int(k) for k in ks)
    if not ks or any(k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {ks}")
    return ks


_BACKENDS = ("auto", "numba", "numpy", "torch")


def _ranking_kernel():
    """The compiled kernel module, imported on first use (numba takes a while to import)."""
    from plip.evaluation import ranking_kernel

    return ranking_kernel


def _resolve_backend(block, backend: str) -> str:
    """The backend that ranks ``block``: "torch", "numba" or "numpy"."""
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, _BACKENDS))}, got {backend!r}")
    if backend == "auto":
        if isinstance(block, torch.Tensor) and block.device.type != "cpu":
            return "torch"
        return "numba" if _ranking_kernel().available() else "numpy"
    if backend == "numba" and not _ranking_kernel().available():
        raise ImportError("backend='numba' needs numba (pip install numba); backend='numpy' works without it")
    return backend


def _prepare_block(block, backend: str, first_row: int):
    """A float32 score block for the chosen backend; raises ValueError on NaN.

    The numba kernel finds NaN itself while it ranks (no extra pass over the scores).
    """
    if backend == "torch":
        block = torch.as_tensor(block).detach().float()
        nan_rows = torch.isnan(block).any(dim=1)
        if bool(nan_rows.any()):
            raise ValueError(f"similarity row {first_row + int(nan_rows.nonzero()[0])} contains NaN")
        return block
    block = _to_float32_numpy(block)
    if backend == "numba":
        return block
    with np.errstate(invalid="ignore", over="ignore"):
        finite_sum = np.isfinite(block.sum())
    if not finite_sum:  # cheap test first; inf scores are allowed
        bad = np.flatnonzero(np.isnan(block).any(axis=1))
        if len(bad):
            raise ValueError(f"similarity row {first_row + int(bad[0])} contains NaN")
    return block


def _to_float32_numpy(block) -> np.ndarray:
    if isinstance(block, torch.Tensor):
        block = block.detach()
        if block.dtype in (torch.float16, torch.bfloat16):
            block = block.float()  # NumPy has no bfloat16
        block = block.cpu().numpy()
    return np.ascontiguousarray(block, dtype=np.float32)


class _Positives:
    """For every query, the gallery indices with its identity (CSR layout by identity)."""

    def __init__(self, query_ids: np.ndarray, gallery_ids: np.ndarray):
        labels, gallery_label = np.unique(gallery_ids, return_inverse=True)
        self.order = np.argsort(gallery_label, kind="stable")  # gallery indices grouped by identity
        counts = np.bincount(gallery_label, minlength=len(labels))
        self.offsets = np.cumsum(counts) - counts
        pos = np.minimum(np.searchsorted(labels, query_ids), max(len(labels) - 1, 0))
        found = labels[pos] == query_ids if len(labels) else np.zeros(len(query_ids), dtype=bool)
        self.query_label = np.where(found, pos, 0)
        self.num_hits = np.where(found, counts[pos] if len(labels) else 0, 0).astype(np.int64)

    def block(self, rows: slice) -> tuple[np.ndarray, np.ndarray]:
        """Padded ``(C, Pmax)`` gallery indices of the hits of queries ``rows`` and a validity mask."""
        p = self.num_hits[rows]
        pmax = int(p.max(initial=0))
        slot = np.arange(pmax)
        valid = slot[None, :] < p[:, None]
        if pmax == 0:
            return np.zeros((len(p), 0), dtype=np.int64), valid
        start = self.offsets[self.query_label[rows]]
        flat = np.minimum(start[:, None] + slot[None, :], len(self.order) - 1)
        return np.where(valid, self.order[flat], 0), valid


def _ordinal(scores: np.ndarray) -> np.ndarray:
    """int32 ordered like the float32 scores: a < b iff ordinal(a) < ordinal(b); -0.0 == 0.0."""
    bits = np.ascontiguousarray(scores, dtype=np.float32).view(np.int32)
    sign = bits >> 31  # 0, or -1 for negative numbers
    # Negative floats: flip the magnitude bits (larger magnitude = smaller) and add 1 so
    # that -0.0 lands on 0.0.
    return (bits ^ (sign & np.int32(0x7FFFFFFF))) - sign


def _row_keys(rows: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """int64 keys ordered by row, then by score: ``row * 2**32 + ordinal(score)``."""
    return (rows.astype(np.int64) << 32) + _ordinal(scores)


def _first_key_of_row(rows: np.ndarray) -> np.ndarray:
    return (rows.astype(np.int64) << 32) - 2**31


# Rough cost of handling one candidate item (extract, key, sort) relative to comparing
# one item with one threshold; only used to route each query to the faster exact method.
_CANDIDATE_COST = 16.0


def _row_counts(mask: np.ndarray) -> np.ndarray:
    """True entries per row (a byte sum: about twice as fast as ``count_nonzero(axis=1)``)."""
    return mask.view(np.uint8).sum(axis=1, dtype=np.int64)


def _at_least_by_sorting(scores, cand, n_cand, rows, thresholds):
    """``#(row items >= threshold)`` for ``rows`` by sorting their candidates.

    ``cand`` marks the items >= each row's lowest threshold and is clear on all other rows;
    ``n_cand`` holds its row counts.
    """
    n_rows, n_gallery = scores.shape
    flat = np.flatnonzero(cand)
    row = np.repeat(np.arange(n_rows), n_cand)
    keys = _row_keys(row, np.take(scores.reshape(-1), flat))
    del flat
    keys.sort()
    width = thresholds.shape[1]
    row_end = np.searchsorted(keys, _first_key_of_row(rows + 1), side="left")
    t_keys = _row_keys(np.repeat(rows, width), thresholds[rows].reshape(-1))
    first_at_least = np.searchsorted(keys, t_keys, side="left")
    return (np.repeat(row_end, width) - first_at_least).reshape(len(rows), width)


def _at_least_by_counting(scores, thresholds, num_thresholds):
    """``#(row items >= threshold)`` by one comparison pass per threshold slot.

    Rows must be ordered by ``num_thresholds`` descending, so that the rows using slot
    ``k`` are a prefix.
    """
    counts = np.zeros(thresholds.shape, dtype=np.int64)
    buf = np.empty(scores.shape, dtype=bool)
    for k in range(thresholds.shape[1]):
        n = int(np.count_nonzero(num_thresholds > k))
        np.greater_equal(scores[:n], thresholds[:n, k : k + 1], out=buf[:n])
        counts[:n, k] = _row_counts(buf[:n])
    return counts


def _sorted_hit_scores(hit_scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Each row's hit scores, best first, padding (-inf) last."""
    return -np.sort(-np.where(valid, hit_scores, -np.inf), axis=1)


def _at_least_numpy(scores: np.ndarray, hit_scores: np.ndarray, num_hits: np.ndarray) -> np.ndarray:
    """``at_least[r, j]`` = #(items of row r scoring >= its j-th best hit), with NumPy."""
    n_rows, n_gallery = scores.shape
    pmax = hit_scores.shape[1]
    at_least = np.zeros((n_rows, pmax), dtype=np.int64)
    matched = np.flatnonzero(num_hits > 0)
    worst = np.full(n_rows, np.nan, dtype=np.float32)  # nothing is >= NaN
    worst[matched] = hit_scores[matched, num_hits[matched] - 1]
    # Only items scoring >= a query's worst hit can rank above one of its hits.
    cand = scores >= worst[:, None]
    n_cand = _row_counts(cand)
    worst_count = n_cand.copy()
    by_counting = n_cand * _CANDIDATE_COST > (num_hits - 1) * n_gallery
    sparse = np.flatnonzero(~by_counting & (num_hits > 1))
    dense = np.flatnonzero(by_counting & (num_hits > 1))
    if len(sparse):
        cand[dense] = False
        cand[num_hits == 1] = False
        n_cand[dense] = 0
        n_cand[num_hits == 1] = 0
        at_least[sparse] = _at_least_by_sorting(scores, cand, n_cand, sparse, hit_scores)
    del cand
    if len(dense):
        dense = dense[np.argsort(-num_hits[dense], kind="stable")]
        # the worst hit's count is known already: count for the others only
        at_least[dense, :-1] = _at_least_by_counting(scores[dense], hit_scores[dense, :-1], num_hits[dense] - 1)
    at_least[matched, num_hits[matched] - 1] = worst_count[matched]
    return at_least


def _at_least_torch(scores: torch.Tensor, hit_scores: torch.Tensor) -> torch.Tensor:
    """``at_least`` as in :func:`_at_least_numpy`, by one comparison pass per hit slot on
    the scores' device (what a GPU does best)."""
    at_least = torch.empty(hit_scores.shape, dtype=torch.int64, device=scores.device)
    for k in range(hit_scores.shape[1]):
        at_least[:, k] = (scores >= hit_scores[:, k : k + 1]).sum(dim=1)
    return at_least


def _ranks_from_counts(at_least: np.ndarray, hit_scores: np.ndarray, num_hits: np.ndarray) -> np.ndarray:
    """1-based hit ranks (C, Pmax), ascending per row, padding = int64 max.

    Ties: an item scoring the same as a hit ranks before it; hits tying with each other
    take consecutive ranks. So a hit with ``m`` hits tied to it (itself included) and
    ``g`` items scoring at least as high takes a rank among ``g-m+1 .. g``: each hit gives
    way to the tied hits after it.
    """
    n_rows, pmax = hit_scores.shape
    slot = np.arange(pmax)
    same_as_next = np.zeros((n_rows, pmax), dtype=bool)
    same_as_next[:, :-1] = hit_scores[:, 1:] == hit_scores[:, :-1]
    same_as_next &= slot[None, :] < (num_hits - 1)[:, None]
    group_end = np.where(same_as_next, pmax, slot[None, :])
    group_end = np.minimum.accumulate(group_end[:, ::-1], axis=1)[:, ::-1]
    ranks = at_least - (group_end - slot[None, :])
    ranks[slot[None, :] >= num_hits[:, None]] = np.iinfo(np.int64).max
    return ranks


def _hit_ranks(
    scores: np.ndarray | torch.Tensor, pos_idx: np.ndarray, valid: np.ndarray, backend: str, first_row: int
) -> np.ndarray:
    """1-based ranks (C, Pmax) of every hit of a chunk of queries (see :func:`_ranks_from_counts`)."""
    n_rows, pmax = pos_idx.shape
    num_hits = valid.sum(1)
    if backend == "numba":
        ranks, has_nan = _ranking_kernel().hit_ranks(scores, pos_idx, num_hits)
        if has_nan.any():
            raise ValueError(f"similarity row {first_row + int(np.flatnonzero(has_nan)[0])} contains NaN")
        return ranks
    if pmax == 0:
        return np.zeros((n_rows, 0), dtype=np.int64)
    if backend == "torch":
        index = torch.from_numpy(pos_idx).to(scores.device)
        hits = scores.gather(1, index).masked_fill(~torch.from_numpy(valid).to(scores.device), -float("inf"))
        hit_scores_t = hits.sort(dim=1, descending=True).values
        at_least = _at_least_torch(scores, hit_scores_t).cpu().numpy()
        hit_scores = hit_scores_t.cpu().numpy()
    else:
        hit_scores = _sorted_hit_scores(np.take_along_axis(scores, pos_idx, axis=1), valid)
        at_least = _at_least_numpy(scores, hit_scores, num_hits)
    return _ranks_from_counts(at_least, hit_scores, num_hits)


def _query_scores(ranks: np.ndarray, num_hits: np.ndarray, legacy_ap: bool):
    """Per-query first-hit rank, AP and INP from sorted hit ranks."""
    n_rows, pmax = ranks.shape
    matched = num_hits > 0
    first = np.where(matched, ranks[:, 0] if pmax else 0, 0)
    ap = np.full(n_rows, np.nan)
    inp = np.full(n_rows, np.nan)
    if pmax == 0 or not matched.any():
        return first, ap, inp
    r = ranks[matched].astype(np.float64)
    p = num_hits[matched]
    valid = np.arange(pmax)[None, :] < p[:, None]
    j = np.arange(1, pmax + 1, dtype=np.float64)[None, :]
    r_safe = np.where(valid, r, 1.0)
    precision = j / r_safe
    if legacy_ap:
        before = np.where(r_safe > 1, (j - 1) / np.maximum(r_safe - 1, 1), 1.0)
        precision = (before + precision) / 2
    ap[matched] = np.where(valid, precision, 0.0).sum(1) / p
    last = np.take_along_axis(r_safe, (p - 1)[:, None], axis=1)[:, 0]
    inp[matched] = p / last
    return first, ap, inp


def _metrics(
    blocks: Iterator[tuple[slice, np.ndarray]],
    query_ids: np.ndarray,
    gallery_ids: np.ndarray,
    ks: tuple[int, ...],
    legacy_ap: bool,
    unmatched: str,
    per_query: bool,
    threads: int | None,
    backend: str,
) -> RetrievalMetrics:
    if unmatched not in ("exclude", "zero"):
        raise ValueError(f"unmatched must be 'exclude' or 'zero', got {unmatched!r}")
    n_query = len(query_ids)
    positives = _Positives(query_ids, gallery_ids)
    first = np.zeros(n_query, dtype=np.int64)
    ap = np.full(n_query, np.nan)
    inp = np.full(n_query, np.nan)

    def process(rows: slice, scores: np.ndarray) -> None:
        pos_idx, valid = positives.block(rows)
        ranks = _hit_ranks(scores, pos_idx, valid, backend, rows.start)
        first[rows], ap[rows], inp[rows] = _query_scores(ranks, positives.num_hits[rows], legacy_ap)

    # Chunks are independent and NumPy releases the GIL in its loops: rank them in threads,
    # with at most `threads` chunks alive at once (the memory bound scales with it).
    threads = _num_threads(threads)
    if threads == 1:
        for rows, scores in blocks:
            process(rows, scores)
    else:
        with ThreadPoolExecutor(threads) as pool:
            pending: deque = deque()
            for rows, scores in blocks:
                if len(pending) >= threads:
                    pending.popleft().result()
                pending.append(pool.submit(process, rows, scores))
            for future in pending:
                future.result()
    matched = positives.num_hits > 0
    num_unmatched = int((~matched).sum())
    recall = {k: float(100.0 * np.mean(matched & (first <= k))) if n_query else float("nan") for k in ks}
    if unmatched == "zero":
        denom = n_query
    else:
        denom = n_query - num_unmatched
    mean_ap = float(100.0 * np.nansum(ap) / denom) if denom else float("nan")
    mean_inp = float(100.0 * np.nansum(inp) / denom) if denom else float("nan")
    return RetrievalMetrics(
        recall=recall,
        mAP=mean_ap,
        mINP=mean_inp,
        num_queries=n_query,
        num_gallery=len(gallery_ids),
        num_unmatched=num_unmatched,
        legacy_ap=legacy_ap,
        unmatched=unmatched,
        first_hit_rank=first if per_query else None,
        average_precision=ap if per_query else None,
        inverse_negative_penalty=inp if per_query else None,
    )


def _num_threads(threads: int | None) -> int:
    if threads is None:
        return max(1, min(8, os.cpu_count() or 1))
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    return int(threads)


def _rows_per_chunk(
    n_query: int, n_gallery: int, chunk_elements: int | None, backend: str, threads: int | None
) -> int:
    """Queries per chunk: within the element budget, in equal chunks, a multiple of ``threads``
    of them so that no thread is left with a short last chunk."""
    if chunk_elements is None:
        budget = NUMBA_CHUNK_ELEMENTS if backend == "numba" else DEFAULT_CHUNK_ELEMENTS
    else:
        budget = int(chunk_elements)
    if budget < 1:
        raise ValueError(f"chunk_elements must be positive, got {chunk_elements}")
    budget_rows = max(1, min(budget // max(n_gallery, 1), 2**31))
    workers = 1 if backend == "torch" and threads is None else _num_threads(threads)
    n_chunks = -(-max(n_query, 1) // budget_rows)
    n_chunks = -(-n_chunks // workers) * workers
    return max(1, -(-n_query // n_chunks))


# --------------------------------------------------------------------------- public


def retrieval_metrics(
    similarity: torch.Tensor | np.ndarray,
    query_ids,
    gallery_ids,
    *,
    ks: Sequence[int] = (1, 5, 10),
    legacy_ap: bool = False,
    unmatched: Unmatched = "exclude",
    chunk_elements: int | None = None,
    per_query: bool = False,
    threads: int | None = None,
    backend: str = "auto",
) -> RetrievalMetrics:
    """Retrieval metrics from a ``(num_queries, num_gallery)`` similarity matrix.

    Args:
        similarity: scores, higher = more similar (e.g. cosine similarities). Rows are
            queries, columns gallery items. For image-to-text pass the transpose of a
            text x image matrix (or use :func:`text_image_metrics`).
        query_ids (Sequence[int] | np.ndarray | torch.Tensor): integer identity label of each
            query (any values; compared for equality).
        gallery_ids (Sequence[int] | np.ndarray | torch.Tensor): integer identity label of
            each gallery item.
        ks: the K of R@K.
        legacy_ap: report the official PLIP AP instead of the standard one.
        unmatched: how queries without a hit enter mAP/mINP: ``"exclude"`` or ``"zero"``.
        chunk_elements: query x gallery entries processed at once (bounds memory).
        per_query: also return per-query first-hit ranks, APs and INPs.
        threads: chunks ranked in parallel (default: CPU count, at most 8).
        backend: ``"numba"`` (compiled CPU kernel), ``"numpy"`` (CPU, no compiler),
            ``"torch"`` (on the scores' device), or ``"auto"``: torch for scores on a GPU,
            numba otherwise (NumPy if numba is missing). All give identical results.

    Returns:
        :class:`RetrievalMetrics` (percentages).
    """
    q_ids = _as_ids(query_ids, "query_ids")
    g_ids = _as_ids(gallery_ids, "gallery_ids")
    if tuple(similarity.shape) != (len(q_ids), len(g_ids)):
        raise ValueError(
            f"similarity has shape {tuple(similarity.shape)}, expected "
            f"({len(q_ids)}, {len(g_ids)}) = (len(query_ids), len(gallery_ids))"
        )
    backend = _resolve_backend(similarity, backend)
    if backend == "torch" and threads is None:
        threads = 1  # the device serialises the work anyway
    step = _rows_per_chunk(len(q_ids), len(g_ids), chunk_elements, backend, threads)

    def blocks():
        for start in range(0, len(q_ids), step):
            rows = slice(start, min(start + step, len(q_ids)))
            yield rows, _prepare_block(similarity[rows], backend, start)

    return _metrics(blocks(), q_ids, g_ids, _check_ks(ks), legacy_ap, unmatched, per_query, threads, backend)


def retrieval_metrics_from_embeddings(
    query_embeddings: torch.Tensor,
    gallery_embeddings: torch.Tensor,
    query_ids,
    gallery_ids,
    *,
    ks: Sequence[int] = (1, 5, 10),
    legacy_ap: bool = False,
    unmatched: Unmatched = "exclude",
    chunk_elements: int | None = None,
    per_query: bool = False,
    normalize: bool = False,
    threads: int | None = None,
    backend: str = "auto",
) -> RetrievalMetrics:
    """Retrieval metrics with similarities computed chunk by chunk (bounded memory).

    The score of a query and a gallery item is their dot product (cosine similarity for
    L2-normalised embeddings; pass ``normalize=True`` to normalise here). The full
    similarity matrix is never materialised, so galleries of millions of items work.
    Products run on the embeddings' device in float32. Other arguments as in
    :func:`retrieval_metrics`.
    """
    q = torch.as_tensor(query_embeddings)
    g = torch.as_tensor(gallery_embeddings)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(
            f"embeddings must be 2-D with the same width, got {tuple(q.shape)} and {tuple(g.shape)}"
        )
    q_ids = _as_ids(query_ids, "query_ids")
    g_ids = _as_ids(gallery_ids, "gallery_ids")
    if len(q_ids) != q.shape[0] or len(g_ids) != g.shape[0]:
        raise ValueError(
            f"{q.shape[0]} query / {g.shape[0]} gallery embeddings but "
            f"{len(q_ids)} query / {len(g_ids)} gallery ids"
        )
    q = q.detach().float()
    g = g.detach().float().to(q.device)
    for name, emb in (("query_embeddings", q), ("gallery_embeddings", g)):
        if not bool(torch.isfinite(emb).all()):
            raise ValueError(f"{name} contain NaN or infinite values")
    if normalize:
        q = torch.nn.functional.normalize(q, dim=1)
        g = torch.nn.functional.normalize(g, dim=1)
    backend = _resolve_backend(q, backend)
    if backend == "torch" and threads is None:
        threads = 1  # the device serialises the work anyway
    step = _rows_per_chunk(len(q_ids), len(g_ids), chunk_elements, backend, threads)

    def blocks():
        with torch.no_grad():
            g_t = g.t()
            for start in range(0, len(q_ids), step):
                rows = slice(start, min(start + step, len(q_ids)))
                block = q[rows] @ g_t
                yield rows, block if backend == "torch" else _to_float32_numpy(block)

    return _metrics(blocks(), q_ids, g_ids, _check_ks(ks), legacy_ap, unmatched, per_query, threads, backend)


def text_image_metrics(
    text_embeddings: torch.Tensor,
    image_embeddings: torch.Tensor,
    text_ids,
    image_ids,
    *,
    directions: Sequence[str] = ("t2i",),
    **kwargs,
) -> dict[str, RetrievalMetrics]:
    """Text-to-image and/or image-to-text metrics from the two embedding sets.

    ``"t2i"``: each text is a query, the images are the gallery (the benchmark protocol).
    ``"i2t"``: the roles swapped. Keyword arguments go to
    :func:`retrieval_metrics_from_embeddings`.
    """
    out: dict[str, RetrievalMetrics] = {}
    for direction in directions:
        if direction == "t2i":
            out[direction] = retrieval_metrics_from_embeddings(
                text_embeddings, image_embeddings, text_ids, image_ids, **kwargs
            )
        elif direction == "i2t":
            out[direction] = retrieval_metrics_from_embeddings(
                image_embeddings, text_embeddings, image_ids, text_ids, **kwargs
            )
        else:
            raise ValueError(f"direction must be 't2i' or 'i2t', got {direction!r}")
    return out
