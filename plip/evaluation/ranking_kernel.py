"""The compiled ranking kernel behind :func:`plip.evaluation.retrieval_metrics` on the CPU.

For every query of a score block it finds the scores of the query's hits (sorted, best
first), counts per hit how many gallery items score at least as high, and turns the counts
into 1-based hit ranks with the documented tie rule: everything the metrics need, in one
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

__all__ = ["available", "hit_ranks", "MAX_HITS_FOR_PASSES"]

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


@_njit(nogil=True, cache=True, boundscheck=False)
def _kernel(scores, pos_idx, num_hits, max_hits_for_passes, segment_length, ranks, has_nan):  # pragma: no cover - compiled
    n_rows, n_gallery = scores.shape
    pmax = pos_idx.shape[1]
    # work buffers allocated once: an allocation per row would cost as much as the counting
    hits_buffer = np.empty(pmax, dtype=np.float32)  # a row's hit scores, best first
    at_least_buffer = np.empty(max(pmax, 1), dtype=np.int64)
    for r in range(n_rows):
        row = scores[r]
        p = num_hits[r]
        hits = hits_buffer[:p]
        at_least = at_least_buffer[:p]
        if p == 0:
            has_nan[r] = _count_at_least(row, hits, 0, segment_length, at_least) > 0
            continue
        if p <= max_hits_for_passes:
            for j in range(p):  # insertion sort, descending: p is small here
                value = row[pos_idx[r, j]]
                k = j
                while k > 0 and hits[k - 1] < value:
                    hits[k] = hits[k - 1]
                    k -= 1
                hits[k] = value
            n_nan = _count_at_least(row, hits, 0, segment_length, at_least)
            for first in range(4, p, 4):
                _count_at_least(row, hits, first, segment_length, at_least)
        else:
            for j in range(p):
                hits[j] = row[pos_idx[r, j]]
            hits[:] = np.sort(hits)[::-1]
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
        has_nan[r] = n_nan > 0
        # Ties: an item scoring the same as a hit ranks before it; hits tying with each
        # other take consecutive ranks (the last of a tied group gets the count itself).
        group_last = p - 1
        for j in range(p - 1, -1, -1):
            if j < p - 1 and hits[j] != hits[j + 1]:
                group_last = j
            ranks[r, j] = at_least[j] - (group_last - j)

def hit_ranks(
    scores: np.ndarray, pos_idx: np.ndarray, num_hits: np.ndarray, max_hits_for_passes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """1-based rank of every hit of a block of queries, best hit first.

    Ties are resolved as :mod:`plip.evaluation.retrieval_metrics` documents: an item scoring
    the same as a hit ranks before it, and hits tying with each other take consecutive ranks.

    Args:
        scores: ``(C, G)`` float32 scores (made C-contiguous if needed).
        pos_idx: ``(C, Pmax)`` gallery indices of each query's hits (the first
            ``num_hits[r]`` entries of row ``r`` are used, in any order).
        num_hits: ``(C,)`` number of hits per query.
        max_hits_for_passes: queries with up to this many hits are counted by passes over
            their row (4 hits per pass); queries with more sort their candidate items
            instead (default :data:`MAX_HITS_FOR_PASSES`).

    Returns:
        ``ranks`` ``(C, Pmax)`` int64, ascending per row, padded with the int64 maximum; and
        ``has_nan`` ``(C,)`` bool: rows holding a NaN score (their ranks are meaningless).
    """
    n_rows, pmax = pos_idx.shape
    ranks = np.full((n_rows, pmax), np.iinfo(np.int64).max, dtype=np.int64)
    has_nan = np.zeros(n_rows, dtype=np.bool_)
    _kernel(
        np.ascontiguousarray(scores, dtype=np.float32),
        np.ascontiguousarray(pos_idx, dtype=np.int64),
        np.ascontiguousarray(num_hits, dtype=np.int64),
        int(MAX_HITS_FOR_PASSES if max_hits_for_passes is None else max_hits_for_passes),
        int(EXACT_FLOAT_COUNT),
        ranks,
        has_nan,
    )
    return ranks, has_nan
