"""Exact top-k over the stored segments with :func:`plip.retrieve`, in bounded memory.

Without a mask a float32 segment goes to ``plip.retrieve`` whole (it scans in chunks). With a
mask (deleted rows, metadata filters) the allowed rows of each chunk are gathered first, so
excluded rows cost nothing and memory stays one chunk. Results of the blocks merge with the
same tie policy as ``plip.retrieve``: equal scores rank the lower row first.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..inference.retrieval import retrieve

CHUNK = 65536
# float16 rows are widened into a reused float32 buffer of at most this size: below glibc's
# mmap threshold, so it comes from the heap and does not page-fault fresh memory per search.
BUFFER_BYTES = 16 * 2**20


def merge_topk(scores: torch.Tensor, rows: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise top-k of candidate ``(Q, M)`` scores; ties go to the lower row number."""
    by_row = torch.sort(rows, dim=1, stable=True).indices
    scores, rows = torch.gather(scores, 1, by_row), torch.gather(rows, 1, by_row)
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
    return torch.gather(scores, 1, order), torch.gather(rows, 1, order)


@torch.inference_mode()
def exact_search(
    queries: torch.Tensor, segments: Sequence[np.ndarray], k: int, allowed: np.ndarray | None = None,
    *, chunk: int = CHUNK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores and global row numbers ``(Q, k')`` with ``k' = min(k, allowed rows)``.

    float32 segments are scanned in place (memory-mapped); float16 ones are copied chunk by
    chunk into one reused float32 buffer (a fresh ``.float()`` per chunk page-faults new
    memory every time and costs ~6x more than the copy).
    """
    queries = queries.float()
    parts_s, parts_r = [], []
    buffer: torch.Tensor | None = None
    offset = 0
    for seg in segments:
        rows = seg.shape[0]
        whole = allowed is None and seg.dtype == np.float32
        step = rows if whole else (chunk if seg.dtype == np.float32 else max(1, BUFFER_BYTES // (4 * seg.shape[1])))
        for start in range(0, rows, max(step, 1)):
            stop = min(rows, start + step)
            keep = None if allowed is None else np.flatnonzero(allowed[offset + start : offset + stop])
            if keep is not None and keep.size == 0:
                continue
            block = seg[start:stop] if keep is None else seg[start + keep]
            if block.dtype == np.float32:
                gallery = torch.from_numpy(np.ascontiguousarray(block))
            else:
                if buffer is None or buffer.shape[1] != seg.shape[1]:
                    buffer = torch.empty(step, seg.shape[1])
                gallery = buffer[: block.shape[0]]
                gallery.copy_(torch.from_numpy(np.ascontiguousarray(block)))
            hit = retrieve(queries, gallery, top_k=k, gallery_chunk=chunk)
            base = torch.arange(start, stop) if keep is None else torch.from_numpy(keep + start)
            parts_s.append(hit.scores)
            parts_r.append(base[hit.indices] + offset)
        offset += rows
    if not parts_s:
        return torch.empty(queries.shape[0], 0), torch.empty(queries.shape[0], 0, dtype=torch.long)
    if len(parts_s) == 1:
        return parts_s[0], parts_r[0]
    return merge_topk(torch.cat(parts_s, 1), torch.cat(parts_r, 1), k)
