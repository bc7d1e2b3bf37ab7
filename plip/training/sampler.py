"""Distributed identity-aware batch sampler (P identities x K images per rank-batch).

Everything below depends only on ``seed``, ``epoch``, the labels and the *global* batch
``G = P*K*world_size*grad_accum`` (the samples of one optimizer step), so one process with
batch 2B sees exactly the samples of two processes with batch B, in the same order once
gathered, and so does one process with batch B accumulating 2 micro-batches.

With ``K > 1`` (the exact P x K sampler, as reid-strong-baseline's ``RandomIdentitySampler``):

1. Each identity's images are shuffled and cut into *chunks* of K; the last
   ``count % K`` images of an identity are left out of that epoch (a different subset every
   epoch). An identity with fewer than K images is completed to K by drawing its own images
   again with replacement, so it appears as one chunk holding repeats (rsb does the same).
2. Every chunk gets a random time in the epoch, spread evenly over the identity's chunks
   (chunk ``j`` of ``n`` at ``(j + u) / n``, ``u`` uniform), and chunks are taken in time
   order into global batches of ``G / K`` chunks of *distinct* identities (a chunk whose
   identity is already in the batch waits for the next one).
3. Micro-batch ``m`` of rank ``r`` takes the P chunks at slot ``m * world_size + r``: every
   batch of every rank is exactly P distinct identities x K images, and no identity is in
   two ranks' batches of one step.
4. An epoch has ``chunks // (G / K)`` global batches; the chunks that do not fill one are
   dropped. In the rare case where the last batches cannot be completed with distinct
   identities, they are completed with chunks of other identities drawn again.

With ``K = 1`` the sampler is a plain shuffle (identity labels unused): every sample once
per epoch; ``drop_last=True`` drops the incomplete last global batch (fewer than G
samples, different ones every epoch), ``drop_last=False`` completes it with samples from the
start of the epoch's order (the only repeats, as in ``DistributedSampler``).

No sample reaches two ranks in one step. Each sample also gets a seed derived from
``(seed, epoch, its global position in the epoch)``: :class:`SeededDataset` uses it to seed
the random augmentations, which makes them independent of the number of workers and ranks,
and reproducible after a mid-epoch resume.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from ..errors import ConfigError, DataError

__all__ = ["IdentityBatchSampler", "SeededDataset", "sample_seed"]


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """A 63-bit seed for the sample at ``position`` of ``epoch`` (stable across platforms)."""
    digest = hashlib.blake2b(f"{seed}:{epoch}:{position}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


class IdentityBatchSampler:
    """Yield this rank's batches of ``(index, sample_seed)`` pairs, P identities x K images.

    Use it as a DataLoader ``batch_sampler`` over a :class:`SeededDataset`.

    Args:
        labels: identity label of every sample (any hashable values); ``None`` treats every
            sample as its own identity (plain shuffling; use with ``num_instances=1``).
        batch_size: samples per rank-batch (P x K).
        num_instances: K.
        num_replicas: world size.
        rank: this process's rank.
        seed: base seed; the epoch's order depends on ``(seed, epoch)`` only.
        drop_last: drop (True) or pad (False) the incomplete end of an epoch.
        grad_accum: micro-batches per optimizer step (the global batch spans them).
        num_samples: dataset size, needed only when ``labels`` is ``None``.

    The sampler yields ``grad_accum`` micro-batches per optimizer step; its position
    (``batches_consumed``) counts micro-batches.
    """

    def __init__(
        self,
        labels: Sequence[Any] | None,
        batch_size: int,
        num_instances: int = 4,
        *,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
        drop_last: bool = True,
        grad_accum: int = 1,
        num_samples: int | None = None,
    ) -> None:
        if labels is None:
            if num_samples is None:
                raise ValueError("give labels or num_samples")
            if num_instances > 1:
                raise ConfigError(
                    f"config key 'sampler.num_instances' is {num_instances} but the task gives no "
                    "identity labels; use sampler.num_instances: 1"
                )
            labels = list(range(num_samples))
        if isinstance(labels, torch.Tensor):
            labels = labels.numpy(force=True)
        if num_instances < 1 or batch_size % num_instances:
            raise ConfigError(
                f"config key 'train.batch_size' ({batch_size}) must be a multiple of "
                f"sampler.num_instances ({num_instances})"
            )
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside [0, {num_replicas})")
        self.num_samples = len(labels)
        self.batch_size = batch_size
        self.k = num_instances
        self.p = batch_size // num_instances
        self.num_replicas, self.rank = num_replicas, rank
        self.seed, self.drop_last = seed, drop_last
        if grad_accum < 1:
            raise ValueError("grad_accum must be >= 1")
        self.accum = grad_accum
        self.global_batch = batch_size * num_replicas * grad_accum
        if self.num_samples < self.global_batch and drop_last:
            raise DataError(
                f"the training set has {self.num_samples} samples, fewer than one global batch "
                f"({batch_size} per rank x {num_replicas} ranks x {grad_accum} accumulation); "
                "lower train.batch_size"
            )
        if self.num_samples == 0:
            raise DataError("the training set is empty")
        inv = _identity_index(labels)
        self._inv = inv  # identity number of each sample
        self._counts = np.bincount(inv)
        self._starts = np.concatenate([[0], np.cumsum(self._counts)[:-1]])
        self._cache: tuple[int, np.ndarray] | None = None
        if self.k > 1:
            self._chunks_per_id = np.maximum(self._counts // self.k, 1)
            self._num_chunks = int(self._chunks_per_id.sum())
            per_step = self.global_batch // self.k
            if len(self._counts) < per_step:
                raise DataError(
                    f"the training set has {len(self._counts)} identities, fewer than the "
                    f"{per_step} distinct identities of one global batch (P={self.p} per rank x "
                    f"{num_replicas} ranks x {grad_accum} accumulation); lower train.batch_size"
                )
            if self._num_chunks < per_step:
                raise DataError(
                    f"the training set has {self._num_chunks} chunks of K={self.k} images, fewer than "
                    f"one global batch needs ({per_step}); lower train.batch_size"
                )
        self.epoch = 0
        self.start_batch = 0

    # -- epoch / position ---------------------------------------------------------
    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch (reshuffles) and the rank-batch to start from (resume)."""
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def state_dict(self, batches_consumed: int | None = None) -> dict[str, int]:
        """``{"epoch", "batches_consumed"}``; pass the count of batches the loop has used
        (a DataLoader prefetches, so the sampler itself runs ahead)."""
        done = self.start_batch if batches_consumed is None else batches_consumed
        return {"epoch": self.epoch, "batches_consumed": int(done)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.set_epoch(state["epoch"], state["batches_consumed"])

    # -- layout -------------------------------------------------------------------
    def global_order(self, epoch: int | None = None) -> np.ndarray:
        """The epoch's sample indices in global order (all ranks), padding included."""
        epoch = self.epoch if epoch is None else epoch
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        rng = np.random.default_rng([_SALT, self.seed % 2**63, epoch])
        order = self._pk_order(rng) if self.k > 1 else self._shuffle_order(rng)
        self._cache = (epoch, order)
        return order

    def _shuffle_order(self, rng: np.random.Generator) -> np.ndarray:
        g = self.global_batch
        perm = rng.permutation(self.num_samples)
        n_full = len(perm) // g
        order, tail = perm[: n_full * g], perm[n_full * g:]
        if len(tail) and not self.drop_last:
            filler = order[: g - len(tail)] if len(order) else np.resize(tail, g - len(tail))
            order = np.concatenate([order, tail, filler])
        return order

    def _pk_order(self, rng: np.random.Generator) -> np.ndarray:
        k, per_step = self.k, self.global_batch // self.k
        # 1. Chunks of K images per identity (identities sorted by number, images shuffled).
        shuffled = rng.permutation(self.num_samples)
        by_id = shuffled[np.argsort(self._inv[shuffled], kind="stable")]
        chunks: list[np.ndarray] = []
        owner: list[int] = []
        times: list[np.ndarray] = []
        for ident, (start, count) in enumerate(zip(self._starts, self._counts)):
            imgs = by_id[start:start + count]
            if count < k:
                imgs = rng.choice(imgs, size=k, replace=True)
            n = len(imgs) // k
            chunks.append(imgs[: n * k].reshape(n, k))
            owner.extend([ident] * n)
            times.append((np.arange(n) + rng.random(n)) / n)
        all_chunks = np.concatenate(chunks)
        owner_arr = np.asarray(owner)
        # 2. Time order, packed greedily into batches of distinct identities.
        sequence = np.argsort(np.concatenate(times), kind="stable").tolist()
        n_steps = len(all_chunks) // per_step
        batches: list[list[int]] = []
        waiting: list[int] = []
        current: list[int] = []
        in_batch: set[int] = set()
        for c in sequence:
            if len(batches) == n_steps:
                break
            if owner_arr[c] in in_batch:
                waiting.append(c)
                continue
            current.append(c)
            in_batch.add(int(owner_arr[c]))
            if len(current) == per_step:
                batches.append(current)
                current, in_batch = [], set()
                still: list[int] = []
                for w in waiting:  # waiting chunks first in the next batch
                    if owner_arr[w] in in_batch or len(current) == per_step:
                        still.append(w)
                    else:
                        current.append(w)
                        in_batch.add(int(owner_arr[w]))
                waiting = still
                if len(current) == per_step and len(batches) < n_steps:
                    batches.append(current)
                    current, in_batch = [], set()
        # 4. Rare: complete the last batches with chunks of other identities, drawn again.
        while len(batches) < n_steps:
            pool = [c for c in rng.permutation(len(all_chunks)).tolist() if owner_arr[c] not in in_batch]
            for c in pool:
                if len(current) == per_step:
                    break
                if owner_arr[c] not in in_batch:
                    current.append(c)
                    in_batch.add(int(owner_arr[c]))
            batches.append(current)
            current, in_batch = [], set()
        return all_chunks[np.asarray(batches, dtype=np.int64).reshape(-1)].reshape(-1)

    def identity_counts(self) -> np.ndarray:
        """Images per identity (dense identity numbers, in order of first appearance)."""
        return self._counts.copy()

    def __len__(self) -> int:
        """Rank-batches left in the current epoch (from the resume position)."""
        return self.batches_per_epoch() - self.start_batch

    def steps_per_epoch(self) -> int:
        """Global batches (optimizer steps) in an epoch."""
        if self.k > 1:
            return self._num_chunks // (self.global_batch // self.k)
        n = self.num_samples
        return n // self.global_batch if self.drop_last else -(-n // self.global_batch)

    def batches_per_epoch(self) -> int:
        """Rank micro-batches in a whole epoch (the same on every rank and every epoch)."""
        return self.steps_per_epoch() * self.accum

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = self.global_order()
        g, b, w = self.global_batch, self.batch_size, self.num_replicas
        for micro in range(self.start_batch, self.batches_per_epoch()):
            step, m = divmod(micro, self.accum)
            start = step * g + (m * w + self.rank) * b
            indices = order[start:start + b].tolist()
            yield [(i, sample_seed(self.seed, self.epoch, start + j)) for j, i in enumerate(indices)]


_SALT = 0x706C6970  # "plip": keeps the sampler's stream apart from other uses of the seed


def _identity_index(labels: Sequence[Any]) -> np.ndarray:
    """Dense identity numbers (int64) for any hashable labels."""
    arr = np.asarray(labels) if not isinstance(labels, np.ndarray) else labels
    if arr.ndim == 1 and arr.dtype.kind in "iub":
        return np.unique(arr, return_inverse=True)[1].astype(np.int64).reshape(-1)
    table: dict[Any, int] = {}
    return np.fromiter((table.setdefault(lab, len(table)) for lab in labels), dtype=np.int64,
                       count=len(labels))


class SeededDataset(Dataset):
    """Wrap a map-style dataset so each item is produced under its own seed.

    Items are requested as ``(index, seed)`` (what :class:`IdentityBatchSampler` yields);
    Python's, NumPy's and torch's (CPU) global generators are seeded with ``seed`` while the
    wrapped dataset builds the item, then restored, so random augmentations written with
    the usual global generators are reproducible and leave the training RNG untouched.
    ``set_epoch`` is forwarded to the wrapped dataset when it has one.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __getitem__(self, item: tuple[int, int]) -> Any:
        index, seed = item
        if get_worker_info() is not None:  # a loader worker: its generators serve only the data
            _seed_globals(seed)
            return self.dataset[index]
        py_state, np_state = random.getstate(), np.random.get_state(legacy=False)
        with torch.random.fork_rng(devices=[]):
            _seed_globals(seed)
            try:
                return self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)


def _seed_globals(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.default_generator.manual_seed(seed)  # CPU only: CUDA streams stay untouched
