"""Parquet export of an index (ids, paths, metadata, embeddings) for a vector database."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import numpy as np

from ..errors import PlipError
from ..utils.io import atomic_path

if TYPE_CHECKING:
    from .index import Index


def write_parquet(index: "Index", path: str | os.PathLike, *, rows_per_group: int = 65536) -> int:
    """Stream the live rows into ``path`` (one row group per block; bounded memory).

    Columns: ``id``, ``path``, ``row``, every metadata column (JSON text when its values are
    not all of one plain type) and ``embedding`` (fixed-size list of float16/float32). The
    file's metadata keeps the index's model spec under ``plip.model``.
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise PlipError("Parquet export needs pyarrow: pip install 'plip[parquet]'") from None
    value_type = pa.float16() if index.dtype == "float16" else pa.float32()
    meta_cols = {name: index.column(name) for name in index.columns}
    fields = [pa.field("id", pa.string()), pa.field("path", pa.string()), pa.field("row", pa.int64())]
    types = {name: _arrow_type(pa, values) for name, values in meta_cols.items()}
    fields += [pa.field(name, t if t is not None else pa.string()) for name, t in types.items()]
    fields.append(pa.field("embedding", pa.list_(value_type, index.dim)))
    info = {"plip.model": json.dumps(index.manifest.get("model")), "plip.dim": str(index.dim)}
    schema = pa.schema(fields, metadata=info)
    ids, paths = index.ids, index.paths
    live = np.flatnonzero(~index.deleted)
    with atomic_path(path) as tmp:
        with pq.ParquetWriter(tmp, schema) as writer:
            for start in range(0, live.size, rows_per_group):
                rows = live[start : start + rows_per_group]
                emb = index.embeddings(rows).astype(index.dtype)
                arrays = [pa.array([ids[r] for r in rows], pa.string()), pa.array([paths[r] for r in rows], pa.string()),
                          pa.array(rows, pa.int64())]
                for name, values in meta_cols.items():
                    picked = [values[r] for r in rows]
                    if types[name] is None:
                        picked = [None if v is None else json.dumps(v) for v in picked]
                    arrays.append(pa.array(picked, type=types[name] or pa.string()))
                arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1), value_type), index.dim))
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
    return int(live.size)


def _arrow_type(pa, values):
    """One Arrow type for a plain column (bool/int/float/str), None for mixed or nested values."""
    kinds = {type(v) for v in values if v is not None}
    if kinds <= {str}:
        return pa.string()
    if kinds <= {bool}:
        return pa.bool_()
    if kinds <= {int}:
        return pa.int64()
    if kinds <= {int, float}:
        return pa.float64()
    return None
