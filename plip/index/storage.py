"""The index folder: a manifest, immutable segments, a deletion mask and the backend file.

Layout (everything but ``index.json`` is immutable once written)::

    index.json              the manifest, written last and atomically: the commit point
    seg-000000.npy          (rows, dim) float16/float32 embeddings, memory-mapped on open
    seg-000000.json         {"ids": [...], "paths": [...], "columns": {"camera": [...], ...}}
    deleted-000003.npy      bool mask over all rows (deleted rows stay as tombstones)
    faiss-000001-template.index        the empty (trained) FAISS index new parts are cloned from
    faiss-000001-seg-000001.index      one FAISS part per segment (none for the exact backend)
    skipped.json            unreadable images reported by --skip-bad

Every change writes new files under a new generation number, then the manifest; a crash
before the manifest leaves the old index intact (stray files are removed on the next change).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..utils.io import atomic_path, atomic_write_text
from ..version import __version__
from .errors import IndexFormatError

MANIFEST = "index.json"
FORMAT = "plip-index"
FORMAT_VERSION = 1
DTYPES = ("float16", "float32")


@dataclass
class Segment:
    """One immutable block of rows: embeddings (memory-mapped) and their ids/paths/columns."""

    name: str
    embeddings: np.ndarray
    ids: list[str]
    paths: list[str]
    columns: dict[str, list[Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


def write_segment(
    folder: Path, name: str, blocks: Iterable[np.ndarray], rows: int, dim: int, dtype: str,
    ids: list[str], paths: list[str], columns: dict[str, list[Any]],
) -> dict[str, Any]:
    """Write ``name``.npy (streamed from row blocks totalling ``rows``) and ``name``.json."""
    if rows != len(ids) or rows != len(paths) or any(len(v) != rows for v in columns.values()):
        raise IndexFormatError(f"segment {name}: {rows} embeddings for {len(ids)} ids / {len(paths)} paths")
    with atomic_path(folder / f"{name}.npy") as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(rows, dim))
        start = 0
        for block in blocks:
            if block.ndim != 2 or block.shape[1] != dim or start + block.shape[0] > rows:
                raise IndexFormatError(f"segment {name}: block of shape {block.shape} does not fit {rows}x{dim}")
            out[start : start + block.shape[0]] = block
            start += block.shape[0]
        if start != rows:
            raise IndexFormatError(f"segment {name}: {start} embeddings written, {rows} expected")
        out.flush()
        del out
    meta = {"ids": ids, "paths": paths, "columns": columns}
    atomic_write_text(folder / f"{name}.json", json.dumps(meta, separators=(",", ":")))
    return {"name": name, "rows": rows}


def read_segment(folder: Path, entry: dict[str, Any], dim: int, dtype: str) -> Segment:
    name, rows = entry["name"], entry["rows"]
    npy, meta_path = folder / f"{name}.npy", folder / f"{name}.json"
    for path in (npy, meta_path):
        if not path.is_file():
            raise IndexFormatError(f"{folder}: segment file {path.name} is missing (the index is incomplete)")
    try:
        # Copy-on-write: torch.from_numpy accepts it without copying and nothing reaches the file.
        embeddings = np.load(npy, mmap_mode="c", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise IndexFormatError(f"{npy}: unreadable embeddings ({err})") from None
    if embeddings.shape != (rows, dim) or embeddings.dtype != np.dtype(dtype):
        raise IndexFormatError(
            f"{npy}: expected {rows}x{dim} {dtype}, found {'x'.join(map(str, embeddings.shape))} {embeddings.dtype}"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        ids, paths, columns = meta["ids"], meta["paths"], meta.get("columns", {})
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise IndexFormatError(f"{meta_path}: unreadable segment metadata ({type(err).__name__}: {err})") from None
    if len(ids) != rows or len(paths) != rows or any(len(v) != rows for v in columns.values()):
        raise IndexFormatError(f"{meta_path}: {len(ids)} ids / {len(paths)} paths for {rows} rows")
    return Segment(name, embeddings, ids, paths, columns)


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not folder.is_dir():
        raise IndexFormatError(f"{folder}: no such index folder")
    if not path.is_file():
        raise IndexFormatError(f"{folder}: not a plip index (no {MANIFEST}; an unfinished build resumes with `plip index build`)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise IndexFormatError(f"{path}: corrupt manifest ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexFormatError(f"{path}: not a plip index manifest")
    if manifest.get("version") != FORMAT_VERSION:
        raise IndexFormatError(f"{path}: format version {manifest.get('version')} (this plip reads {FORMAT_VERSION})")
    for key in ("dim", "dtype", "segments", "generation", "backend"):
        if key not in manifest:
            raise IndexFormatError(f"{path}: manifest has no {key!r}")
    if manifest["dtype"] not in DTYPES:
        raise IndexFormatError(f"{path}: dtype {manifest['dtype']!r} is not one of {DTYPES}")
    return manifest


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    manifest = {"format": FORMAT, "version": FORMAT_VERSION, "plip_version": __version__, **manifest}
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1) + "\n")


def write_mask(folder: Path, name: str, mask: np.ndarray) -> None:
    with atomic_path(folder / name) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, mask.astype(bool), allow_pickle=False)


def read_mask(folder: Path, name: str, rows: int) -> np.ndarray:
    path = folder / name
    if not path.is_file():
        raise IndexFormatError(f"{folder}: deletion mask {name} is missing")
    try:
        mask = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise IndexFormatError(f"{path}: unreadable deletion mask ({err})") from None
    if mask.shape != (rows,) or mask.dtype != bool:
        raise IndexFormatError(f"{path}: expected {rows} booleans, found {mask.shape} {mask.dtype}")
    return mask


def remove_unreferenced(folder: Path, manifest: dict[str, Any]) -> None:
    """Delete files of earlier generations and stray temporaries (never the live ones)."""
    live = {MANIFEST, "skipped.json"}
    for entry in manifest["segments"]:
        live |= {f"{entry['name']}.npy", f"{entry['name']}.json"}
    if manifest.get("deleted"):
        live.add(manifest["deleted"])
    backend = manifest["backend"]
    live |= {f for f in [backend.get("template"), *backend.get("parts", {}).values()] if f}
    for path in folder.iterdir():
        ours = path.name.startswith(("seg-", "deleted-", "faiss-")) or (path.name.startswith(".") and path.name.endswith(".tmp"))
        if path.is_file() and ours and path.name not in live:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
