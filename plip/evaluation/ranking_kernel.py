"""The compiled ranking kernel behind :func:`plip.evaluation.retrieval_metrics` on the CPU.

For every query of a score block it finds the scores of the query's hits (sorted, best
first), counts per hit how many gallery items score at least as high, and turns the counts
into 1-based hit ranks with the tie policy asked for (:mod:`plip.evaluation.ranking`): everything the metrics need, in one
fused loop per query row, compiled with `numba <https://numba.pydata.org>`_. The NumPy formulation of the same computation needs several
passes over the block plus temporary masks; this one reads each score row from memory once
and counts in registers while the row sits in the L1 cache, which is what makes metrics at
CUHK-PEDES size take milliseconds (``benchmarks/bench_metrics.py``).

Written here rather than taken from a library because no maintained library computes ranks
of known positives without sorting the gallery; numba is the dependency that compiles it.
The kernel is compiled on first use and cached on disk (``cache=True``), and releases the GIL
so that chunks run in parallel Python threads (numba's own threading layers are not used:
the default one aborts when called from several threads at once).
"""

from __future__ import annotations

import numpy as np

__all__ = ["available", "hit_ranks", "MAX_HITS_FOR_PASSES", "PESSIMISTIC", "OPTIMISTIC", "STABLE"]

# Above this many hits per query, counting by passes over the row (4 hits per pass) costs
# more than sorting the query's candidate items once.
MAX_HITS_FOR_PASSES = 16

# Items counted per float32 sum (whole numbers are exact up to 2**24); longer rows are
# counted in segments of this length.
EXACT_FLOAT_COUNT = 2**24


try:
    import numba
except Exception:  # pragma: no cover - depends on the environment
    numba = None


def available() -> bool:
    """Whether numba could be imported (it is a dependency; a broken install falls back to NumPy)."""
    return numba is not None


def _njit(**options):
    return numba.njit(**options) if numba is not None else (lambda function: function)


# Speed notes. The first pass over a row streams it from memory (the bound), later ones
# find it in the L1 cache. Counts are accumulated in float32 lanes, exact for segments
# of up to EXACT_FLOAT_COUNT items: numba widens integer sums to int64, which vectorises 4 lanes
# wide instead of 16 and made the counting compute-bound. ``reassoc`` lets the float
# sums vectorise; comparisons, and so NaN detection, keep IEEE semantics.
@_njit(nogil=True, cache=True, boundscheck=False, fastmath={"reassoc"})
def _count_at_least(row, thresholds, first, segment_length, at_least_row):  # pragma: no cover - compiled
    """``at_least_row[first + i] = #(row >= thresholds[first + i])`` for 4 thresholds in
    one pass (NaN pads a missing threshold: nothing is >= NaN); returns the number of NaN
    items in the row (counted on every pass: only the first needs it, but a second copy of
    the loop would cost more to keep than the one extra lane)."""
    one = np.float32(1.0)
    zero = np.float32(0.0)
    nan = np.float32(np.nan)
    n = len(thresholds)
    t0 = thresholds[first] if first < n else nan
    t1 = thresholds[first + 1] if first + 1 < n else nan
    t2 = thresholds[first + 2] if first + 2 < n else nan
    t3 = thresholds[first + 3] if first + 3 < n else nan
    total0 = total1 = total2 = total3 = total_nan = 0
    for start in range(0, len(row), segment_length):
        segment = row[start : start + segment_length]
        c0 = c1 = c2 = c3 = c_nan = zero
        for g in range(len(segment)):
            s = segment[g]
            c0 += one if s >= t0 else zero
            c1 += one if s >= t1 else zero
            c2 += one if s >= t2 else zero
            c3 += one if s >= t3 else zero
            c_nan += one if s != s else zero
        total0 += int(c0)
        total1 += int(c1)
        total2 += int(c2)
        total3 += int(c3)
        total_nan += int(c_nan)
    for i, c in enumerate((total0, total1, total2, total3)):
        if first + i < n:
            at_least_row[first + i] = c
    return total_nan


# Tie policies (see plip.evaluation.ranking): codes the compiled kernel understands.
PESSIMISTIC, OPTIMISTIC, STABLE = 0, 1, 2


@_njit(nogil=True, cache=True, boundscheck=False)
def _strictly_above(hits, up):  # pragma: no cover - compiled
    """``up[j]``: the threshold with ``#(row >= up[j]) == #(row > hits[j])`` (the next float32
    up; NaN, matched by nothing, for +inf)."""
    inf = np.float32(np.inf)
    for j in range(len(hits)):
        up[j] = np.float32(np.nan) if hits[j] == inf else np.nextafter(hits[j], inf)


@_njit(nogil=True, cache=True, boundscheck=False)
def _kernel(scores, pos_idx, num_hits, max_hits_for_passes, segment_length, ties, ranks, cols, has_nan):  # pragma: no cover - compiled
    n_rows, n_gallery = scores.shape
    pmax = pos_idx.shape[1]
    # work buffers allocated once: an allocation per row would cost as much as the counting
    hits_buffer = np.empty(pmax, dtype=np.float32)  # a row's hit scores, best first
    up_buffer = np.empty(pmax, dtype=np.float32)
    cols_buffer = np.empty(max(pmax, 1), dtype=np.int64)  # their gallery indices
    at_least_buffer = np.empty(max(pmax, 1), dtype=np.int64)  # items >= the hit
    above_buffer = np.empty(max(pmax, 1), dtype=np.int64)  # items > the hit
    for r in range(n_rows):
        row = scores[r]
        p = num_hits[r]
        hits = hits_buffer[:p]
        up = up_buffer[:p]
        hit_cols = cols_buffer[:p]
        at_least = at_least_buffer[:p]
        above = above_buffer[:p]
        if p == 0:
            has_nan[r] = _count_at_least(row, hits, 0, segment_length, at_least) > 0
            continue
        if p <= max_hits_for_passes:
            # insertion sort, descending, stable: tied hits keep their (gallery) order
            for j in range(p):
                col = pos_idx[r, j]
                value = row[col]
                k = j
                while k > 0 and hits[k - 1] < value:
                    hits[k] = hits[k - 1]
                    hit_cols[k] = hit_cols[k - 1]
                    k -= 1
                hits[k] = value
                hit_cols[k] = col
            n_nan = 0
            if ties != OPTIMISTIC:
                n_nan = _count_at_least(row, hits, 0, segment_length, at_least)
                for first in range(4, p, 4):
                    _count_at_least(row, hits, first, segment_length, at_least)
            if ties != PESSIMISTIC:
                _strictly_above(hits, up)
                n_nan = _count_at_least(row, up, 0, segment_length, above)
                for first in range(4, p, 4):
                    _count_at_least(row, up, first, segment_length, above)
        else:
            for j in range(p):
                up[j] = -row[pos_idx[r, j]]
            order = np.argsort(up, kind="mergesort")  # descending scores, stable
            for j in range(p):
                hit_cols[j] = pos_idx[r, order[j]]
                hits[j] = row[hit_cols[j]]
            # many hits: sort the items that can outrank one (those >= the worst hit) once
            worst = hits[p - 1]
            n_candidates = 0
            n_nan = 0
            for g in range(n_gallery):
                n_candidates += row[g] >= worst
                n_nan += row[g] != row[g]
            candidates = np.empty(n_candidates, dtype=np.float32)
            k = 0
            for g in range(n_gallery):
                if row[g] >= worst:
                    candidates[k] = row[g]
                    k += 1
            candidates = np.sort(candidates)
            for j in range(p):
                at_least[j] = n_candidates - np.searchsorted(candidates, hits[j], side="left")
                above[j] = n_candidates - np.searchsorted(candidates, hits[j], side="right")
        has_nan[r] = n_nan > 0
        # Hits tying with each other take consecutive ranks, in gallery order.
        if ties == PESSIMISTIC:  # an item scoring the same as a hit ranks before it
            group_last = p - 1
            for j in range(p - 1, -1, -1):
                if j < p - 1 and hits[j] != hits[j + 1]:
                    group_last = j
                ranks[r, j] = at_least[j] - (group_last - j)
        elif ties == OPTIMISTIC:  # ... after it
            group_first = 0
            for j in range(p):
                if j > 0 and hits[j] != hits[j - 1]:
                    group_first = j
                ranks[r, j] = above[j] + 1 + (j - group_first)
        else:  # STABLE: tied items in gallery order
            for j in range(p):
                before = 0
                if at_least[j] - above[j] > 1:
                    value = hits[j]
                    for g in range(hit_cols[j]):
                        before += row[g] == value
                ranks[r, j] = above[j] + 1 + before
        for j in range(p):
            cols[r, j] = hit_cols[j]


def hit_ranks(
    scores: np.ndarray,
    pos_idx: np.ndarray,
    num_hits: np.ndarray,
    max_hits_for_passes: int | None = None,
    ties: int = PESSIMISTIC,
    return_columns: bool = False,
):
    """1-based rank of every hit of a block of queries, best hit first.

    Ties (``ties``): :data:`PESSIMISTIC` (default, as :mod:`plip.evaluation.retrieval_metrics`
    documents): an item scoring the same as a hit ranks before it; :data:`OPTIMISTIC`: after
    it; :data:`STABLE`: tied items rank in gallery order. Hits tying with each other take
    consecutive ranks in gallery order under every policy.

    Args:
        scores: ``(C, G)`` float32 scores, higher = better (made C-contiguous if needed).
        pos_idx: ``(C, Pmax)`` gallery indices of each query's hits (the first
            ``num_hits[r]`` entries of row ``r`` are used; in increasing order for the
            gallery-order rule among tied hits).
        num_hits: ``(C,)`` number of hits per query.
        max_hits_for_passes: queries with up to this many hits are counted by passes over
            their row (4 hits per pass); queries with more sort their candidate items
            instead (default :data:`MAX_HITS_FOR_PASSES`).
        ties: the tie policy code.
        return_columns: also return the gallery index of each ranked hit.

    Returns:
        ``ranks`` ``(C, Pmax)`` int64, ascending per row, padded with the int64 maximum;
        ``has_nan`` ``(C,)`` bool: rows holding a NaN score (their ranks are meaningless);
        with ``return_columns``, third, ``cols`` ``(C, Pmax)`` int64 (padding -1).
    """
    n_rows, pmax = pos_idx.shape
    ranks = np.full((n_rows, pmax), np.iinfo(np.int64).max, dtype=np.int64)
    cols = np.full((n_rows, pmax), -1, dtype=np.int64)
    has_nan = np.zeros(n_rows, dtype=np.bool_)
    if ties not in (PESSIMISTIC, OPTIMISTIC, STABLE):
        raise ValueError(f"unknown tie policy code {ties!r}")
    _kernel(
        np.ascontiguousarray(scores, dtype=np.float32),
        np.ascontiguousarray(pos_idx, dtype=np.int64),
        np.ascontiguousarray(num_hits, dtype=np.int64),
        int(MAX_HITS_FOR_PASSES if max_hits_for_passes is None else max_hits_for_passes),
        int(EXACT_FLOAT_COUNT),
        int(ties),
        ranks,
        cols,
        has_nan,
    )
    return (ranks, has_nan, cols) if return_columns else (ranks, has_nan)
