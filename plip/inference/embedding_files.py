"""Embedding files: a safetensors file with the embeddings and the ids they belong to.

Layout: tensor ``embeddings`` ``(N, D)`` float32; metadata ``ids`` (JSON list of N strings,
paths relative to ``root`` for image galleries), ``root``, ``model`` and ``plip_version``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..errors import PlipError
from ..utils.io import atomic_path
from ..version import __version__


@dataclass
class EmbeddingFile:
    embeddings: torch.Tensor
    ids: list[str]
    root: str = ""
    model: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def path_of(self, index: int) -> str:
        """Absolute path of an image id (ids are relative to ``root``)."""
        return os.path.join(self.root, self.ids[index]) if self.root else self.ids[index]


def save_embeddings(path: str | os.PathLike, data: EmbeddingFile) -> None:
    if data.embeddings.shape[0] != len(data.ids):
        raise PlipError(f"{len(data.ids)} ids for {data.embeddings.shape[0]} embeddings")
    metadata = {
        **data.extra, "ids": json.dumps(data.ids), "root": data.root, "model": data.model,
        "plip_version": __version__,
    }
    with atomic_path(path) as tmp:
        save_file({"embeddings": data.embeddings.detach().float().cpu().contiguous()}, tmp, metadata=metadata)


def load_embeddings(path: str | os.PathLike) -> EmbeddingFile:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise PlipError(f"{path}: embedding file not found")
    try:
        with safe_open(path, framework="pt") as handle:
            metadata = handle.metadata() or {}
            if "embeddings" not in handle.keys():
                raise PlipError(f"{path}: no 'embeddings' tensor (is it a plip embedding file?)")
            embeddings = handle.get_tensor("embeddings")
    except SafetensorError as err:
        raise PlipError(f"{path}: not a safetensors file ({err})") from None
    try:
        ids = json.loads(metadata.get("ids", "[]"))
    except json.JSONDecodeError:
        raise PlipError(f"{path}: metadata field 'ids' is not valid JSON") from None
    if len(ids) != embeddings.shape[0]:
        raise PlipError(f"{path}: {len(ids)} ids for {embeddings.shape[0]} embeddings")
    extra = {k: v for k, v in metadata.items() if k not in ("ids", "root", "model")}
    return EmbeddingFile(embeddings, ids, metadata.get("root", ""), metadata.get("model", ""), extra)
