"""Optimizers (Adan, AdamW, Adam with coupled L2, SGD), parameter groups and the learning-rate schedule.

Parameter groups
    A group is a dict ``{"params": [...], "name": str, "lr_mult": float, ...}``; the
    optimizer gets ``lr = base_lr * lr_mult`` for it (any other key, e.g.
    ``weight_decay``, is passed to the optimizer as a per-group option). Parameters with
    ``requires_grad=False`` are never put in a group: freeze layers that way, so they cost
    no backward compute and DDP does not wait for their gradients.

Learning rate and global batch
    ``optim.lr`` is used as given, whatever the number of GPUs, unless
    ``optim.reference_batch`` is set: then the linear scaling rule applies,
    ``lr = optim.lr * global_batch / optim.reference_batch`` where
    ``global_batch = train.batch_size * world_size * train.grad_accum`` (the samples per
    optimizer step). Recipes state the global batch their ``lr`` was tuned for; to keep a
    recipe's results when changing the number of GPUs, keep the global batch (raise
    ``train.grad_accum`` or ``train.batch_size``) or opt in to the scaling rule.

Schedule
    ``factor(e) = warmup(e) * decay(e)`` multiplies each group's learning rate, where ``e``
    is the epoch (fractional with ``schedule.per=step``: ``optimizer_steps /
    steps_per_epoch``; whole with ``per=epoch``, so the rate changes only when an epoch
    starts):

    - ``warmup(e) = f + (1 - f) * e / W`` for ``e < W`` (``W = warmup_epochs``,
      ``f = warmup_factor``), else 1;
    - ``step``: ``gamma ** floor(e / step_size)``;
    - ``multistep``: ``gamma ** (number of milestones <= e)``, milestones counted from epoch
      0 (the paper's "x0.1 at epochs 30 and 50");
    - ``cosine``: 1 during warm-up, then ``m + (1 - m) * (1 + cos(pi * (e - W) / (E - W))) / 2``
      (``m = min_lr_ratio``, ``E = train.epochs``);
    - ``constant``: 1.

    The scheduler is a ``torch.optim.lr_scheduler.LambdaLR`` stepped after every
    optimizer step.
"""

from __future__ import annotations

import bisect
import math
from typing import Any, Iterable

import torch
from torch import nn

from ..errors import ConfigError
from .config import OptimConfig, ScheduleConfig

__all__ = [
    "ScaledGradSGD",
    "ScheduleLR",
    "param_groups_by_prefix",
    "build_optimizer",
    "scaled_lr",
    "lr_factor",
    "build_scheduler",
]


def param_groups_by_prefix(
    model: nn.Module,
    lr_mult: dict[str, float] | None = None,
    *,
    no_weight_decay_1d: bool = False,
) -> list[dict[str, Any]]:
    """Split the trainable parameters into groups by parameter-name prefix.

    Args:
        model: the model.
        lr_mult: ``{prefix: multiplier}``; a parameter takes the multiplier of the longest
            prefix its name starts with (a prefix matches whole name components:
            ``text`` matches ``text.pooler.dense.weight`` but not ``textual.weight``).
            Other parameters go to the group ``default`` (multiplier 1).
        no_weight_decay_1d: put 1-d parameters (biases, norm weights) in separate groups
            named ``<group>.no_decay`` with ``weight_decay=0``.

    Returns:
        Non-empty groups, in the order of first appearance.

    Raises:
        ConfigError: a prefix matches no trainable parameter.
    """
    lr_mult = dict(lr_mult or {})
    prefixes = sorted(lr_mult, key=len, reverse=True)
    groups: dict[str, dict[str, Any]] = {}
    used: set[str] = set()
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        prefix = next((p for p in prefixes if name == p or name.startswith(p + ".")), None)
        gname = prefix if prefix is not None else "default"
        if prefix is not None:
            used.add(prefix)
        decay = not (no_weight_decay_1d and param.ndim <= 1)
        key = gname if decay else f"{gname}.no_decay"
        if key not in groups:
            groups[key] = {"name": key, "params": [], "lr_mult": lr_mult.get(gname, 1.0)}
            if not decay:
                groups[key]["weight_decay"] = 0.0
        groups[key]["params"].append(param)
    unused = [p for p in lr_mult if p not in used]
    if unused:
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        hint = ", ".join(sorted({n.split(".")[0] for n in names})[:10])
        raise ConfigError(
            f"config key 'optim.lr_mult.{unused[0]}' matches no trainable parameter "
            f"(parameter names start with: {hint})"
        )
    return list(groups.values())


def scaled_lr(lr: float, reference_batch: int | None, global_batch: int) -> float:
    """The linear scaling rule: ``lr * global_batch / reference_batch`` (``lr`` if no reference)."""
    if reference_batch is None:
        return lr
    return lr * global_batch / reference_batch


def _check_groups(groups: list[dict[str, Any]]) -> None:
    seen: dict[int, str] = {}
    for i, g in enumerate(groups):
        name = g.get("name", f"#{i}")
        params = list(g["params"])
        if not params:
            raise ConfigError(f"parameter group '{name}' is empty")
        for p in params:
            if not p.requires_grad:
                raise ConfigError(f"parameter group '{name}' holds a frozen parameter (requires_grad=False)")
            if id(p) in seen:
                raise ConfigError(f"a parameter is in both groups '{seen[id(p)]}' and '{name}'")
            seen[id(p)] = name
        g["params"] = params


def build_optimizer(groups: Iterable[dict[str, Any]], cfg: OptimConfig, lr: float | None = None
                    ) -> torch.optim.Optimizer:
    """Create the optimizer named by ``cfg.name`` over ``groups``.

    Each group's learning rate is ``lr * lr_mult``, where ``lr_mult`` is the value of
    ``cfg.lr_mult[group name]`` (``<name>.no_decay`` groups use ``<name>``'s) when present,
    else the group's own ``lr_mult`` (default 1).

    Raises:
        ConfigError: a key of ``cfg.lr_mult`` names no group.

    Args:
        groups: parameter groups (see :func:`param_groups_by_prefix`).
        cfg: the optimizer section.
        lr: base learning rate (default ``cfg.lr``; pass :func:`scaled_lr`'s value).
    """
    base = cfg.lr if lr is None else lr
    groups = [dict(g) for g in groups]
    _check_groups(groups)
    known = {g.get("name") for g in groups} | {str(g.get("name")).removesuffix(".no_decay") for g in groups}
    unknown = [k for k in cfg.lr_mult if k not in known]
    if unknown:
        raise ConfigError(
            f"config key 'optim.lr_mult.{unknown[0]}' names no parameter group "
            f"(groups: {', '.join(str(g.get('name')) for g in groups)})"
        )
    for g in groups:
        name = str(g.get("name"))
        for key in (name, name.removesuffix(".no_decay")):
            if key in cfg.lr_mult:
                g["lr_mult"] = cfg.lr_mult[key]
                break
        g.setdefault("lr_mult", 1.0)
        g["lr"] = base * g["lr_mult"]
    kw: dict[str, Any] = {"lr": base, "weight_decay": cfg.weight_decay}
    if cfg.name == "adan":
        from timm.optim import Adan

        if cfg.betas is not None:
            kw["betas"] = tuple(cfg.betas)
        return Adan(groups, eps=cfg.eps, **kw)
    if cfg.name == "adamw":
        if cfg.betas is not None:
            kw["betas"] = tuple(cfg.betas)
        return torch.optim.AdamW(groups, eps=cfg.eps, **kw)
    if cfg.name == "adam":  # coupled L2: weight_decay * param is added to the gradient
        if cfg.betas is not None:
            kw["betas"] = tuple(cfg.betas)
        return torch.optim.Adam(groups, eps=cfg.eps, **kw)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, momentum=cfg.momentum, nesterov=cfg.nesterov, **kw)
    raise ConfigError(f"config key 'optim.name' must be one of 'adan', 'adamw', 'adam', 'sgd', got {cfg.name!r}")


class ScaledGradSGD(torch.optim.SGD):
    """Plain SGD that multiplies the gradients by ``grad_scale`` before its step.

    reid-strong-baseline's centre update: the centre loss enters the total loss with weight
    ``w``, and the centres' own SGD (lr 0.5) first divides their gradient by ``w``
    (``grad_scale = 1 / w``), so the centres move as if the centre loss had weight 1.
    """

    def __init__(self, params, lr: float, grad_scale: float = 1.0) -> None:
        super().__init__(params, lr=lr)
        self.grad_factor = float(grad_scale)

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.mul_(self.grad_factor)
        return super().step(closure)


def lr_factor(epoch: float, cfg: ScheduleConfig, total_epochs: int) -> float:
    """The learning-rate factor at (fractional) ``epoch``; see the module docstring."""
    w, e = cfg.warmup_epochs, epoch
    warm = cfg.warmup_factor + (1.0 - cfg.warmup_factor) * e / w if e < w else 1.0
    if cfg.name == "constant":
        decay = 1.0
    elif cfg.name == "step":
        decay = cfg.gamma ** math.floor(e / cfg.step_size)
    elif cfg.name == "multistep":
        decay = cfg.gamma ** bisect.bisect_right(cfg.milestones, e)
    elif cfg.name == "plateau":
        decay = 1.0  # the reductions are applied by ScheduleLR.report
    elif cfg.name == "cosine":
        span = total_epochs - w
        t = min(max((e - w) / span, 0.0), 1.0) if span > 0 else 1.0
        decay = cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))
    else:
        raise ConfigError(f"config key 'schedule.name' has unknown value {cfg.name!r}")
    return warm * decay


class ScheduleLR(torch.optim.lr_scheduler.LambdaLR):
    """The engine's schedule: :func:`lr_factor` over optimizer steps, times
    ``gamma ** reductions`` of the ``plateau`` decay.

    Step it once after every optimizer step; call :meth:`report` with the watched evaluation
    value after each evaluation (``plateau`` only). The plateau rule is
    ``torch.optim.lr_scheduler.ReduceLROnPlateau``'s (relative threshold, no cooldown).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, total_epochs: int,
                 steps_per_epoch: int) -> None:
        if steps_per_epoch < 1:
            raise ValueError("steps_per_epoch must be >= 1")
        self.cfg, self.total_epochs, self.steps_per_epoch = cfg, total_epochs, steps_per_epoch
        self.reductions, self.plateau_best, self.plateau_bad = 0, None, 0
        super().__init__(optimizer, self._factor)

    def _factor(self, step: int) -> float:
        e = step / self.steps_per_epoch
        if self.cfg.per == "epoch":
            e = math.floor(e)
        return lr_factor(e + self.cfg.epoch_offset, self.cfg, self.total_epochs) * self.cfg.gamma ** self.reductions

    def report(self, value: float) -> bool:
        """Feed the watched evaluation value; returns whether the rate was reduced."""
        if self.cfg.name != "plateau":
            return False
        t = self.cfg.plateau_threshold
        best = self.plateau_best
        better = best is None or (value < best * (1 - t) if self.cfg.plateau_mode == "min" else value > best * (1 + t))
        if better:
            self.plateau_best, self.plateau_bad = value, 0
            return False
        self.plateau_bad += 1
        if self.plateau_bad <= self.cfg.plateau_patience:
            return False
        self.reductions += 1
        self.plateau_bad = 0
        factor = self._factor(self.last_epoch)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):  # effective from now on
            group["lr"] = base * factor
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]
        return True

    def state_dict(self) -> dict[str, Any]:
        skip = ("optimizer", "lr_lambdas", "cfg", "total_epochs", "steps_per_epoch")
        state = {k: v for k, v in self.__dict__.items() if k not in skip}
        state["lr_lambdas"] = [None]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = {k: v for k, v in state_dict.items() if k != "lr_lambdas"}
        self.__dict__.update(state)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, total_epochs: int,
                    steps_per_epoch: int) -> ScheduleLR:
    """The :class:`ScheduleLR` implementing :func:`lr_factor` (and the plateau reductions).

    Step it once after every optimizer step; ``steps_per_epoch`` converts steps to epochs.
    """
    return ScheduleLR(optimizer, cfg, total_epochs, steps_per_epoch)
