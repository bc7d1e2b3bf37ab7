"""Text-to-image person retrieval evaluation (the CUHK-PEDES / ICFG-PEDES / RSTPReid protocol).

Every caption of the split is a query, every image of the split is the gallery, a match is
an image of the caption's person. Images are decoded in DataLoader workers with the
model's own preprocessing; each caption is tokenised once and encoded in length-sorted
batches (both through the model's ``encode_image`` / ``encode_text``). Embeddings can be
cached on disk, keyed by a fingerprint of the model's weights and configuration and of the
exact images / captions, so a second run with the same model skips encoding.

>>> from plip.data.textreid import load_text_reid
>>> split = load_text_reid("cuhk-pedes", "data/CUHK-PEDES", "test")
>>> result = evaluate_text_to_image(model, split, batch_size=128, num_workers=4)
>>> result["t2i"]["R@1"]
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from ..data.textreid import TextReIDSplit
from ..errors import PlipError
from ..inference.fingerprint import model_fingerprint  # also re-exported: the cache key
from ..utils.io import atomic_path
from ..utils.modes import eval_mode
from ..version import __version__
from .retrieval_metrics import RetrievalMetrics, retrieval_metrics_from_embeddings

__all__ = ["evaluate_text_to_image", "model_fingerprint", "EmbeddingCache"]


# --------------------------------------------------------------------------- model identity


def _images_digest(paths: Sequence[str]) -> str:
    """Digest of the image list: paths, sizes and modification times."""
    digest = hashlib.blake2b(digest_size=16)
    for path in paths:
        try:
            stat = os.stat(path)
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path}\0missing\n".encode())
    return digest.hexdigest()


def _texts_digest(texts: Sequence[str]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()


class EmbeddingCache:
    """Embeddings on disk: ``DIR/<model fingerprint>/<kind>-<content digest>.safetensors``.

    A file is reused only if its metadata names the same model, content and row count.
    """

    def __init__(self, directory: str | os.PathLike, model_key: str):
        self.directory = Path(directory) / model_key[:32]
        self.model_key = model_key

    def _path(self, kind: str, content_key: str) -> Path:
        return self.directory / f"{kind}-{content_key[:32]}.safetensors"

    def load(self, kind: str, content_key: str, count: int) -> torch.Tensor | None:
        from safetensors import SafetensorError, safe_open

        path = self._path(kind, content_key)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as handle:
                meta = handle.metadata() or {}
                tensor = handle.get_tensor("embeddings")
        except (SafetensorError, OSError) as err:
            warnings.warn(f"ignoring unreadable embedding cache {path}: {err}", stacklevel=3)
            return None
        if meta.get("model") != self.model_key or meta.get("content") != content_key or tensor.shape[0] != count:
            warnings.warn(f"ignoring embedding cache {path}: written for other inputs", stacklevel=3)
            return None
        return tensor

    def save(self, kind: str, content_key: str, embeddings: torch.Tensor) -> Path:
        from safetensors.torch import save_file

        path = self._path(kind, content_key)
        meta = {"model": self.model_key, "content": content_key, "kind": kind, "plip_version": __version__}
        with atomic_path(path) as tmp:
            save_file({"embeddings": embeddings.detach().float().cpu().contiguous()}, tmp, metadata=meta)
        return path


# --------------------------------------------------------------------------- evaluation


@contextlib.contextmanager
def _evaluating_on(model: Any, device: str | torch.device | None) -> Iterator[None]:
    """``model`` in eval mode (and on ``device``) for the block; restored afterwards."""
    original = getattr(model, "device", None)
    target = torch.device(device) if device is not None else None
    moved = target is not None and original is not None and torch.device(original) != target
    if moved:
        model.to(target)
    try:
        with eval_mode(model):
            yield
    finally:
        if moved:
            model.to(original)


def _encode_cached(cache, kind, content_key, count, encode) -> tuple[torch.Tensor, str]:
    if cache is not None:
        cached = cache.load(kind, content_key, count)
        if cached is not None:
            return cached, "reused"
    embeddings = encode()
    if embeddings.shape[0] != count:
        raise PlipError(f"the model returned {embeddings.shape[0]} {kind} embeddings for {count} inputs")
    if cache is not None:
        cache.save(kind, content_key, embeddings)
        return embeddings, "written"
    return embeddings, "off"


def evaluate_text_to_image(
    model: Any,
    split: TextReIDSplit,
    *,
    batch_size: int = 64,
    text_batch_size: int = 256,
    num_workers: int = 0,
    device: str | torch.device | None = None,
    ks: Sequence[int] = (1, 5, 10),
    legacy_ap: bool = False,
    image_to_text: bool = False,
    unmatched: str = "exclude",
    progress: bool = False,
    check_files: bool = True,
    cache_dir: str | os.PathLike | None = None,
    return_embeddings: bool = False,
) -> dict[str, Any]:
    """Evaluate text-to-image retrieval of ``model`` on one dataset split.

    Args:
        model: a PLIP model (or any object with ``encode_image`` / ``encode_text`` returning
            ``(N, D)`` tensors). It may be in training mode: it is switched to eval mode for
            the evaluation and back afterwards (and moved back if ``device`` moved it).
        split: from :func:`plip.data.textreid.load_text_reid`.
        batch_size: images per encoding batch.
        text_batch_size: captions per encoding batch.
        num_workers: DataLoader processes decoding images (0: in this process).
        device: where to run the model (default: where it is).
        ks: the K of R@K.
        legacy_ap: mAP as the official PLIP code computes it (see
            :mod:`plip.evaluation.retrieval_metrics`).
        image_to_text: also evaluate image-to-text retrieval (key ``"i2t"``).
        unmatched: how queries without any gallery match enter mAP / mINP.
        progress: show progress bars.
        check_files: verify that every image exists before encoding anything.
        cache_dir: keep embeddings here and reuse them when model and inputs are unchanged.
        return_embeddings: add ``"embeddings": {"images", "texts"}`` (normalised, CPU).

    Returns:
        ``{"dataset", "split", "counts": {...}, "t2i": {R@K, mAP, mINP, ...},
        ["i2t": {...},] "seconds": {...}, "cache": {...}}`` (metrics in percent).
    """
    started = time.perf_counter()
    if check_files:
        split.check_files()
    gallery = split.gallery()
    queries = split.queries()
    if len(gallery) == 0 or len(queries) == 0:
        raise PlipError(f"{split.dataset} ({split.split}) has {len(gallery)} images and {len(queries)} captions")
    seconds: dict[str, float] = {}
    cache = None
    with _evaluating_on(model, device):
        if cache_dir is not None:
            tic = time.perf_counter()
            cache = EmbeddingCache(cache_dir, model_fingerprint(model))
            seconds["fingerprint"] = time.perf_counter() - tic

        tic = time.perf_counter()
        image_emb, image_cache = _encode_cached(
            cache, "images", _images_digest(gallery.image_paths), len(gallery),
            lambda: model.encode_image(gallery.image_paths, batch_size=batch_size, normalize=True,
                                       progress=progress, num_workers=num_workers),
        )
        seconds["encode_images"] = time.perf_counter() - tic

        tic = time.perf_counter()
        text_emb, text_cache = _encode_cached(
            cache, "texts", _texts_digest(queries.captions), len(queries),
            lambda: model.encode_text(queries.captions, batch_size=text_batch_size, normalize=True, progress=progress),
        )
        seconds["encode_texts"] = time.perf_counter() - tic

    tic = time.perf_counter()
    options = dict(ks=ks, legacy_ap=legacy_ap, unmatched=unmatched)
    t2i = retrieval_metrics_from_embeddings(text_emb, image_emb, queries.person_ids, gallery.person_ids, **options)
    result: dict[str, Any] = {
        "dataset": split.dataset,
        "split": split.split,
        "counts": {
            "images": len(gallery),
            "queries": len(queries),
            "identities": int(len(np.unique(gallery.person_ids))),
            "unmatched_queries": t2i.num_unmatched,
            "skipped_captions": getattr(split, "num_skipped_captions", 0),
        },
        "t2i": _metrics_dict(t2i),
    }
    if image_to_text:
        i2t = retrieval_metrics_from_embeddings(image_emb, text_emb, gallery.person_ids, queries.person_ids, **options)
        result["i2t"] = _metrics_dict(i2t)
    seconds["metrics"] = time.perf_counter() - tic
    seconds["total"] = time.perf_counter() - started
    result["seconds"] = {k: round(v, 4) for k, v in seconds.items()}
    result["cache"] = {"images": image_cache, "texts": text_cache}
    if return_embeddings:
        result["embeddings"] = {"images": image_emb, "texts": text_emb}
    return result


def _metrics_dict(metrics: RetrievalMetrics) -> dict[str, Any]:
    out = metrics.as_dict()
    return {k: v for k, v in out.items() if k not in ("num_gallery",)}
