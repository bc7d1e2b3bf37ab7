"""Overhead of the training engine against a bare PyTorch loop, measured in the same run.

The same model, data and optimizer are trained for the same steps (a) by a plain loop
(DataLoader with shuffle, forward, backward, AdamW step) and (b) by
``plip.training.train`` (identity sampler, per-sample seeding, scheduler, metrics,
checkpoint at the end). Reported: samples/s of both and their ratio, the per-sample cost of
:class:`~plip.training.sampler.SeededDataset`, and the time the sampler needs to lay out
one epoch at SYNTH-PEDES scale (4.7M images, 312k identities; ``--synth-scale``).

    PYTHONPATH=. python benchmarks/training_engine_overhead.py [--steps 40] [--synth-scale]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from plip.training import ModelConfig, RunConfig, Task, TrainData, load_config, train
from plip.training.metrics import read_metrics
from plip.training.sampler import IdentityBatchSampler, SeededDataset

IDS, PER_ID, H, W = 64, 8, 64, 32


class Images(Dataset):
    """Random 3x64x32 'person images' with a random horizontal flip."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(IDS * PER_ID, 3, H, W, generator=g)
        self.y = [i // PER_ID for i in range(IDS * PER_ID)]

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        x = self.x[i]
        if torch.rand(()) < 0.5:
            x = x.flip(-1)
        return x, self.y[i]


def make_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, IDS),
    )


@dataclass
class BenchModel(ModelConfig):
    pass


@dataclass
class BenchConfig(RunConfig):
    model: BenchModel = field(default_factory=BenchModel)


class BenchTask(Task):
    config_class = BenchConfig

    def build_model(self, cfg):
        return make_model()

    def build_train_data(self, cfg):
        ds = Images()
        return TrainData(ds, labels=ds.y)

    def training_step(self, model, batch, ctx):
        x, y = batch
        return {"loss": F.cross_entropy(model(x), y)}


def bare_loop(steps: int, batch: int, skip: int) -> float:
    """Samples/s of a plain loop over steps ``skip..steps`` (the first ones warm up)."""
    torch.manual_seed(0)
    model = make_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = DataLoader(Images(), batch_size=batch, shuffle=True, drop_last=True)
    done, t0 = 0, None
    while done < steps:
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            if done == skip:
                t0 = time.perf_counter()
            if done == steps:
                break
    return (steps - skip) * batch / (time.perf_counter() - t0)


def engine_loop(steps: int, batch: int, skip: int) -> float:
    """Samples/s of the engine over the same steps, from its metrics.jsonl records."""
    with tempfile.TemporaryDirectory() as out:
        cfg = load_config(BenchConfig, None, [
            f"train.batch_size={batch}", f"train.max_steps={steps}", "train.epochs=100",
            "optim.name=adamw", "optim.lr=1e-3", "logging.progress=false", f"logging.every_steps={skip}",
            "data.num_workers=0", f"output_dir={out}", "train.device=cpu",
        ])
        train(BenchTask(), cfg)
        recs = read_metrics(f"{out}/metrics.jsonl", "step")[1:]  # the first interval warms up
        samples = skip * batch  # per record
        return len(recs) * samples / sum(samples / r["samples_per_s"] for r in recs)


def seeded_overhead(n: int = 2000) -> float:
    ds = Images()
    seeded = SeededDataset(ds)
    t0 = time.perf_counter()
    for i in range(n):
        ds[i % len(ds)]
    plain = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(n):
        seeded[(i % len(ds), i)]
    return (time.perf_counter() - t0 - plain) / n * 1e6


def worker_seeding_cost(n: int = 2000) -> float:
    """Per-sample cost of seeding in a loader worker (no save / restore there)."""
    from plip.training.sampler import _seed_globals

    t0 = time.perf_counter()
    for i in range(n):
        _seed_globals(i * 7919)
    return (time.perf_counter() - t0) / n * 1e6


def synth_scale_layout() -> tuple[float, float]:
    rng = np.random.default_rng(0)
    per = rng.poisson(14, size=312_321) + 1
    labels = np.repeat(np.arange(len(per)), per)
    rng.shuffle(labels)
    t0 = time.perf_counter()
    sampler = IdentityBatchSampler(labels, 128, 4, num_replicas=4, rank=0)
    init = time.perf_counter() - t0
    t0 = time.perf_counter()
    sampler.global_order(0)
    return init, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--skip", type=int, default=10, help="warm-up steps not timed")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--synth-scale", action="store_true")
    args = parser.parse_args()
    bare, eng = [], []
    for _ in range(args.repeats):  # interleaved, best of N: the machine is shared
        bare.append(bare_loop(args.steps, args.batch, args.skip))
        eng.append(engine_loop(args.steps, args.batch, args.skip))
    b, e = max(bare), max(eng)
    print(f"bare loop : {b:8.1f} samples/s (best of {args.repeats})")
    print(f"engine    : {e:8.1f} samples/s (best of {args.repeats})")
    print(f"ratio engine/bare: {e / b:.3f}")
    print(f"SeededDataset overhead: {seeded_overhead():.1f} us per sample in the main process "
          f"(num_workers=0), {worker_seeding_cost():.1f} us in a loader worker")
    if args.synth_scale:
        init, layout = synth_scale_layout()
        print(f"sampler at SYNTH-PEDES scale (4.7M samples): init {init:.2f} s, epoch layout {layout:.2f} s")


if __name__ == "__main__":
    main()
