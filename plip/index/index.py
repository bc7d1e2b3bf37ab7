""":class:`Index`: a persistent, incremental gallery of person embeddings with fast search."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch

from ..errors import PlipError
from ..utils.io import atomic_path, atomic_write_text
from ..inference import shards
from . import backends, filters, storage
from .distributed import ranks
from .errors import IndexFormatError, ModelMismatchError
from .exact import exact_search
from ..inference.fingerprint import model_fingerprint
from .spec import check_model, model_spec

BLOCK = 65536
# IVF-PQ candidates re-scored exactly from the stored embeddings, per requested hit: 4-bit
# codes confuse close neighbours; 50 x k candidates give recall@10 1.0 where 10 x k gave 0.49
# (100k x 768 clustered, nprobe 8), for a few ms of gathering rows.
PQ_REFINE = 50


@dataclass(frozen=True)
class Hit:
    """One search result."""

    rank: int  # 1-based
    score: float  # dot product with the query (cosine for normalised embeddings)
    id: str
    path: str
    row: int  # row in the index (stable until the index is compacted or rebuilt)
    metadata: dict[str, Any] = field(default_factory=dict)


class Index:
    """An index folder (see :mod:`plip.index.storage` for its layout), opened for search and updates.

    >>> index = plip.Index.build("crops.index", model, "crops/")      # doctest: +SKIP
    >>> index.search(text="a woman in a red coat", model=model, top_k=5)  # doctest: +SKIP
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.manifest = storage.read_manifest(self.folder)
        self.dim, self.dtype = int(self.manifest["dim"]), self.manifest["dtype"]
        self.segments = [storage.read_segment(self.folder, e, self.dim, self.dtype) for e in self.manifest["segments"]]
        self.rows = sum(len(s) for s in self.segments)
        name = self.manifest.get("deleted")
        self.deleted = storage.read_mask(self.folder, name, self.rows) if name else np.zeros(self.rows, dtype=bool)
        self.backend = _load_backend(self.folder, self.manifest["backend"], self.manifest["segments"])
        self._id_rows: dict[str, int] | None = None
        self._coded: dict[str, filters.CodedColumn] = {}  # filter columns, built on first use

    # -- opening and creating ---------------------------------------------------------
    @classmethod
    def open(cls, folder: str | os.PathLike) -> "Index":
        """Open an existing index (a clear :class:`IndexFormatError` when it is incomplete or corrupt)."""
        return cls(folder)

    @classmethod
    def from_embeddings(
        cls, folder: str | os.PathLike, embeddings: np.ndarray | torch.Tensor, ids: Sequence[str], *,
        paths: Sequence[str] | None = None, metadata: Mapping[str, Mapping[str, Any]] | None = None,
        model: Any = None, model_info: dict[str, Any] | None = None, backend: str = "auto",
        backend_params: dict[str, Any] | None = None, dtype: str = "float16", overwrite: bool = False,
    ) -> "Index":
        """Create an index from embeddings already computed (``plip encode`` files, other tools).

        ``model`` (or a ``model_info`` dict) records which model made them; without one, any
        model of the right dimension may search the index.
        """
        folder = _new_folder(folder, overwrite)
        embeddings = _as_numpy(embeddings)
        ids = list(ids)
        paths = list(paths) if paths is not None else list(ids)
        _check_ids(ids, set(), str(folder))
        columns = _columns(ids, metadata)
        info = model_spec(model) if model is not None else (model_info or None)
        blocks = (embeddings[s : s + BLOCK] for s in range(0, embeddings.shape[0], BLOCK))
        _create(folder, blocks, embeddings.shape[0], embeddings.shape[1], dtype, ids, paths, columns, info,
                backend, backend_params, skipped=[])
        return cls(folder)

    @classmethod
    def build(
        cls, folder: str | os.PathLike, model: Any, images: str | os.PathLike | Sequence[str | os.PathLike], *,
        metadata: Mapping[str, Mapping[str, Any]] | None = None, backend: str = "auto",
        backend_params: dict[str, Any] | None = None, dtype: str = "float16", batch_size: int = 64,
        workers: int = 0, skip_bad: bool = False, shard_size: int = 4096, progress: bool = False,
        restart: bool = False, overwrite: bool = False,
    ) -> "Index | None":
        """Encode every image under ``images`` with ``model`` and index them.

        Crash-safe: shards of ``shard_size`` images are written atomically to
        ``folder/.build`` and a second call with the same arguments resumes after the done
        shards (``restart`` throws them away). Under ``torchrun`` every rank calls this; each
        encodes its share of the shards and rank 0 merges (other ranks get the opened index
        too, after rank 0 finished). ids are the paths relative to the images' common folder.
        """
        folder = Path(folder)
        if (folder / storage.MANIFEST).is_file() and not overwrite:
            raise PlipError(f"{folder}: already an index (use `add` for new images, or overwrite)")
        if dtype not in storage.DTYPES:
            raise PlipError(f"dtype must be one of {storage.DTYPES}, got {dtype!r}")
        backends.choose(backend, 0)  # fail on a bad name before encoding anything
        root, files = shards.find_images(images)
        spec = model_spec(model)
        encoded = _encode(folder / ".build", model, root, files, spec["fingerprint"], batch_size=batch_size,
                          workers=workers, skip_bad=skip_bad, shard_size=shard_size, progress=progress, restart=restart)
        if encoded is not None:
            if overwrite and (folder / storage.MANIFEST).is_file():
                os.unlink(folder / storage.MANIFEST)
            kept, bad, blocks = encoded
            ids = [files[i] for i in kept]
            skipped = [{"path": os.path.join(root, files[i]), "error": e} for i, e in bad]
            _create(folder, blocks, len(ids), model.embed_dim, dtype, ids, [os.path.join(root, f) for f in ids],
                    _columns(ids, metadata), spec, backend, backend_params, skipped)
            shutil.rmtree(folder / ".build", ignore_errors=True)
        ctx = ranks()
        ctx.barrier()
        return cls(folder)

    # -- reading --------------------------------------------------------------------
    def __len__(self) -> int:
        """Live (not deleted) entries."""
        return int(self.rows - self.deleted.sum())

    @property
    def ids(self) -> list[str]:
        """Ids of all rows (deleted ones included), in row order."""
        return [i for s in self.segments for i in s.ids]

    @property
    def paths(self) -> list[str]:
        return [p for s in self.segments for p in s.paths]

    def column(self, name: str) -> list[Any]:
        """Values of a metadata column (``id`` and ``path`` included) for every row; None where unset."""
        if name == "id":
            return self.ids
        if name == "path":
            return self.paths
        if name not in self.columns:
            raise PlipError(f"{self.folder}: no column {name!r} (columns: {', '.join(['id', 'path', *self.columns])})")
        return [v for s in self.segments for v in s.columns.get(name, [None] * len(s))]

    @property
    def columns(self) -> list[str]:
        names: dict[str, None] = {}
        for s in self.segments:
            names.update(dict.fromkeys(s.columns))
        return list(names)

    def embeddings(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Stored embeddings of the given rows (float32)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((rows.shape[0], self.dim), dtype=np.float32)
        starts = np.cumsum([0] + [len(s) for s in self.segments])
        which = np.searchsorted(starts, rows, side="right") - 1
        for k, seg in enumerate(self.segments):
            sel = np.flatnonzero(which == k)
            if sel.size:
                out[sel] = seg.embeddings[rows[sel] - starts[k]]
        return out

    def row_of(self, id: str) -> int:
        if self._id_rows is None:
            self._id_rows = {i: r for r, i in enumerate(self.ids) if not self.deleted[r]}
        if id not in self._id_rows:
            raise PlipError(f"{self.folder}: no entry with id {id!r}")
        return self._id_rows[id]

    def info(self) -> dict[str, Any]:
        """A summary: counts, dtype, backend and its parameters, model, files and sizes."""
        size = sum(p.stat().st_size for p in self.folder.iterdir() if p.is_file())
        model = self.manifest.get("model") or {}
        return {
            "folder": str(self.folder), "entries": len(self), "rows": self.rows, "deleted": int(self.deleted.sum()),
            "dim": self.dim, "dtype": self.dtype, "segments": len(self.segments),
            "backend": self.manifest["backend"]["kind"], "backend_params": self.manifest["backend"].get("params", {}),
            "model": model.get("name"), "fingerprint": model.get("fingerprint"), "columns": self.columns,
            "skipped_images": len(self._skipped()), "bytes": size, "generation": self.manifest["generation"],
        }

    def _skipped(self) -> list[dict[str, str]]:
        path = self.folder / "skipped.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []

    # -- search ---------------------------------------------------------------------
    def search(
        self, text: str | Sequence[str] | None = None, *, image: Any = None, embedding: Any = None, model: Any = None,
        top_k: int = 10, where: str | Sequence[str] | Mapping[str, Any] | None = None, nprobe: int | None = None,
        ef: int | None = None, exact: bool = False, refine: int | None = None,
    ) -> list[list[Hit]]:
        """Top-k hits per query: texts first, then images, then embedding rows.

        Args:
            text: caption(s); needs ``model``.
            image: image path(s) / PIL image(s); needs ``model``.
            embedding: ``(D,)`` or ``(Q, D)`` query embeddings (used as given).
            model: the model the index was built with (checked by fingerprint).
            top_k: hits per query.
            where: metadata filters (see :mod:`plip.index.filters`).
            nprobe: IVF lists probed (default 8); ef: HNSW search width (default 64).
            exact: scan exactly even when a FAISS backend exists.
            refine: ivfpq only: candidates re-scored exactly per hit (default 50).
        """
        if top_k < 1:
            raise PlipError(f"top_k must be >= 1, got {top_k}")
        queries = self._queries(text, image, embedding, model)
        for_filter = filters.parse(where)
        mask = None
        if for_filter or self.deleted.any():
            mask = ~self.deleted
            if for_filter:
                mask &= filters.mask(for_filter, {n: self._coded_column(n) for n in {c for c, _, _ in for_filter}},
                                     self.rows)
        if self.backend is None or exact:
            segs = [s.embeddings for s in self.segments]
            scores, rows = exact_search(torch.from_numpy(queries), segs, top_k, mask)
            scores, rows = scores.numpy(), rows.numpy()
        else:
            fetch = top_k * (refine or PQ_REFINE) if self.backend.kind == "ivfpq" else top_k
            scores, rows = self.backend.search(queries, min(fetch, self.rows), mask, nprobe=nprobe, ef=ef)
            if self.backend.kind == "ivfpq":
                scores, rows = self._rescore(queries, rows, top_k)
        return [self._hits(s, r) for s, r in zip(scores, rows)]

    def _coded_column(self, name: str) -> filters.CodedColumn:
        if name not in self._coded:
            self._coded[name] = filters.CodedColumn(self.column(name))
        return self._coded[name]

    def _queries(self, text, image, embedding, model) -> np.ndarray:
        parts = []
        if text is not None or image is not None:
            if model is None:
                raise PlipError("searching by text or image needs the model the index was built with (model=...)")
            self.check_model(model)
            if text is not None:
                parts.append(model.encode_text([text] if isinstance(text, str) else list(text)).cpu().numpy())
            if image is not None:
                items = image if isinstance(image, (list, tuple)) else [image]
                parts.append(model.encode_image(list(items)).cpu().numpy())
        if embedding is not None:
            q = _as_numpy(embedding).astype(np.float32)
            q = q[None] if q.ndim == 1 else q
            if q.ndim != 2 or q.shape[1] != self.dim:
                raise PlipError(f"query embeddings of shape {q.shape} do not match the index dimension {self.dim}")
            parts.append(q)
        if not parts:
            raise PlipError("give a text, an image or an embedding to search for")
        return np.ascontiguousarray(np.concatenate(parts).astype(np.float32))

    def check_model(self, model: Any) -> None:
        """Raise :class:`ModelMismatchError` unless ``model`` built this index."""
        check_model(self.manifest.get("model"), model, str(self.folder), self.dim)

    def _rescore(self, queries: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        out_s = np.full((rows.shape[0], k), -np.inf, dtype=np.float32)
        out_r = np.full((rows.shape[0], k), -1, dtype=np.int64)
        for q in range(rows.shape[0]):
            cand = np.unique(rows[q][rows[q] >= 0])
            if cand.size == 0:
                continue
            scores = self.embeddings(cand) @ queries[q]
            order = np.lexsort((cand, -scores))[:k]
            out_s[q, : order.size], out_r[q, : order.size] = scores[order], cand[order]
        return out_s, out_r

    def _hits(self, scores: np.ndarray, rows: np.ndarray) -> list[Hit]:
        starts = np.cumsum([0] + [len(s) for s in self.segments])
        hits = []
        for score, row in zip(scores.tolist(), rows.tolist()):
            if row < 0:
                continue
            k = int(np.searchsorted(starts, row, side="right") - 1)
            seg, r = self.segments[k], row - int(starts[k])
            meta = {c: v[r] for c, v in seg.columns.items() if v[r] is not None}
            hits.append(Hit(len(hits) + 1, float(score), seg.ids[r], seg.paths[r], int(row), meta))
        return hits

    # -- updates --------------------------------------------------------------------
    def add(
        self, images: str | os.PathLike | Sequence[str | os.PathLike], model: Any, *,
        metadata: Mapping[str, Mapping[str, Any]] | None = None, id_prefix: str = "", batch_size: int = 64,
        workers: int = 0, skip_bad: bool = False, shard_size: int = 4096, progress: bool = False,
    ) -> int:
        """Encode and append the images under ``images`` not indexed yet (by absolute path);
        nothing already in the index is encoded again. Returns the number added. Resumable
        like :meth:`build` (shards in ``folder/.add``)."""
        self.check_model(model)
        root, files = shards.find_images(images)
        known = {p for p, dead in zip(self.paths, self.deleted) if not dead}
        files = [f for f in files if os.path.join(root, f) not in known]
        added = 0
        if files:
            encoded = _encode(self.folder / ".add", model, root, files, model_fingerprint(model),
                              batch_size=batch_size, workers=workers, skip_bad=skip_bad, shard_size=shard_size,
                              progress=progress, restart=False)
            if encoded is not None:
                kept, bad, blocks = encoded
                rel = [files[i] for i in kept]
                ids = [id_prefix + f for f in rel]
                skipped = [{"path": os.path.join(root, files[i]), "error": e} for i, e in bad]
                self._append(blocks, ids, [os.path.join(root, f) for f in rel], _columns(rel, metadata), skipped)
                shutil.rmtree(self.folder / ".add", ignore_errors=True)
                added = len(ids)
        ranks().barrier()
        self.__init__(self.folder)
        return added

    def add_embeddings(
        self, embeddings: np.ndarray | torch.Tensor, ids: Sequence[str], *, paths: Sequence[str] | None = None,
        metadata: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> int:
        """Append embeddings computed elsewhere (same model); returns the number added."""
        embeddings = _as_numpy(embeddings)
        if embeddings.ndim != 2 or embeddings.shape[1] != self.dim:
            raise PlipError(f"embeddings of shape {embeddings.shape} do not match the index dimension {self.dim}")
        ids = list(ids)
        blocks = (embeddings[s : s + BLOCK] for s in range(0, embeddings.shape[0], BLOCK))
        self._append(blocks, ids, list(paths) if paths is not None else ids, _columns(ids, metadata), [],
                     rows=embeddings.shape[0])
        return len(ids)

    def delete(self, ids: Iterable[str]) -> int:
        """Delete entries by id (rows become tombstones, filtered out of every search;
        :meth:`compact` removes them from the files)."""
        rows = [self.row_of(i) for i in dict.fromkeys(ids)]
        if not rows:
            return 0
        mask = self.deleted.copy()
        mask[rows] = True
        gen = self.manifest["generation"] + 1
        name = f"deleted-{gen:06d}.npy"
        storage.write_mask(self.folder, name, mask)
        self._commit({**self.manifest, "generation": gen, "deleted": name}, reload=False)
        self.deleted, self._id_rows = mask, None
        return len(rows)

    def compact(self) -> int:
        """Rewrite the store without the deleted rows; returns how many rows were dropped.

        The live rows keep their order and go into one new segment (the segments of many
        ``add`` calls become one); a FAISS backend gets one new part, cloned from its trained
        template and filled with the live rows (no retraining; FAISS ids are row numbers, so
        they are renumbered with the rows). As with every change the new files come first
        and the manifest last: a crash leaves the old index readable, and the next change
        removes the files the crash left. Ids stay; row numbers (``Hit.row``) change.
        """
        dropped = int(self.deleted.sum())
        if dropped == 0 and len(self.segments) <= 1:
            return 0
        live = np.flatnonzero(~self.deleted)
        if live.size == 0:
            raise PlipError(f"{self.folder}: every entry is deleted; compacting would leave an empty index "
                            "(remove the folder, or build a new index)")
        ids, paths = self.ids, self.paths
        columns = {}
        for column in self.columns:
            values = self.column(column)
            columns[column] = [values[r] for r in live]
        gen = self.manifest["generation"] + 1
        name = f"seg-{gen:06d}"
        entry = storage.write_segment(self.folder, name, self._live_blocks(), int(live.size), self.dim, self.dtype,
                                      [ids[r] for r in live], [paths[r] for r in live], columns)
        manifest = {**self.manifest, "generation": gen, "segments": [entry], "deleted": None}
        if self.backend is not None:
            new = storage.read_segment(self.folder, entry, self.dim, self.dtype)
            part = self.backend.new_part(new.embeddings[s : s + BLOCK] for s in range(0, len(new), BLOCK))
            file = f"faiss-{gen:06d}-{name}.index"
            with atomic_path(self.folder / file) as tmp:
                self.backend.save(part, tmp)
            del part, new
            manifest["backend"] = {**manifest["backend"], "parts": {name: file}}
        self._commit(manifest)
        return dropped

    def _live_blocks(self) -> Iterator[np.ndarray]:
        """The stored embeddings of the live rows, in row order, at most BLOCK rows at a time."""
        offset = 0
        for seg in self.segments:
            keep = np.flatnonzero(~self.deleted[offset : offset + len(seg)])
            for s in range(0, keep.size, BLOCK):
                yield seg.embeddings[keep[s : s + BLOCK]]
            offset += len(seg)

    def reindex(self, backend: str = "auto", backend_params: dict[str, Any] | None = None) -> None:
        """Rebuild the search backend from the stored embeddings (no encoding)."""
        gen = self.manifest["generation"] + 1
        entry = _make_backend(self.folder, backend, backend_params, self.segments, gen)
        self._commit({**self.manifest, "generation": gen, "backend": entry})

    def export_parquet(self, path: str | os.PathLike, *, rows_per_group: int = 65536) -> int:
        """Write live entries (id, path, metadata columns, embedding) as Parquet; returns the count."""
        from .export import write_parquet

        return write_parquet(self, path, rows_per_group=rows_per_group)

    def _append(self, blocks: Iterator[np.ndarray], ids: list[str], paths: list[str], columns: dict[str, list],
                skipped: list[dict], rows: int | None = None) -> None:
        live = {i for i, dead in zip(self.ids, self.deleted) if not dead}
        _check_ids(ids, live, str(self.folder))
        rows = len(ids) if rows is None else rows
        gen = self.manifest["generation"] + 1
        name = f"seg-{gen:06d}"
        entry = storage.write_segment(self.folder, name, blocks, rows, self.dim, self.dtype, ids, paths, columns)
        new = storage.read_segment(self.folder, entry, self.dim, self.dtype)
        manifest = {**self.manifest, "generation": gen, "segments": [*self.manifest["segments"], entry]}
        mask = np.concatenate([self.deleted, np.zeros(rows, dtype=bool)])
        manifest["deleted"] = f"deleted-{gen:06d}.npy"
        storage.write_mask(self.folder, manifest["deleted"], mask)
        part = None
        if self.backend is not None:
            part = self.backend.new_part(new.embeddings[s : s + BLOCK] for s in range(0, rows, BLOCK))
            file = f"faiss-{gen:06d}-{name}.index"
            with atomic_path(self.folder / file) as tmp:
                self.backend.save(part, tmp)
            entry_b = manifest["backend"]
            manifest["backend"] = {**entry_b, "parts": {**entry_b["parts"], name: file}}
        if skipped:
            _write_skipped(self.folder, self._skipped() + skipped)
        self._commit(manifest, reload=False)
        # Update in memory: re-opening would read every FAISS part again.
        self.segments.append(new)
        self.rows += rows
        self.deleted = mask
        if part is not None:
            self.backend.parts.append(part)
        self._id_rows, self._coded = None, {}

    def _commit(self, manifest: dict[str, Any], reload: bool = True) -> None:
        manifest = {k: v for k, v in manifest.items() if k not in ("format", "version", "plip_version")}
        storage.write_manifest(self.folder, manifest)
        storage.remove_unreferenced(self.folder, manifest)
        if reload:
            self.__init__(self.folder)
        else:
            self.manifest = storage.read_manifest(self.folder)


# -- helpers ---------------------------------------------------------------------------
def _as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.float() if x.dtype == torch.bfloat16 else x
        return x.numpy()
    return np.asarray(x)


def _new_folder(folder: str | os.PathLike, overwrite: bool) -> Path:
    folder = Path(folder)
    if (folder / storage.MANIFEST).is_file():
        if not overwrite:
            raise PlipError(f"{folder}: already an index (use add, or overwrite)")
        os.unlink(folder / storage.MANIFEST)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _check_ids(ids: list[str], existing: set[str], where: str) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen or i in existing:
            raise PlipError(f"{where}: id {i!r} is already in the index (give new images an id prefix)")
        seen.add(i)


def _columns(keys: list[str], metadata: Mapping[str, Mapping[str, Any]] | None) -> dict[str, list[Any]]:
    """Columns for rows keyed (in ``metadata``) by ``keys``; None where a row has no value."""
    if not metadata:
        return {}
    names: dict[str, None] = {}
    for row in metadata.values():
        if not isinstance(row, Mapping):
            raise PlipError(f"metadata rows must be objects of column: value, got {type(row).__name__}")
        names.update(dict.fromkeys(row))
    for reserved in ("id", "path"):
        names.pop(reserved, None)
    return {n: [metadata.get(k, {}).get(n) for k in keys] for n in names}


def _write_skipped(folder: Path, skipped: list[dict]) -> None:
    atomic_write_text(folder / "skipped.json", json.dumps(skipped, indent=1) + "\n")


def _encode(work: Path, model: Any, root: str, files: list[str], fingerprint: str, *, batch_size: int, workers: int,
            skip_bad: bool, shard_size: int, progress: bool, restart: bool):
    """Run the sharded encoding on every rank; on rank 0 ``(kept, bad, blocks)``, else None."""
    ctx = ranks()
    try:
        done = shards.encode_resumable(
            model, root, files, work, fingerprint=fingerprint, shard_size=shard_size,
            batch_size=batch_size, workers=workers, skip_bad=skip_bad, progress=progress, restart=restart,
            rank=ctx.rank, world=ctx.world, barrier=ctx.barrier,
        )
        if done is None:
            return None
        shards.report_bad(done.bad, files)
        if not done.kept:
            raise PlipError(f"none of the {len(files)} images under {root} could be read")
        return done.kept, done.bad, done.blocks()
    except BaseException:
        ctx.close()
        raise


def _create(folder: Path, blocks: Iterable[np.ndarray], rows: int, dim: int, dtype: str, ids: list[str],
            paths: list[str], columns: dict[str, list], model: dict | None, backend: str,
            backend_params: dict | None, skipped: list[dict]) -> None:
    if dtype not in storage.DTYPES:
        raise PlipError(f"dtype must be one of {storage.DTYPES}, got {dtype!r}")
    if rows == 0:
        raise PlipError(f"{folder}: nothing to index")
    gen = 1
    entry = storage.write_segment(folder, f"seg-{gen:06d}", blocks, rows, dim, dtype, ids, paths, columns)
    segment = storage.read_segment(folder, entry, dim, dtype)
    backend_entry = _make_backend(folder, backend, backend_params, [segment], gen)
    if skipped:
        _write_skipped(folder, skipped)
    manifest = {"dim": dim, "dtype": dtype, "generation": gen, "segments": [entry], "deleted": None,
                "backend": backend_entry, "model": model}
    storage.write_manifest(folder, manifest)
    storage.remove_unreferenced(folder, {**manifest})


def _make_backend(folder: Path, kind: str, params: dict | None, segments: list[storage.Segment], gen: int) -> dict:
    """Train (on a sample of all rows) and fill one FAISS part per segment; the manifest entry."""
    arrays = [s.embeddings for s in segments]
    rows = sum(a.shape[0] for a in arrays)
    kind = backends.choose(kind, rows)
    if kind == "exact":
        return {"kind": "exact", "params": {}}
    backend = backends.FaissBackend.create(kind, arrays[0].shape[1], rows, params)
    entry: dict[str, Any] = {"kind": kind, "params": backend.params, "template": None, "parts": {}}
    if backend.needs_training:
        nlist, nbits = getattr(backend.template, "nlist", 1), backend.params.get("nbits", 0)
        size = min(rows, backends.MAX_TRAIN_SAMPLE, max(backends.TRAIN_SAMPLE_PER_LIST * nlist, 39 * 2**nbits))
        sample_rows = backends.train_sample(np.arange(rows), size)
        starts = np.cumsum([0] + [a.shape[0] for a in arrays])
        which = np.searchsorted(starts, sample_rows, side="right") - 1
        sample = np.concatenate([arrays[k][sample_rows[which == k] - starts[k]] for k in range(len(arrays))])
        backend.train(sample.astype(np.float32))
        del sample
    entry["template"] = f"faiss-{gen:06d}-template.index"
    with atomic_path(folder / entry["template"]) as tmp:
        backend.save(backend.template, tmp)
    for seg in segments:
        part = backend.new_part(seg.embeddings[s : s + BLOCK] for s in range(0, len(seg), BLOCK))
        entry["parts"][seg.name] = f"faiss-{gen:06d}-{seg.name}.index"
        with atomic_path(folder / entry["parts"][seg.name]) as tmp:
            backend.save(part, tmp)
        del part
    return entry


def _load_backend(folder: Path, entry: dict[str, Any], segments: list[dict]) -> backends.FaissBackend | None:
    if entry["kind"] == "exact":
        return None
    files = [entry.get("template")] + [entry.get("parts", {}).get(s["name"]) for s in segments]
    for file in files:
        if not file or not (folder / file).is_file():
            raise IndexFormatError(f"{folder}: a file of the {entry['kind']} backend is missing ({file}): the index is incomplete")
    template = backends.FaissBackend.read(str(folder / entry["template"]))
    parts = [backends.FaissBackend.read(str(folder / entry["parts"][s["name"]]), s["rows"]) for s in segments]
    return backends.FaissBackend(entry["kind"], template, dict(entry.get("params", {})), parts)
