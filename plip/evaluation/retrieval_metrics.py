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

Ties (``ties="pessimistic"``, the default; the ranking core :mod:`plip.evaluation.ranking`
also offers ``"optimistic"`` and ``"stable"``)
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

from .ranking import Positives as _Positives
from .ranking import check_ties, hit_ranks
from .ranking import resolve_backend as _resolve_backend

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
    ties: str = "pessimistic",
) -> RetrievalMetrics:
    check_ties(ties)
    if unmatched not in ("exclude", "zero"):
        raise ValueError(f"unmatched must be 'exclude' or 'zero', got {unmatched!r}")
    n_query = len(query_ids)
    positives = _Positives(query_ids, gallery_ids)
    first = np.zeros(n_query, dtype=np.int64)
    ap = np.full(n_query, np.nan)
    inp = np.full(n_query, np.nan)

    def process(rows: slice, scores: np.ndarray) -> None:
        pos_idx, valid = positives.block(rows)
        ranks = hit_ranks(scores, pos_idx, valid, ties=ties, backend=backend, first_row=rows.start)
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
    ties: str = "pessimistic",
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
        ties: how exact score ties are ranked (:mod:`plip.evaluation.ranking`): the
            default ``"pessimistic"`` (module docstring), ``"optimistic"`` or ``"stable"``.

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

    return _metrics(blocks(), q_ids, g_ids, _check_ks(ks), legacy_ap, unmatched, per_query, threads, backend, ties)


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
    ties: str = "pessimistic",
) -> RetrievalMetrics:
    """Retrieval metrics with similarities computed chunk by chunk (bounded memory).

    The score of a query and a gallery item is their dot product (cosine similarity for
    L2-normalised embeddings; pass ``normalize=True`` to normalise here). The full
    similarity matrix is never materialised, so galleries of millions of items work.
    Products run on the embeddings' device in float32. Other arguments (``ties`` too) as in
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

    return _metrics(blocks(), q_ids, g_ids, _check_ks(ks), legacy_ap, unmatched, per_query, threads, backend, ties)


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
