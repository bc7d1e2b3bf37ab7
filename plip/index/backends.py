"""Search backends: FAISS index types, registered by decorator, and the choice of ``auto``.

The exact backend has no index file: it scans the stored embeddings with
:func:`plip.retrieve` (see :mod:`plip.index.exact`). The FAISS backends keep their own
index file beside the embeddings and use row numbers as FAISS ids, so that deleted rows and
metadata filters become an ``IDSelectorBitmap`` at search time.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Callable, Iterator

import numpy as np

from ..errors import PlipError
from .errors import IndexFormatError

# Up to this many rows ``auto`` searches exactly: there one exact query over float16 storage
# still answers in well under 0.1 s on 2 cores (benchmarks/bench_index.py).
EXACT_UP_TO = 200_000
# Up to this many rows ``auto`` uses IVF-Flat (a float32 copy of the vectors: 3 GiB per
# million at 768-d); beyond it IVF-PQ (48 bytes per vector at 768-d).
IVF_FLAT_UP_TO = 2_000_000
TRAIN_SAMPLE_PER_LIST = 64
MAX_TRAIN_SAMPLE = 262_144

_BUILDERS: dict[str, Callable[..., Any]] = {}
_warned_no_faiss = False


def register_backend(name: str) -> Callable:
    """Register ``fn(dim, rows, **params) -> (faiss_index, params)`` as backend ``name``."""

    def wrap(fn: Callable) -> Callable:
        _BUILDERS[name] = fn
        return fn

    return wrap


def backend_names() -> list[str]:
    return ["auto", "exact", *_BUILDERS]


def faiss_module():
    """The ``faiss`` module, or a PlipError saying how to install it."""
    try:
        import faiss
    except ImportError:
        raise PlipError("this backend needs FAISS: pip install 'plip[faiss]' (faiss-cpu)") from None
    return faiss


def has_faiss() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def choose(kind: str, rows: int) -> str:
    """Resolve ``auto`` by size (exact without FAISS, with one note on stderr)."""
    global _warned_no_faiss
    if kind not in backend_names():
        raise PlipError(f"unknown index backend {kind!r} (choose from {', '.join(backend_names())})")
    if kind != "auto":
        return kind
    if rows <= EXACT_UP_TO:
        return "exact"
    if not has_faiss():
        if not _warned_no_faiss:
            print(f"note: FAISS is not installed; searching {rows} rows exactly (pip install 'plip[faiss]')", file=sys.stderr)
            _warned_no_faiss = True
        return "exact"
    return "ivf" if rows <= IVF_FLAT_UP_TO else "ivfpq"


def default_nlist(rows: int) -> int:
    """About sqrt(N) lists (a power of two; 1024 for a million), at least 1, at most N / 39.

    FAISS suggests 4-16 sqrt(N); sqrt(N) trains 4x faster on a CPU and, with nprobe 8, still
    reaches recall@10 >= 0.95 on clustered person embeddings (benchmarks/bench_index.py).
    """
    nlist = 2 ** round(math.log2(max(1.0, math.sqrt(rows))))
    return int(max(1, min(nlist, rows // 39 or 1)))


@register_backend("flat")
def _flat(dim: int, rows: int) -> tuple[Any, dict]:
    faiss = faiss_module()
    return faiss.IndexFlatIP(dim), {}


@register_backend("ivf")
def _ivf(dim: int, rows: int, nlist: int | None = None) -> tuple[Any, dict]:
    faiss = faiss_module()
    nlist = int(nlist or default_nlist(rows))
    return faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT), {"nlist": nlist}


@register_backend("ivfpq")
def _ivfpq(dim: int, rows: int, nlist: int | None = None, m: int | None = None) -> tuple[Any, dict]:
    """IVF with 4-bit fast-scan PQ codes (``m / 2`` bytes per vector); results are re-scored
    exactly from the stored embeddings. 4-bit codes train in seconds where 8-bit ones take
    minutes on a CPU, and the re-scoring recovers the recall."""
    faiss = faiss_module()
    nlist = int(nlist or default_nlist(rows))
    # 8 dimensions per 4-bit code at 768-d (48 bytes a vector); small dims get one code each.
    m = int(m or (next(d for d in (dim // 8, dim // 4, dim // 2, dim) if dim % d == 0) if dim >= 256 else dim))
    if m < 1 or dim % m:
        raise PlipError(f"ivfpq: m={m} must divide the dimension {dim}")
    index = faiss.index_factory(dim, f"IVF{nlist},PQ{m}x4fs", faiss.METRIC_INNER_PRODUCT)
    return index, {"nlist": nlist, "m": m, "nbits": 4}


@register_backend("hnsw")
def _hnsw(dim: int, rows: int, M: int = 32, ef_construction: int = 80) -> tuple[Any, dict]:
    faiss = faiss_module()
    index = faiss.IndexHNSWFlat(dim, int(M), faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = int(ef_construction)
    return index, {"M": int(M), "ef_construction": int(ef_construction)}


def train_sample(rows: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """Sorted row numbers of a uniform sample without replacement."""
    rng = np.random.default_rng(seed)
    if size >= rows.shape[0]:
        return rows
    return np.sort(rng.choice(rows, size=size, replace=False))


class FaissBackend:
    """FAISS indexes over the store, one per segment (row ``r`` of a segment = FAISS id ``r``).

    ``template`` is the empty (trained, for IVF) index that every new segment's part is a
    clone of, so adding rows never touches the parts already written.
    """

    def __init__(self, kind: str, template: Any, params: dict[str, Any], parts: list[Any] | None = None) -> None:
        self.kind, self.template, self.params, self.parts = kind, template, params, parts or []

    @classmethod
    def create(cls, kind: str, dim: int, rows: int, params: dict[str, Any] | None = None) -> "FaissBackend":
        if kind not in _BUILDERS:
            raise PlipError(f"unknown FAISS backend {kind!r} (choose from {', '.join(_BUILDERS)})")
        try:
            index, used = _BUILDERS[kind](dim, rows, **(params or {}))
        except TypeError as err:
            raise PlipError(f"backend {kind}: bad parameters {params} ({err})") from None
        return cls(kind, index, used)

    @property
    def needs_training(self) -> bool:
        return not self.template.is_trained

    def train(self, sample: np.ndarray) -> None:
        nlist = getattr(self.template, "nlist", 1)
        if sample.shape[0] < nlist:
            raise PlipError(f"backend {self.kind}: {sample.shape[0]} training vectors for {nlist} lists")
        self.template.train(np.ascontiguousarray(sample, dtype=np.float32))
        self.params["trained_on"] = int(sample.shape[0])

    def new_part(self, blocks: Iterator[np.ndarray]) -> Any:
        """A new part (clone of the template) holding the given rows."""
        part = faiss_module().clone_index(self.template)
        for block in blocks:
            part.add(np.ascontiguousarray(block, dtype=np.float32))
        return part

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None, *, nprobe: int | None = None, ef: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores and global row numbers ``(Q, k)``, best first; missing hits are row -1."""
        faiss = faiss_module()
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        found_s, found_r = [], []
        offset = 0
        for part in self.parts:
            n = part.ntotal
            local = None if allowed is None else allowed[offset : offset + n]
            if local is not None and not local.any():
                offset += n
                continue
            kwargs: dict[str, Any] = {}
            if local is not None and not local.all():
                bits = np.packbits(local, bitorder="little")
                kwargs["sel"] = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bits))
            if self.kind in ("ivf", "ivfpq"):
                params = faiss.SearchParametersIVF(**kwargs)
                params.nprobe = int(nprobe or self.params.get("nprobe", 8))
            elif self.kind == "hnsw":
                params = faiss.SearchParametersHNSW(**kwargs)
                params.efSearch = int(max(ef or self.params.get("ef", 64), k))
            else:
                params = faiss.SearchParameters(**kwargs) if kwargs else None
            scores, rows = part.search(queries, min(k, n), params=params)
            found_s.append(scores)
            found_r.append(np.where(rows >= 0, rows + offset, -1))
            offset += n
        if not found_s:
            return np.zeros((queries.shape[0], 0), np.float32), np.zeros((queries.shape[0], 0), np.int64)
        if len(found_s) == 1:
            return found_s[0], found_r[0]
        scores, rows = np.concatenate(found_s, 1), np.concatenate(found_r, 1)
        scores = np.where(rows >= 0, scores, -np.inf)
        order = _order(scores, rows)[:, :k]
        return np.take_along_axis(scores, order, 1), np.take_along_axis(rows, order, 1)

    @staticmethod
    def save(index: Any, path: str) -> None:
        faiss_module().write_index(index, path)

    @staticmethod
    def read(path: str, rows: int | None = None) -> Any:
        faiss = faiss_module()
        try:
            index = faiss.read_index(path)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise IndexFormatError(f"{path}: unreadable FAISS index ({first})") from None
        if rows is not None and index.ntotal != rows:
            raise IndexFormatError(f"{path}: FAISS index holds {index.ntotal} vectors, its segment {rows}")
        return index


def _order(scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per query: best score first, ties to the lower row."""
    return np.stack([np.lexsort((r, -s)) for s, r in zip(scores, rows)])
