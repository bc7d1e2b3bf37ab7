"""The distributed P x K identity sampler and per-sample seeding.

Reference: the sampler's contract (module docstring of plip.training.sampler): per epoch,
every sample once, no sample on two ranks, P x K blocks, deterministic in (seed, epoch),
independent of how the global batch is split over ranks, resumable from a batch index.
Ranks are simulated by building one sampler per rank.
"""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
import torch

from plip.errors import ConfigError, DataError
from plip.training.sampler import IdentityBatchSampler, SeededDataset


def make_labels(counts: list[int]) -> list[int]:
    labels = [pid for pid, n in enumerate(counts) for _ in range(n)]
    random.Random(0).shuffle(labels)  # identities interleaved in the dataset
    return labels


def rank_batches(labels, batch, k, world, epoch=0, seed=0, drop_last=True):
    out = []
    for r in range(world):
        s = IdentityBatchSampler(labels, batch, k, num_replicas=world, rank=r, seed=seed, drop_last=drop_last)
        s.set_epoch(epoch)
        out.append([[i for i, _ in b] for b in s])
    return out


def step_batches(per_rank):
    """Per optimizer step, the rank batches of that step (accumulation 1)."""
    return list(zip(*per_rank, strict=True))


@pytest.mark.parametrize("epoch", [0, 1, 2])
def test_shuffle_every_sample_once_no_overlap_across_ranks(epoch):
    """K = 1: a plain shuffle, every sample exactly once per epoch, no sample on two ranks."""
    labels = make_labels([4] * 20 + [3, 2, 1, 6, 4])  # 96 samples = 6 global batches of 2 x 8
    per_rank = rank_batches(labels, batch=8, k=1, world=2, epoch=epoch)
    assert len(per_rank[0]) == len(per_rank[1]) == 6
    seen = [set(i for b in batches for i in b) for batches in per_rank]
    assert not seen[0] & seen[1]
    assert sorted(i for batches in per_rank for b in batches for i in b) == list(range(96))


@pytest.mark.parametrize("world, accum", [(1, 1), (2, 1), (4, 1), (2, 2)])
def test_exact_pk_on_a_market_like_label_set(world, accum):
    """Oracle: the definition of P x K (rsb's RandomIdentitySampler gives it in every batch):
    every rank-batch is P distinct identities x K images, no identity in two ranks' batches
    of one step, no image twice in an epoch (identities with >= K images)."""
    rng = np.random.default_rng(0)
    counts = rng.integers(2, 33, size=751)
    labels = np.repeat(np.arange(751), counts)
    rng.shuffle(labels)
    p, k = 16 // world, 4
    samplers = [IdentityBatchSampler(labels, p * k, k, num_replicas=world, rank=r, seed=3, grad_accum=accum)
                for r in range(world)]
    per_rank = [[[i for i, _ in b] for b in s] for s in samplers]
    n_chunks = int(np.maximum(counts // k, 1).sum())
    assert len(per_rank[0]) == n_chunks // (p * world * accum) * accum
    for step in range(len(per_rank[0]) // accum):
        step_ids = []
        for r in range(world):
            for m in range(accum):
                ids = labels[per_rank[r][step * accum + m]]
                c = Counter(ids.tolist())
                assert len(c) == p and set(c.values()) == {k}
                step_ids += list(c)
        assert len(step_ids) == len(set(step_ids))  # distinct across ranks and micro-batches
    flat = [i for batches in per_rank for b in batches for i in b if counts[labels[i]] >= k]
    assert len(flat) == len(set(flat))


def test_short_identities_fill_one_chunk_with_their_own_images():
    """An identity with fewer than K images appears as one chunk of K of its own images
    (drawn with replacement, as rsb); others lose their count % K extra images."""
    labels = make_labels([1, 2, 3] * 8 + [4] * 6 + [5] * 6)  # 36 identities, one chunk of 3 each
    s = IdentityBatchSampler(labels, 6, 3, seed=1)
    assert s.steps_per_epoch() == 18
    batches = [[i for i, _ in b] for b in s]
    seen = Counter()
    for b in batches:
        for j in range(0, 6, 3):
            chunk = b[j:j + 3]
            assert len({labels[i] for i in chunk}) == 1
            seen[labels[chunk[0]]] += 1
    assert set(seen.values()) == {1}  # every identity once: one chunk each


def test_drop_last_and_padding():
    """K = 1: the incomplete end is dropped, or completed from the start of the epoch."""
    labels = list(range(43))  # 43 samples, global batch 16
    dropped = rank_batches(labels, batch=8, k=1, world=2, drop_last=True)
    flat = [i for batches in dropped for b in batches for i in b]
    assert len(flat) == 32 and len(set(flat)) == 32  # 43 - 32 = 11 < 16 dropped
    padded = rank_batches(labels, batch=8, k=1, world=2, drop_last=False)
    flat = [i for batches in padded for b in batches for i in b]
    counts = Counter(flat)
    assert len(flat) == 48 and set(counts) == set(range(43))  # all covered
    assert sum(c - 1 for c in counts.values()) == 48 - 43  # the only repeats are the padding


def test_deterministic_per_epoch_and_seed():
    labels = make_labels([4] * 12)
    a = rank_batches(labels, 8, 4, 2, epoch=3, seed=7)
    assert a == rank_batches(labels, 8, 4, 2, epoch=3, seed=7)
    assert a != rank_batches(labels, 8, 4, 2, epoch=4, seed=7)
    assert a != rank_batches(labels, 8, 4, 2, epoch=3, seed=8)


def test_world_size_invariance():
    """One rank with batch 2B sees, step by step, the gathered batches of two ranks with batch B
    (indices and per-sample seeds): what makes 1-process and DDP runs comparable."""
    labels = make_labels([4] * 10 + [2, 3, 5, 7])
    one = IdentityBatchSampler(labels, 16, 4, num_replicas=1, rank=0, seed=5)
    two = [IdentityBatchSampler(labels, 8, 4, num_replicas=2, rank=r, seed=5) for r in range(2)]
    for s in [one, *two]:
        s.set_epoch(2)
    for b1, b_r0, b_r1 in zip(one, *two, strict=True):
        assert b1 == b_r0 + b_r1


def test_resume_from_position():
    labels = make_labels([4] * 12 + [3, 5])
    full = IdentityBatchSampler(labels, 8, 4, num_replicas=2, rank=1, seed=1)
    full.set_epoch(4)
    every = list(full)
    resumed = IdentityBatchSampler(labels, 8, 4, num_replicas=2, rank=1, seed=1)
    resumed.load_state_dict({"epoch": 4, "batches_consumed": 2})
    assert len(resumed) == len(every) - 2
    assert list(resumed) == every[2:]
    assert resumed.state_dict(batches_consumed=3) == {"epoch": 4, "batches_consumed": 3}


def test_invalid_settings_are_reported():
    with pytest.raises(ConfigError, match="train.batch_size"):
        IdentityBatchSampler([0, 0, 1, 1], 6, 4)
    with pytest.raises(DataError, match="fewer than one global batch"):
        IdentityBatchSampler([0, 0, 1, 1], 4, 2, num_replicas=2)
    with pytest.raises(DataError, match="fewer than the 4 distinct identities"):
        IdentityBatchSampler([0] * 8 + [1] * 8 + [2] * 8, 4, 2, num_replicas=2)
    with pytest.raises(ConfigError, match="sampler.num_instances"):
        IdentityBatchSampler(None, 4, 2, num_samples=16)


def test_unlabelled_sampler_is_a_shuffle():
    s = IdentityBatchSampler(None, 5, 1, num_samples=20, seed=3)
    flat = [i for b in s for i, _ in b]
    assert sorted(flat) == list(range(20)) and flat != list(range(20))


class Augmenting(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return (i, torch.rand(2), np.random.rand(), random.random())


def test_seeded_dataset_reproducible_and_isolated():
    """The item depends only on (index, seed), and the caller's global RNG is left untouched."""
    ds = SeededDataset(Augmenting())
    torch.manual_seed(0)
    expected_next = torch.rand(1)
    torch.manual_seed(0)
    a = ds[(1, 99)]
    ds[(2, 5)]
    b = ds[(1, 99)]
    assert torch.equal(a[1], b[1]) and a[2] == b[2] and a[3] == b[3]
    assert not torch.equal(ds[(1, 98)][1], a[1])
    assert torch.equal(torch.rand(1), expected_next)


def test_accumulation_invariance():
    """Two ranks x 2 accumulated micro-batches of 4 = one rank with batch 16, per optimizer step."""
    labels = make_labels([4] * 10 + [2, 3, 5, 7])
    one = IdentityBatchSampler(labels, 16, 4, seed=5)
    split = [iter(IdentityBatchSampler(labels, 4, 4, num_replicas=2, rank=r, seed=5, grad_accum=2))
             for r in range(2)]
    assert len(IdentityBatchSampler(labels, 4, 4, num_replicas=2, rank=0, grad_accum=2)) == 2 * len(one)
    for step_batch in one:
        gathered = []
        for _m in range(2):
            for r in range(2):
                gathered += next(split[r])
        assert gathered == step_batch
