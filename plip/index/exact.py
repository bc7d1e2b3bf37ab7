"""Exact top-k over the stored segments, in bounded memory, with :func:`plip.retrieve`'s results.

Rows are scored a block at a time into one reused ``(block, Q)`` buffer and each block's
top-k is merged into the running one, with the tie policy of :func:`plip.retrieve` (equal
scores rank the lower row first) through its own helpers. Per block:

- float32 rows are scored in place from the memory map: one matrix product, no copy;
- float16 rows are widened into a small float32 buffer (``WIDEN_BYTES``, a few MiB that stay
  in cache) just before their product: half the bytes of a float32 store are read and
  no float32 copy of the block is ever written to memory;
- with a mask (deleted rows, metadata filters), a mostly-allowed block is scored whole and
  the excluded rows set to -inf; a mostly-excluded one gathers its allowed rows first, so
  they alone cost a product.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..inference.retrieval import merge_topk, topk_stable

BLOCK = 32768
# float16 rows are widened this many bytes of float32 at a time (1024 rows at 768-d). Widening
# whole blocks instead writes and re-reads a float32 copy: single-query search on a float16
# store took 0.29x the time of plip.retrieve on float32 (benchmarks/bench_index.py, 1M x 768);
# 3 MiB stays in cache and brings it to 1.0x. Much smaller pieces cost more in per-call overhead.
WIDEN_BYTES = 3 * 2**20
# Blocks with fewer allowed rows than this fraction gather them; others are scored whole.
GATHER_BELOW = 0.5


class _Buffers:
    """The reused scratch memory of one search."""

    def __init__(self, queries: int, dim: int, block: int) -> None:
        self.scores = torch.empty(block, queries)
        self.dim = dim
        self.rows = max(1, min(block, WIDEN_BYTES // (4 * dim)))  # rows widened or gathered at a time
        self._wide: torch.Tensor | None = None
        self._gathered: dict[np.dtype, np.ndarray] = {}

    def wide(self, rows: int) -> torch.Tensor:
        if self._wide is None:
            self._wide = torch.empty(self.rows, self.dim)
        return self._wide[:rows]

    def gather(self, seg: np.ndarray, rows: np.ndarray) -> np.ndarray:
        out = self._gathered.get(seg.dtype)
        if out is None:
            out = self._gathered[seg.dtype] = np.empty((self.rows, self.dim), dtype=seg.dtype)
        return np.take(seg, rows, axis=0, out=out[: rows.size], mode="clip")  # "clip": no buffering


def _score(seg: np.ndarray, start: int, stop: int, rows: np.ndarray | None, qt: torch.Tensor,
           buffers: _Buffers) -> torch.Tensor:
    """``(count, Q)`` scores of rows ``start:stop`` of ``seg`` (or of the rows ``rows``)."""
    count = stop - start if rows is None else rows.size
    out = buffers.scores[:count]
    if rows is None and seg.dtype == np.float32:
        torch.mm(torch.from_numpy(seg[start:stop]), qt, out=out)
        return out
    for s in range(0, count, buffers.rows):
        e = min(count, s + buffers.rows)
        part = seg[start + s : start + e] if rows is None else buffers.gather(seg, rows[s:e])
        if part.dtype == np.float32:
            wide = torch.from_numpy(part)
        else:
            wide = buffers.wide(e - s)
            wide.copy_(torch.from_numpy(part))
        torch.mm(wide, qt, out=out[s:e])
    return out


@torch.inference_mode()
def exact_search(
    queries: torch.Tensor, segments: Sequence[np.ndarray], k: int, allowed: np.ndarray | None = None,
    *, block: int = BLOCK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores and global row numbers ``(Q, k')`` with ``k' = min(k, allowed rows)``, best first."""
    queries = queries.float().contiguous()
    nq = queries.shape[0]
    best_s, best_r = torch.empty(nq, 0), torch.empty(nq, 0, dtype=torch.long)
    if not segments:
        return best_s, best_r
    qt = queries.T
    buffers = _Buffers(nq, queries.shape[1], block)
    offset = 0
    for seg in segments:
        for start in range(0, seg.shape[0], block):
            stop = min(seg.shape[0], start + block)
            keep, rows, live = None, None, stop - start
            if allowed is not None:
                keep = allowed[offset + start : offset + stop]
                live = int(np.count_nonzero(keep))
                if live == 0:
                    continue
                if live == keep.size:
                    keep = None
                elif live < GATHER_BELOW * keep.size:
                    rows, keep = np.flatnonzero(keep) + start, None
            scores = _score(seg, start, stop, rows, qt, buffers)
            if keep is not None:
                scores[torch.from_numpy(~keep)] = -torch.inf
            v, i = topk_stable(scores.T, min(k, live))
            found = (i + start) if rows is None else torch.from_numpy(rows)[i]
            best_s, best_r = merge_topk(best_s, best_r, v, found + offset, k)
        offset += seg.shape[0]
    return best_s, best_r
