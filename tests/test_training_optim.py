"""Optimizers, parameter groups and the learning-rate schedule.

References: hand-computed schedule values from the formulas in plip.training.optim
(linear warm-up f + (1 - f) e / W, multistep gamma^(#milestones <= e), cosine
(1 + cos(pi t)) / 2) and the linear scaling rule lr * global / reference.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from plip.errors import ConfigError
from plip.training.config import OptimConfig, ScheduleConfig
from plip.training.optim import (
    build_optimizer,
    build_scheduler,
    lr_factor,
    param_groups_by_prefix,
    scaled_lr,
)


def lrs_over(sched_cfg, epochs, steps_per_epoch, n_steps, base=0.1):
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base)
    sch = build_scheduler(opt, sched_cfg, epochs, steps_per_epoch)
    out = []
    for _ in range(n_steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    return out


def test_multistep_with_warmup_per_step():
    cfg = ScheduleConfig(name="multistep", warmup_epochs=2, warmup_factor=0.1, milestones=[4, 6], gamma=0.1)
    lrs = lrs_over(cfg, epochs=8, steps_per_epoch=10, n_steps=80)
    assert lrs[0] == pytest.approx(0.1 * 0.1)  # start of warm-up
    assert lrs[5] == pytest.approx(0.1 * (0.1 + 0.9 * 0.5 / 2))  # epoch 0.5
    assert lrs[10] == pytest.approx(0.1 * (0.1 + 0.9 * 1 / 2))  # epoch 1
    assert lrs[20] == pytest.approx(0.1)  # warm-up over
    assert lrs[39] == pytest.approx(0.1)  # just before the first milestone
    assert lrs[40] == pytest.approx(0.01)  # epoch 4
    assert lrs[60] == pytest.approx(0.001)  # epoch 6
    assert lrs[79] == pytest.approx(0.001)


def test_per_epoch_granularity_changes_only_at_epoch_starts():
    cfg = ScheduleConfig(name="multistep", warmup_epochs=2, warmup_factor=0.1, milestones=[4], per="epoch")
    lrs = lrs_over(cfg, epochs=6, steps_per_epoch=10, n_steps=60)
    assert lrs[0] == lrs[9] == pytest.approx(0.01)
    assert lrs[10] == lrs[15] == pytest.approx(0.1 * 0.55)
    assert lrs[20] == pytest.approx(0.1) and lrs[40] == pytest.approx(0.01)


def test_step_cosine_constant_factors():
    step = ScheduleConfig(name="step", step_size=2, gamma=0.5)
    assert [lr_factor(e, step, 10) for e in (0, 1.9, 2, 5, 6)] == pytest.approx([1, 1, 0.5, 0.25, 0.125])
    cos = ScheduleConfig(name="cosine", warmup_epochs=1, warmup_factor=0.0, min_lr_ratio=0.1)
    assert lr_factor(0.5, cos, 5) == pytest.approx(0.5)  # warm-up half way
    assert lr_factor(1, cos, 5) == pytest.approx(1.0)
    assert lr_factor(3, cos, 5) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(5, cos, 5) == pytest.approx(0.1)
    assert lr_factor(3.3, ScheduleConfig(name="constant"), 5) == 1.0


def test_paper_recipe_schedule():
    """PLIP: warm-up 10 epochs, x0.1 at epochs 30 and 50, 70 epochs."""
    cfg = ScheduleConfig(name="multistep", warmup_epochs=10, warmup_factor=0.1, milestones=[30, 50], gamma=0.1)
    assert lr_factor(5, cfg, 70) == pytest.approx(0.55)
    assert lr_factor(29.99, cfg, 70) == pytest.approx(1.0)
    assert lr_factor(30, cfg, 70) == pytest.approx(0.1)
    assert lr_factor(50, cfg, 70) == pytest.approx(0.01)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.visual = nn.Linear(3, 3)
        self.text = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3))
        self.textual = nn.Linear(3, 3)  # shares a string prefix with "text", not a component
        self.frozen = nn.Linear(3, 3).requires_grad_(False)


def test_param_groups_by_prefix_and_lr_mult():
    model = Tiny()
    groups = param_groups_by_prefix(model, {"text": 0.1}, no_weight_decay_1d=True)
    names = {g["name"]: g for g in groups}
    assert set(names) == {"default", "default.no_decay", "text", "text.no_decay"}
    frozen = {id(p) for p in model.frozen.parameters()}
    assert not any(id(p) in frozen for g in groups for p in g["params"])
    assert {id(p) for p in names["text"]["params"]} == {id(model.text[0].weight)}
    assert id(model.textual.weight) in {id(p) for p in names["default"]["params"]}
    assert names["text.no_decay"]["weight_decay"] == 0.0

    opt = build_optimizer(groups, OptimConfig(name="adamw", lr=0.02, weight_decay=0.05, lr_mult={"text": 0.1}))
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs["text"] == pytest.approx(0.002) and lrs["default"] == pytest.approx(0.02)
    wds = {g["name"]: g["weight_decay"] for g in opt.param_groups}
    assert wds["default"] == 0.05 and wds["text.no_decay"] == 0.0


def test_lr_mult_key_matching_nothing_is_an_error():
    with pytest.raises(ConfigError, match=r"'optim\.lr_mult\.txt'"):
        param_groups_by_prefix(Tiny(), {"txt": 0.1})
    with pytest.raises(ConfigError, match=r"'optim\.lr_mult\.frozen'"):
        param_groups_by_prefix(Tiny(), {"frozen": 0.1})  # frozen parameters are not trained
    groups = [{"name": "all", "params": list(Tiny().visual.parameters())}]
    with pytest.raises(ConfigError, match=r"'optim\.lr_mult\.bert'"):
        build_optimizer(groups, OptimConfig(lr_mult={"bert": 0.1}))


@pytest.mark.parametrize("name, cls", [("adan", "Adan"), ("adamw", "AdamW"), ("sgd", "SGD")])
def test_optimizers(name, cls):
    model = Tiny()
    betas = {"adan": (0.98, 0.92, 0.99), "adamw": (0.9, 0.99), "sgd": None}[name]
    opt = build_optimizer(param_groups_by_prefix(model), OptimConfig(name=name, lr=0.01, betas=betas))
    assert type(opt).__name__ == cls
    if betas:
        assert tuple(opt.param_groups[0]["betas"]) == betas
    loss = model.visual(torch.ones(1, 3)).sum()
    loss.backward()
    before = model.visual.weight.detach().clone()
    opt.step()
    assert not torch.equal(before, model.visual.weight)


def test_linear_scaling_rule_is_opt_in():
    assert scaled_lr(0.002, None, 128) == 0.002
    assert scaled_lr(0.002, 512, 128) == pytest.approx(0.0005)
