"""Crash-safe, resumable, shardable image encoding (``plip encode``, ``plip index build|add``).

The sorted file list is cut into shards of ``shard_size`` files; shard ``k`` is encoded in
batches that start at its first file (so its embeddings do not depend on which process or
run encodes it) and written atomically as ``shard-k.safetensors`` in a work folder with the
plan (a digest of the files, the caller's fingerprint of the model and settings, and the
shard size). A killed run leaves whole shards and at most a temporary file, which is never
read: the next run skips the done shards and encodes the rest. With ``world > 1`` (ranks
under ``torchrun``) rank ``r`` encodes shards ``r, r+W, ...``; rank 0 reads them all back in
order. :func:`encode_resumable` is the whole procedure; the rest are its steps.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..data import images as data_images
from ..errors import ImageLoadError, MissingShardError, PlipError
from ..utils.io import atomic_path, atomic_write_text
from ..utils.modes import eval_mode
from .batching import PreprocessedImages, collate_images, embed_image_batch
from .checks import check_finite_rows

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


def prepare(work: Path, root: str, files: Sequence[str], shard_size: int, fingerprint: str, *,
            other_plan: str = "error") -> str:
    """Write or check the plan of ``work`` and remove temporaries of killed runs; the digest.

    A work folder holding another plan (other files, model, settings or shard size) is an
    error (``other_plan="error"``) or is emptied and started over (``"restart"``).
    """
    digest = plan_digest(files, shard_size, fingerprint)
    plan_path = work / PLAN
    if plan_path.is_file():
        try:
            old = json.loads(plan_path.read_text(encoding="utf-8")).get("digest")
        except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
            old = None
        if old != digest:
            if other_plan != "restart":
                raise PlipError(
                    f"{work}: holds an unfinished encoding of other files, another model or shard size; "
                    "run with the same arguments to resume, or pass --restart to start over"
                )
            print(f"{work}: discarding an unfinished encoding of other inputs or settings", file=sys.stderr)
            shutil.rmtree(work)
    if not plan_path.is_file():
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
    """Encode the given shards (one DataLoader over all of them) and write each when complete.

    Each batch goes through :func:`~plip.inference.batching.embed_image_batch` (the loop of
    ``model.encode_image``), is checked finite and L2-normalised, as ``encode_image`` does.
    """
    from tqdm.auto import tqdm

    if batch_size < 1 or shard_size < 1:
        raise PlipError(f"batch size and shard size must be >= 1, got {batch_size} and {shard_size}")
    if model.preprocess is None:
        raise PlipError("this model has no preprocess attached: build it with plip.load or plip.create_model")
    batches, owner = [], []
    for k in shards:
        lo, hi = k * shard_size, min(len(files), (k + 1) * shard_size)
        for start in range(lo, hi, batch_size):
            batches.append(list(range(start, min(hi, start + batch_size))))
            owner.append(k)
    if not batches:
        return
    dataset = PreprocessedImages([os.path.join(root, f) for f in files], model.preprocess, labels=files)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=workers, collate_fn=collate_images)
    pending: dict[int, dict[str, list]] = {}
    total = sum(len(b) for b in batches)
    with eval_mode(model), tqdm(total=total, desc="encoding", unit="img", disable=not progress) as bar:
        for k, size, batch in zip(owner, map(len, batches), loader):
            acc = pending.setdefault(k, {"emb": [], "kept": [], "bad": [], "n": 0})
            if batch.failures and not skip_bad:
                raise ImageLoadError(batch.failures[0][1])
            acc["bad"] += batch.failures
            if batch.images is not None:
                emb = embed_image_batch(model, batch.images).cpu()
                check_finite_rows(emb, "image", [files[i] for i in batch.positions], batch.positions)
                acc["emb"].append(F.normalize(emb, dim=-1))
                acc["kept"] += batch.positions
            acc["n"] += size
            bar.update(size)
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
                                "run the same command again to encode it")
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
            "a process stopped early: run the same command again to encode them"
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


def _refuse_skipped(work: Path, done: set[int]) -> None:
    """Without skip_bad, a done shard that skipped images (an earlier run had skip_bad) is the
    error an uninterrupted run would raise; shards without skipped images serve either way."""
    for k in sorted(done):
        bad = json.loads((shard_header(shard_file(work, k)) or {}).get("bad", "[]"))
        if bad:
            raise ImageLoadError(bad[0][1])


def report_bad(bad: Sequence[tuple[int, str]], files: Sequence[str]) -> None:
    if bad:
        print(f"skipped {len(bad)} unreadable image(s) of {len(files)}; first: {bad[0][1]}", file=sys.stderr)


@dataclass
class ShardedEncoding:
    """A finished encoding plan: which files were encoded and the embeddings, shard by shard."""

    work: Path
    digest: str
    shards: int
    kept: list[int]  # positions (in the file list) of the embedded files, in order
    bad: list[tuple[int, str]]  # (position, error) of the files skipped with skip_bad

    def blocks(self) -> Iterator[np.ndarray]:
        """The float32 embeddings of ``kept``, one array per shard, in order."""
        return iter_shards(self.work, self.digest, self.shards)

    def embeddings(self) -> np.ndarray:
        """All embeddings ``(len(kept), D)`` float32 in one array."""
        return np.concatenate(list(self.blocks()))


def encode_resumable(
    model: Any, root: str, files: Sequence[str], work: str | os.PathLike, *, fingerprint: str,
    shard_size: int = 4096, batch_size: int = 64, workers: int = 0, skip_bad: bool = False,
    progress: bool = False, restart: bool = False, other_plan: str = "error",
    rank: int = 0, world: int = 1, barrier: Callable[[], None] | None = None,
) -> ShardedEncoding | None:
    """Encode ``root/files`` into shards under ``work``, resuming after the shards already done.

    ``fingerprint`` names the model and every setting that changes the embeddings (not
    ``skip_bad``: shards that skipped nothing serve both ways, and without it a shard that
    skipped an image raises that image's error); a work folder of another plan is an error or is started over (``other_plan``, see
    :func:`prepare`); ``restart`` throws the folder away first. Every rank of ``world``
    calls this (``barrier`` synchronises them); rank 0 gets the :class:`ShardedEncoding`,
    the others None. The caller removes ``work`` once it has used the result.
    """
    work = Path(work)
    barrier = barrier or (lambda: None)
    main = rank == 0
    if main:
        if restart:
            shutil.rmtree(work, ignore_errors=True)
        prepare(work, root, files, shard_size, fingerprint, other_plan=other_plan)
    barrier()
    digest = plan_digest(files, shard_size, fingerprint)
    if not main and json.loads((work / PLAN).read_text(encoding="utf-8"))["digest"] != digest:
        raise PlipError(f"rank {rank}: sees other files than rank 0 under {root} (is the folder shared?)")
    total = shard_count(len(files), shard_size)
    done = done_shards(work, digest, total)
    if not skip_bad:
        _refuse_skipped(work, done)
    mine = [k for k in range(total) if k % world == rank and k not in done]
    if done and main:
        print(f"resuming: {len(done)} of {total} shards already encoded", file=sys.stderr)
    encode_shards(model, root, files, work, digest, mine, shard_size=shard_size, batch_size=batch_size,
                  workers=workers, skip_bad=skip_bad, progress=progress and main)
    barrier()
    if not main:
        return None
    kept, bad = shard_summary(work, digest, total)
    return ShardedEncoding(work, digest, total, kept, bad)
