"""Crash-safe, resumable, shardable image encoding.

The sorted file list is cut into shards of ``shard_size`` files; shard ``k`` is encoded in
batches that start at its first file (so its embeddings do not depend on which process or
run encodes it) and written atomically as ``shard-k.safetensors`` in a work folder with the
plan (a digest of the files, the model fingerprint and the shard size). A killed run leaves
whole shards and at most a temporary file, which is never read: the next run skips the done
shards and encodes the rest. Under ``torchrun`` rank ``r`` of ``W`` encodes shards
``r, r+W, ...``; rank 0 reads them all back in order.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..data import images as data_images
from ..errors import ImageLoadError, PlipError
from ..inference.batching import PreprocessedImages, as_list
from ..utils.io import atomic_path, atomic_write_text
from .errors import MissingShardError

PLAN = "plan.json"


def find_images(inputs: str | os.PathLike | Sequence[str | os.PathLike]) -> tuple[str, list[str]]:
    """``(root, sorted relative paths)``: :func:`plip.data.images.find_images` for one or more inputs."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    return data_images.find_images([os.fspath(i) for i in inputs])


def plan_digest(files: Sequence[str], shard_size: int, fingerprint: str) -> str:
    digest = hashlib.sha256(f"{shard_size}\n{fingerprint}\n".encode())
    for name in files:
        digest.update(name.encode() + b"\0")
    return digest.hexdigest()


def shard_count(files: int, shard_size: int) -> int:
    return (files + shard_size - 1) // shard_size


def shard_file(work: Path, k: int) -> Path:
    return work / f"shard-{k:06d}.safetensors"


def prepare(work: Path, root: str, files: Sequence[str], shard_size: int, fingerprint: str) -> str:
    """Write or check the plan of ``work`` and remove temporaries of killed runs; the digest."""
    digest = plan_digest(files, shard_size, fingerprint)
    plan_path = work / PLAN
    if plan_path.is_file():
        try:
            old = json.loads(plan_path.read_text(encoding="utf-8")).get("digest")
        except (json.JSONDecodeError, AttributeError):
            old = None
        if old != digest:
            raise PlipError(
                f"{work}: holds an unfinished encoding of other files, another model or shard size; "
                "run with the same arguments to resume, or pass --restart to start over"
            )
    else:
        work.mkdir(parents=True, exist_ok=True)
        atomic_write_text(plan_path, json.dumps(
            {"digest": digest, "root": root, "files": len(files), "shard_size": shard_size, "fingerprint": fingerprint}
        ) + "\n")
    for stray in work.glob(".*.tmp"):
        stray.unlink(missing_ok=True)
    return digest


def shard_header(path: Path) -> dict[str, str] | None:
    """The metadata of a complete shard file, None when it is missing or unreadable."""
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except (SafetensorError, OSError):
        return None


def done_shards(work: Path, digest: str, total: int) -> set[int]:
    done = set()
    for k in range(total):
        header = shard_header(shard_file(work, k))
        if header is not None and header.get("plan") == digest:
            done.add(k)
    return done


def encode_shards(
    model: Any, root: str, files: Sequence[str], work: Path, digest: str, shards: Sequence[int], *,
    shard_size: int, batch_size: int = 64, workers: int = 0, skip_bad: bool = False, progress: bool = False,
) -> None:
    """Encode the given shards (one DataLoader over all of them) and write each when complete."""
    from tqdm.auto import tqdm

    if batch_size < 1 or shard_size < 1:
        raise PlipError(f"batch size and shard size must be >= 1, got {batch_size} and {shard_size}")
    batches, owner = [], []
    for k in shards:
        lo, hi = k * shard_size, min(len(files), (k + 1) * shard_size)
        for start in range(lo, hi, batch_size):
            batches.append(list(range(start, min(hi, start + batch_size))))
            owner.append(k)
    if not batches:
        return
    dataset = PreprocessedImages([os.path.join(root, f) for f in files], model.preprocess, labels=files)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=workers, collate_fn=as_list)
    pending: dict[int, dict[str, list]] = {}
    total = sum(len(b) for b in batches)
    with tqdm(total=total, desc="encoding", unit="img", disable=not progress) as bar:
        for k, items in zip(owner, loader):
            acc = pending.setdefault(k, {"emb": [], "kept": [], "bad": [], "n": 0})
            good = [(i, t) for i, t, _ in items if t is not None]
            bad = [(i, e) for i, t, e in items if t is None]
            if bad and not skip_bad:
                raise ImageLoadError(bad[0][1])
            acc["bad"] += bad
            if good:
                acc["emb"].append(model.encode_image(torch.stack([t for _, t in good]), batch_size=len(good)).cpu())
                acc["kept"] += [i for i, _ in good]
            acc["n"] += len(items)
            bar.update(len(items))
            if acc["n"] == min(len(files), (k + 1) * shard_size) - k * shard_size:
                _write_shard(shard_file(work, k), digest, pending.pop(k), model.embed_dim)


def _write_shard(path: Path, digest: str, acc: dict[str, list], dim: int) -> None:
    emb = torch.cat(acc["emb"]) if acc["emb"] else torch.empty(0, dim)
    metadata = {"plan": digest, "kept": json.dumps(acc["kept"]), "bad": json.dumps(acc["bad"])}
    with atomic_path(path) as tmp:
        save_file({"embeddings": emb.float().contiguous()}, tmp, metadata=metadata)


def read_shard(path: Path, digest: str) -> tuple[np.ndarray, list[int], list[tuple[int, str]]]:
    """Embeddings (float32), kept file positions and ``(position, error)`` of skipped files."""
    header = shard_header(path)
    if header is None:
        raise MissingShardError(f"{path}: shard missing or unreadable (a process stopped before writing it); "
                                "run the build again to encode it")
    if header.get("plan") != digest:
        raise MissingShardError(f"{path}: shard of another encoding plan")
    with safe_open(str(path), framework="np") as handle:
        emb = handle.get_tensor("embeddings")
    kept, bad = json.loads(header["kept"]), [tuple(b) for b in json.loads(header["bad"])]
    if emb.shape[0] != len(kept):
        raise MissingShardError(f"{path}: {emb.shape[0]} embeddings for {len(kept)} files")
    return emb, kept, bad


def shard_summary(work: Path, digest: str, total: int) -> tuple[list[int], list[tuple[int, str]]]:
    """All kept positions and skipped files, in order; checks that every shard is there."""
    missing = [k for k in range(total) if shard_header(shard_file(work, k)) is None]
    if missing:
        shown = ", ".join(shard_file(work, k).name for k in missing[:5])
        raise MissingShardError(
            f"{work}: {len(missing)} of {total} shards missing ({shown}{' ...' if len(missing) > 5 else ''}); "
            "a process stopped early: run the same build again to encode them"
        )
    kept, bad = [], []
    for k in range(total):
        header = shard_header(shard_file(work, k))
        if header.get("plan") != digest:
            raise MissingShardError(f"{shard_file(work, k)}: shard of another encoding plan")
        kept += json.loads(header["kept"])
        bad += [tuple(b) for b in json.loads(header["bad"])]
    return kept, bad


def iter_shards(work: Path, digest: str, total: int) -> Iterator[np.ndarray]:
    for k in range(total):
        yield read_shard(shard_file(work, k), digest)[0]


def report_bad(bad: Sequence[tuple[int, str]], files: Sequence[str]) -> None:
    if bad:
        print(f"skipped {len(bad)} unreadable image(s); first: {bad[0][1]}", file=sys.stderr)
