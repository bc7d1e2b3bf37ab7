"""Top-k retrieval over large galleries in bounded memory.

Scores are dot products (cosine similarities for L2-normalised embeddings, which is what
the encoders return by default). The gallery is scanned in chunks and a running top-k is
kept per query, so memory is ``O(query_chunk * gallery_chunk)`` whatever the gallery size.
Ties are broken deterministically: equal scores rank the lower gallery index first.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from ..errors import PlipError


class RetrievalResult(NamedTuple):
    """Top-k gallery indices and scores, best first.

    Shapes are ``(Q, k)`` for a batch of queries and ``(k,)`` for a single query. Both are
    NumPy arrays when the gallery was a NumPy array, tensors otherwise.
    """

    indices: Any  # torch.Tensor | np.ndarray (int64)
    scores: Any  # torch.Tensor | np.ndarray (float32; float64 for float64 inputs)


_NUMPY_FLOATS = (np.float16, np.float32, np.float64)


def _as_tensor(value: Any, what: str) -> torch.Tensor:
    """A tensor view of an embedding matrix given as a tensor or a float16/32/64 NumPy array."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.type not in _NUMPY_FLOATS:
            raise PlipError(
                f"{what}: NumPy embeddings must be float16, float32 or float64, got dtype {value.dtype}"
            )
        return torch.from_numpy(np.ascontiguousarray(value))
    raise PlipError(
        f"{what}: expected a torch.Tensor or a NumPy float array of embeddings, got {type(value).__module__}."
        f"{type(value).__qualname__}"
    )


def topk_stable(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise top-k of ``(Q, N)`` scores (values, column indices), ties broken by lower column index."""
    values, indices = torch.topk(scores, k, dim=1)
    kth = values[:, -1:]
    tied_rows = ((scores >= kth).sum(dim=1) > k) | _has_unsorted_ties(values, indices)
    if tied_rows.any():
        rows = tied_rows.nonzero().squeeze(1)
        sub = scores[rows]
        order = torch.sort(sub, dim=1, descending=True, stable=True).indices[:, :k]
        indices[rows] = order
        values[rows] = torch.gather(sub, 1, order)
    return values, indices


def _has_unsorted_ties(values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    if values.shape[1] < 2:
        return torch.zeros(values.shape[0], dtype=torch.bool, device=values.device)
    equal = values[:, 1:] == values[:, :-1]
    misordered = indices[:, 1:] < indices[:, :-1]
    return (equal & misordered).any(dim=1)


def merge_topk(
    best_v: torch.Tensor, best_i: torch.Tensor, new_v: torch.Tensor, new_i: torch.Tensor, k: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise top-k of two candidate sets (scores, gallery indices); equal scores rank the lower index first."""
    values = torch.cat([best_v, new_v], dim=1)
    indices = torch.cat([best_i, new_i], dim=1)
    # Sort by index first, then stably by score: equal scores keep ascending index order.
    by_index = torch.sort(indices, dim=1, stable=True).indices
    values = torch.gather(values, 1, by_index)
    indices = torch.gather(indices, 1, by_index)
    order = torch.sort(values, dim=1, descending=True, stable=True).indices[:, :k]
    return torch.gather(values, 1, order), torch.gather(indices, 1, order)


def retrieve(
    query: torch.Tensor | np.ndarray,
    gallery: torch.Tensor | np.ndarray,
    top_k: int = 10,
    *,
    query_chunk: int = 1024,
    gallery_chunk: int = 65536,
    device: torch.device | str | None = None,
) -> RetrievalResult:
    """Return the ``top_k`` gallery entries with the highest dot product for each query.

    Embeddings may be tensors or float16 / float32 / float64 NumPy arrays (what FAISS users
    hold); anything else is a :class:`~plip.errors.PlipError` naming the type. The result
    has the gallery's type: NumPy arrays (``int64`` indices) for a NumPy gallery, tensors
    otherwise. Scores are computed in float64 when either input is float64, else in float32.

    Args:
        query: ``(Q, D)`` or ``(D,)`` query embeddings.
        gallery: ``(N, D)`` gallery embeddings (may live on CPU and be huge).
        top_k: entries to return per query (capped at ``N``).
        query_chunk: queries per block (bounds memory).
        gallery_chunk: gallery entries per block (bounds memory).
        device: where to compute (default: the query's device).
    """
    as_numpy = isinstance(gallery, np.ndarray)
    query, gallery = _as_tensor(query, "query"), _as_tensor(gallery, "gallery")
    result = _retrieve(query, gallery, top_k, query_chunk, gallery_chunk, device)
    if as_numpy:
        return RetrievalResult(result.indices.cpu().numpy(), result.scores.cpu().numpy())
    return result


@torch.inference_mode()
def _retrieve(query, gallery, top_k, query_chunk, gallery_chunk, device) -> RetrievalResult:
    single = query.dim() == 1
    if single:
        query = query.unsqueeze(0)
    if query.dim() != 2 or gallery.dim() != 2:
        raise PlipError(f"expected 2-D embeddings, got query {tuple(query.shape)} and gallery {tuple(gallery.shape)}")
    if query.shape[1] != gallery.shape[1]:
        raise PlipError(
            f"query dimension {query.shape[1]} does not match gallery dimension {gallery.shape[1]}"
        )
    if top_k < 1:
        raise PlipError(f"top_k must be >= 1, got {top_k}")
    device = torch.device(device) if device is not None else query.device
    dtype = torch.float64 if torch.float64 in (query.dtype, gallery.dtype) else torch.float32
    k = min(top_k, gallery.shape[0])
    all_v, all_i = [], []
    for q0 in range(0, query.shape[0], query_chunk):
        q = query[q0 : q0 + query_chunk].to(device=device, dtype=dtype)
        best_v = torch.empty(q.shape[0], 0, device=device, dtype=dtype)
        best_i = torch.empty(q.shape[0], 0, dtype=torch.long, device=device)
        for g0 in range(0, gallery.shape[0], gallery_chunk):
            g = gallery[g0 : g0 + gallery_chunk].to(device=device, dtype=dtype)
            v, i = topk_stable(q @ g.T, min(k, g.shape[0]))
            best_v, best_i = merge_topk(best_v, best_i, v, i + g0, k)
        all_v.append(best_v)
        all_i.append(best_i)
    values = torch.cat(all_v) if all_v else torch.empty(0, k, device=device, dtype=dtype)
    indices = torch.cat(all_i) if all_i else torch.empty(0, k, dtype=torch.long, device=device)
    if single:
        return RetrievalResult(indices[0], values[0])
    return RetrievalResult(indices, values)
