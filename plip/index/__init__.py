"""Persistent, incremental search indexes over person embeddings (``plip index``).

:class:`Index` keeps the embeddings (float16/float32, memory-mapped), ids, paths and metadata
of a gallery in a folder, with an exact or FAISS search backend and the spec of the model
that made them. Encoding is sharded, crash-safe and runs under ``torchrun``
(``python -m plip.index build ...``). See docs/gallery-index.md.

Names load on first use, so that ``plip --help`` (which imports :mod:`plip.index.cli`)
does not import numpy or torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Index": ".index", "Hit": ".index", "IndexFormatError": ".errors", "MissingShardError": ".errors",
    "ModelMismatchError": ".errors", "backend_names": ".backends", "register_backend": ".backends",
    "EXACT_UP_TO": ".backends", "model_spec": ".spec",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
