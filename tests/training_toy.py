"""A tiny metric-learning task for the engine's tests (not part of the package).

Samples are 8-d vectors around one prototype per identity, with a random augmentation
drawn from torch's global generator (so the tests also check per-sample seeding). The
model is an MLP embedding + a linear classifier, with no BatchNorm (so one process and
two DDP processes compute the same update). The loss is a per-sample cross-entropy (mean)
plus a supervised contrastive term over the embeddings *gathered from all ranks*, the
kind of loss (like CMPM) that needs the whole global batch.

Used in-process by the tests and by subprocesses as ``training_toy:ToyTask``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import Dataset

from plip.training import ModelConfig, RunConfig, Task, TrainData, register_task
from plip.training.config import DataConfig

DIM = 8


@dataclass
class ToyModelConfig(ModelConfig):
    hidden: int = 16
    dropout: float = 0.0
    contrastive_weight: float = 1.0
    crash_at_step: int | None = None  # raise before this optimizer step (simulated crash)
    sleep_s: float = 0.0  # per micro-batch, to make a real SIGKILL land mid-epoch


@dataclass
class ToyDataConfig(DataConfig):
    num_ids: int = 12
    per_id: list[int] = field(default_factory=lambda: [4])  # images per identity, cycled
    num_workers: int = 0
    noise: float = 0.3


@dataclass
class ToyConfig(RunConfig):
    model: ToyModelConfig = field(default_factory=ToyModelConfig)
    data: ToyDataConfig = field(default_factory=ToyDataConfig)


class ToyDataset(Dataset):
    def __init__(self, cfg: ToyDataConfig) -> None:
        g = torch.Generator().manual_seed(1234)
        self.protos = torch.randn(cfg.num_ids, DIM, generator=g)
        self.labels = [pid for pid in range(cfg.num_ids) for _ in range(cfg.per_id[pid % len(cfg.per_id)])]
        self.base = torch.randn(len(self.labels), DIM, generator=g) * 0.5
        self.noise = cfg.noise
        self.loaded = True

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        y = self.labels[i]
        x = self.protos[y] + self.base[i] + self.noise * torch.randn(DIM)  # augmentation
        return {"x": x, "y": torch.tensor(y)}


class ToyNet(nn.Module):
    def __init__(self, cfg: ToyModelConfig, num_ids: int) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(DIM, cfg.hidden), nn.Tanh(), nn.Dropout(cfg.dropout),
                                   nn.Linear(cfg.hidden, 8))
        self.classifier = nn.Linear(8, num_ids)

    def forward(self, x):
        emb = self.embed(x)
        return emb, self.classifier(emb)


def contrastive(emb: torch.Tensor, labels: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """Supervised contrastive loss: positives are the other samples of the same identity."""
    z = F.normalize(emb, dim=1)
    sim = z @ z.t() / temperature
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(eye, -1e9)
    pos = (labels[:, None] == labels[None, :]) & ~eye
    logp = F.log_softmax(sim, dim=1)
    n_pos = pos.sum(1).clamp(min=1)
    return -(logp * pos).sum(1).div(n_pos).mean()


class ToyTask(Task):
    config_class = ToyConfig
    data_built = 0

    def build_model(self, cfg: ToyConfig) -> nn.Module:
        return ToyNet(cfg.model, cfg.data.num_ids)

    def build_train_data(self, cfg: ToyConfig) -> TrainData:
        type(self).data_built += 1
        ds = ToyDataset(cfg.data)
        return TrainData(ds, labels=ds.labels)

    def training_step(self, model, batch, ctx):
        m = ctx.cfg.model
        if m.crash_at_step is not None and ctx.step + 1 >= m.crash_at_step:
            raise RuntimeError(f"simulated crash before step {ctx.step + 1}")
        if m.sleep_s:
            time.sleep(m.sleep_s)
        emb, logits = model(batch["x"])
        ce = F.cross_entropy(logits, batch["y"])
        emb_all = ctx.gather(emb)
        y_all = ctx.gather(batch["y"])
        con = contrastive(emb_all, y_all)
        return {"loss": ce + m.contrastive_weight * con, "ce": ce, "contrastive": con}

    def evaluate(self, model, cfg):
        ds = ToyDataset(cfg.data)
        x = ds.protos[torch.tensor(ds.labels)] + ds.base
        _, logits = model(x)
        acc = (logits.argmax(1) == torch.tensor(ds.labels)).float().mean().item()
        return {"acc": acc}

    def export(self, model, out_dir):
        os.makedirs(out_dir, exist_ok=True)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                  os.path.join(out_dir, "model.safetensors"))


register_task("toy", ToyTask, overwrite=True)
