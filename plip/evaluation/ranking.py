"""The one ranking core: 1-based ranks of each query's positives, with a tie policy.

Both retrieval metrics (:mod:`plip.evaluation.retrieval_metrics`, R@K / mAP / mINP of text
search) and ReID metrics (:mod:`plip.evaluation.reid_metrics`, CMC / mAP / mINP) need only
the ranks of the gallery items sharing the query's identity, never a full sort of the
gallery. :func:`hit_ranks` computes them for a block of queries: for each hit it counts the
items scoring higher (and equal), then applies the tie policy:

``"pessimistic"`` (the retrieval metrics' default)
    an item scoring exactly the same as a hit ranks *before* it: ties count against the
    model (a collapsed model with constant scores gets no credit from the gallery order).
``"optimistic"``
    an item scoring the same as a hit ranks *after* it.
``"stable"`` (the ReID metrics' default, a stable sort by distance)
    tied items rank in gallery order: the one listed first ranks first.

Hits tying with each other take consecutive ranks in gallery order under every policy (their
order changes no metric). Scores are float32, higher = better (ReID passes ``-distance``).

Backends, identical results: ``"numba"`` (the compiled kernel
:mod:`plip.evaluation.ranking_kernel`, the CPU fast path), ``"numpy"`` (no compiler) and
``"torch"`` (scores on a GPU, one comparison pass per hit slot there).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

__all__ = ["TIES", "Ties", "Positives", "hit_ranks", "resolve_backend", "BACKENDS"]

Ties = Literal["pessimistic", "optimistic", "stable"]
TIES = ("pessimistic", "optimistic", "stable")
BACKENDS = ("auto", "numba", "numpy", "torch")


def _ranking_kernel():
    """The compiled kernel module, imported on first use (numba takes a while to import)."""
    from plip.evaluation import ranking_kernel

    return ranking_kernel


def check_ties(ties: str) -> str:
    if ties not in TIES:
        raise ValueError(f"ties must be one of {', '.join(map(repr, TIES))}, got {ties!r}")
    return ties


def resolve_backend(block, backend: str) -> str:
    """The backend that ranks ``block``: "torch", "numba" or "numpy"."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")
    if backend == "auto":
        if isinstance(block, torch.Tensor) and block.device.type != "cpu":
            return "torch"
        return "numba" if _ranking_kernel().available() else "numpy"
    if backend == "numba" and not _ranking_kernel().available():
        raise ImportError("backend='numba' needs numba (pip install numba); backend='numpy' works without it")
    return backend


class Positives:
    """For every query, the gallery indices with its identity (CSR layout by identity, each
    query's indices in increasing gallery order)."""

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


# --------------------------------------------------------------------------- NumPy counting


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
    counts = (np.repeat(row_end, width) - first_at_least).reshape(len(rows), width)
    return np.where(np.isnan(thresholds[rows]), 0, counts)  # nothing is >= NaN


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


def _at_least_numpy(scores: np.ndarray, hit_scores: np.ndarray, num_hits: np.ndarray) -> np.ndarray:
    """``at_least[r, j]`` = #(items of row r scoring >= threshold ``hit_scores[r, j]``), the
    thresholds of a row descending (NaN: matched by nothing), with NumPy."""
    n_rows, n_gallery = scores.shape
    pmax = hit_scores.shape[1]
    at_least = np.zeros((n_rows, pmax), dtype=np.int64)
    matched = np.flatnonzero(num_hits > 0)
    worst = np.full(n_rows, np.nan, dtype=np.float32)  # nothing is >= NaN
    worst[matched] = hit_scores[matched, num_hits[matched] - 1]
    # Only items scoring >= a query's worst hit can rank above one of its hits.
    with np.errstate(invalid="ignore"):
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


def _strictly_above_thresholds(hit_scores):
    """Thresholds ``t'`` with ``#(s >= t') == #(s > t)``: the next float32 up (NaN for +inf)."""
    if isinstance(hit_scores, torch.Tensor):
        up = torch.nextafter(hit_scores, torch.full_like(hit_scores, float("inf")))
        return up.masked_fill(torch.isposinf(hit_scores), float("nan"))
    up = np.nextafter(hit_scores, np.float32(np.inf)).astype(np.float32)
    up[np.isposinf(hit_scores)] = np.nan
    return up


def _group_offsets(hit_scores: np.ndarray, num_hits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per slot: how many tied hits come after it and before it in its tied group."""
    n_rows, pmax = hit_scores.shape
    slot = np.arange(pmax)
    inside = slot[None, :] < num_hits[:, None]
    same_as_next = np.zeros((n_rows, pmax), dtype=bool)
    same_as_next[:, :-1] = hit_scores[:, 1:] == hit_scores[:, :-1]
    same_as_next &= slot[None, :] < (num_hits - 1)[:, None]
    group_end = np.where(same_as_next, pmax, slot[None, :])
    group_end = np.minimum.accumulate(group_end[:, ::-1], axis=1)[:, ::-1]
    same_as_prev = np.zeros((n_rows, pmax), dtype=bool)
    same_as_prev[:, 1:] = same_as_next[:, :-1]
    group_start = np.maximum.accumulate(np.where(same_as_prev, -1, slot[None, :]), axis=1)
    return np.where(inside, group_end - slot, 0), np.where(inside, slot - group_start, 0)


def _tied_before(scores, hit_scores: np.ndarray, cols: np.ndarray, tied: np.ndarray) -> np.ndarray:
    """For the slots ``tied`` (a bool mask), #(items equal to the hit with a lower gallery index)."""
    out = np.zeros(hit_scores.shape, dtype=np.int64)
    rows, slots = np.nonzero(tied)
    if not len(rows):
        return out
    n_gallery = scores.shape[1]
    step = max(1, 2**22 // max(n_gallery, 1))
    for start in range(0, len(rows), step):
        r, j = rows[start : start + step], slots[start : start + step]
        if isinstance(scores, torch.Tensor):
            device = scores.device
            r_t, c_t = torch.from_numpy(r).to(device), torch.from_numpy(cols[r, j]).to(device)
            block = scores[r_t]
            same = (block == block.gather(1, c_t[:, None])) & (torch.arange(n_gallery, device=device)[None, :] < c_t[:, None])
            out[r, j] = same.sum(1).cpu().numpy()
        else:
            block = scores[r]
            same = (block == hit_scores[r, j][:, None]) & (np.arange(n_gallery)[None, :] < cols[r, j][:, None])
            out[r, j] = _row_counts(same)
    return out


# --------------------------------------------------------------------------- public


def hit_ranks(
    scores: np.ndarray | torch.Tensor,
    pos_idx: np.ndarray,
    valid: np.ndarray,
    *,
    ties: Ties = "pessimistic",
    backend: str = "numba",
    first_row: int = 0,
    return_columns: bool = False,
):
    """1-based ranks ``(C, Pmax)`` of every hit of a block of queries, ascending per row
    (padding: the int64 maximum); with ``return_columns`` also the gallery index of each
    ranked hit (padding -1).

    Args:
        scores: ``(C, G)`` float32 scores, higher = better (a torch tensor for ``"torch"``).
        pos_idx: ``(C, Pmax)`` gallery indices of each query's hits, increasing per row
            (:meth:`Positives.block`).
        valid: ``(C, Pmax)`` mask of the used slots of ``pos_idx``.
        ties: ``"pessimistic"``, ``"optimistic"`` or ``"stable"`` (module docstring).
        backend: ``"numba"``, ``"numpy"`` or ``"torch"`` (:func:`resolve_backend` picks one).
        first_row: index of the block's first query (named in errors).

    Raises:
        ValueError: a row holding a NaN score, or an unknown tie policy.
    """
    check_ties(ties)
    n_rows, pmax = pos_idx.shape
    num_hits = valid.sum(1).astype(np.int64)
    if backend == "numba":
        kernel = _ranking_kernel()
        code = {"pessimistic": kernel.PESSIMISTIC, "optimistic": kernel.OPTIMISTIC, "stable": kernel.STABLE}[ties]
        ranks, has_nan, cols = kernel.hit_ranks(scores, pos_idx, num_hits, ties=code, return_columns=True)
        if has_nan.any():
            raise ValueError(f"similarity row {first_row + int(np.flatnonzero(has_nan)[0])} contains NaN")
        return (ranks, cols) if return_columns else ranks
    if pmax == 0:
        empty = np.zeros((n_rows, 0), dtype=np.int64)
        return (empty, empty) if return_columns else empty
    if backend == "torch":
        device = scores.device
        index = torch.from_numpy(pos_idx).to(device)
        hits = scores.gather(1, index).masked_fill(~torch.from_numpy(valid).to(device), -float("inf"))
        hit_t, order = hits.sort(dim=1, descending=True, stable=True)
        count = lambda thresholds: _at_least_torch(scores, thresholds).cpu().numpy()  # noqa: E731
        up = _strictly_above_thresholds(hit_t)
        hit_scores = hit_t.cpu().numpy()
        order = order.cpu().numpy()
    else:
        raw = np.where(valid, np.take_along_axis(scores, pos_idx, axis=1), -np.inf).astype(np.float32)
        order = np.argsort(-raw, axis=1, kind="stable")
        hit_scores = np.take_along_axis(raw, order, axis=1)
        count = lambda thresholds: _at_least_numpy(scores, thresholds, num_hits)  # noqa: E731
        up = _strictly_above_thresholds(hit_scores)
    cols = np.where(valid, np.take_along_axis(pos_idx, order, axis=1), -1)
    after, before = _group_offsets(hit_scores, num_hits)
    if ties == "pessimistic":
        ranks = count(hit_t if backend == "torch" else hit_scores) - after
    else:
        above = count(up)
        if ties == "optimistic":
            ranks = above + 1 + before
        else:
            at_least = count(hit_t if backend == "torch" else hit_scores)
            ranks = above + 1 + _tied_before(scores, hit_scores, cols, valid & (at_least - above > 1))
    ranks = np.where(valid, ranks, np.iinfo(np.int64).max)
    return (ranks, cols) if return_columns else ranks
