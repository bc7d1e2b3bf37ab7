"""What a training kind (pretrain, finetune, bot, mgn, par, ...) plugs into the engine.

A task is a :class:`Task` subclass; the engine owns everything else (distribution,
sampling, precision, accumulation, clipping, schedule, checkpoints, logging). Register it
under a name, at the definition, so that ``plip train NAME`` finds it::

    from plip.training import Task, TrainData, register_task

    @register_task("mine")
    class MyTask(Task):
        config_class = MyRunConfig            # a RunConfig subclass (optional)

        def build_model(self, cfg): ...
        def build_train_data(self, cfg): return TrainData(dataset, labels=person_ids)
        def training_step(self, model, batch, ctx):
            img_emb, txt_emb = model(batch["images"], batch["input_ids"], batch["attention_mask"])
            img_all, txt_all = ctx.gather(img_emb), ctx.gather(txt_emb)   # whole global batch
            ids_all = ctx.gather(batch["pids"])
            return {"loss": my_loss(img_all, txt_all, ids_all)}

``plip train package.module:MyTask`` also works without registering.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

import torch
from torch import nn
from torch.utils.data import Dataset

from ..errors import ConfigError
from .config import RunConfig
from .distributed import gather_with_grad
from .optim import param_groups_by_prefix

__all__ = [
    "Task",
    "TrainData",
    "StepContext",
    "register_task",
    "get_task",
    "list_tasks",
    "unwrap_model",
]


@dataclass
class TrainData:
    """The training set of a task.

    Attributes:
        dataset: a map-style dataset; ``dataset[i]`` returns one sample. Its random
            augmentations should use Python's ``random``, NumPy's or torch's global
            generators: the engine seeds them per sample (see
            :class:`plip.training.sampler.SeededDataset`). If it has ``set_epoch(epoch)``,
            the engine calls it before each epoch (e.g. for a mask ratio that grows).
        labels: identity label of each sample, for the P x K identity sampler; ``None``
            treats every sample as its own identity (plain shuffling).
        collate_fn: how samples become a batch (default: torch's ``default_collate``).
    """

    dataset: Dataset
    labels: Sequence[Any] | None = None
    collate_fn: Callable[[list[Any]], Any] | None = None


@dataclass
class StepContext:
    """What :meth:`Task.training_step` knows about where training stands.

    Attributes:
        epoch: current epoch (0-based).
        epochs: total epochs (``train.epochs``).
        step: optimizer steps done so far (the step this micro-batch contributes to is
            ``step + 1``).
        micro_step: index of this micro-batch within the gradient-accumulation group.
        epoch_progress: fractional epoch (``epoch + batches done / batches per epoch``).
        rank, world_size: this process and the number of processes.
        device: where the batch is.
        cfg: the run configuration.
    """

    epoch: int
    epochs: int
    step: int
    micro_step: int
    epoch_progress: float
    rank: int
    world_size: int
    device: torch.device
    cfg: RunConfig

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """All ranks' ``tensor`` concatenated in rank order, gradients kept
        (:func:`plip.training.distributed.gather_with_grad`); identity in one process.
        Works for labels (integer tensors) too."""
        return gather_with_grad(tensor)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel (or compiled) wrapper."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


class Task:
    """Base class of a training kind; override the methods marked *required*.

    The engine calls, in order: ``build_model`` (seeded identically on every rank),
    ``build_train_data``, ``param_groups``; then per micro-batch ``training_step`` (inside
    autocast); every ``eval.every_epochs`` epochs ``evaluate`` (rank 0, eval mode, no
    grad); at the end ``export`` (rank 0).
    """

    #: the configuration class of this task (``plip train TASK`` validates against it)
    config_class: type[RunConfig] = RunConfig
    #: the shipped recipe ``plip train TASK`` uses without ``--config`` (the task's defaults)
    default_recipe: str | None = None

    def check_inputs(self, cfg: RunConfig) -> None:
        """Fail at once on inputs that cannot be read (a missing data folder or file), before
        the engine builds the model; raise ConfigError / DataError naming the key or path."""

    def build_model(self, cfg: RunConfig) -> nn.Module:
        """*Required.* The module to train (heads included), on CPU; the engine moves it.

        Freeze parameters with ``requires_grad_(False)``: they are left out of the
        optimizer and cost no backward compute.
        """
        raise NotImplementedError

    def build_train_data(self, cfg: RunConfig) -> TrainData:
        """*Required.* The training set and its identity labels."""
        raise NotImplementedError

    def param_groups(self, model: nn.Module, cfg: RunConfig) -> list[dict[str, Any]]:
        """Parameter groups with ``lr_mult`` (and optional per-group options).

        Default: :func:`plip.training.optim.param_groups_by_prefix` with
        ``optim.lr_mult`` and ``optim.no_weight_decay_1d``. Frozen parameters must be left out.
        """
        return param_groups_by_prefix(model, cfg.optim.lr_mult,
                                      no_weight_decay_1d=cfg.optim.no_weight_decay_1d)

    def training_step(self, model: nn.Module, batch: Any, ctx: StepContext) -> dict[str, torch.Tensor]:
        """*Required.* Forward one micro-batch and return the loss terms.

        ``model`` may be wrapped in DistributedDataParallel: run the forward by *calling*
        it (``model(...)``) once per step, since calling submodules directly would bypass
        DDP's gradient synchronisation; reach attributes through :func:`unwrap_model`.
        Use ``ctx.gather`` for losses that need the whole global batch.

        Returns:
            A dict of scalar tensors; ``"loss"`` (required) is back-propagated, every
            entry is logged (averaged over ranks and steps).
        """
        raise NotImplementedError

    def extra_optimizers(self, model: nn.Module, cfg: RunConfig) -> dict[str, torch.optim.Optimizer]:
        """Optimizers of their own for parameters left out of :meth:`param_groups` (e.g. BoT's
        centres), by name. The engine steps them after the main optimizer, outside the
        learning-rate schedule, and checkpoints them. Default: none."""
        return {}

    def evaluate(self, model: nn.Module, cfg: RunConfig) -> dict[str, float] | None:
        """Metrics on the held-out split (rank 0 only, ``model.eval()``, no grad), or ``None``."""
        return None

    def export(self, model: nn.Module, out_dir: str) -> None:
        """Write the final model (e.g. ``save_pretrained`` folder) to ``out_dir`` (rank 0)."""

    def state_dict(self) -> dict[str, Any]:
        """Extra task state to checkpoint (tensors / plain values only)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


TaskFactory = Callable[[], Task]
_REGISTRY: dict[str, TaskFactory] = {}
_T = TypeVar("_T")


def register_task(name: str, factory: TaskFactory | None = None, *, overwrite: bool = False) -> Any:
    """Make ``plip train NAME`` build a task; use it as a decorator at the definition::

        @register_task("bot")
        class BoTTask(Task): ...

    Args:
        name: the task name on the command line.
        factory: a :class:`Task` subclass or a callable returning a task; omitted, the call
            returns the decorator.
        overwrite: replace an existing registration.

    Returns:
        The decorator (which returns the class unchanged), or ``factory``.
    """
    def add(obj: _T) -> _T:
        if name in _REGISTRY and _REGISTRY[name] is not obj and not overwrite:
            raise ValueError(f"task '{name}' is already registered")
        _REGISTRY[name] = obj  # type: ignore[assignment]
        return obj

    return add if factory is None else add(factory)  # type: ignore[arg-type]


def _load_builtin_tasks() -> None:
    # The shipped tasks register themselves when their package is imported (timm style).
    importlib.import_module("plip.training.tasks")


def list_tasks() -> list[str]:
    """Registered task names."""
    _load_builtin_tasks()
    return sorted(_REGISTRY)


def _import_ref(ref: str) -> Any:
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(f"task '{ref}': cannot import module '{module_name}': {err}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"task '{ref}': module '{module_name}' has no attribute '{attr}'") from None


def get_task(name: str) -> Task:
    """Build the task registered as ``name`` (or given as ``"package.module:attr"``).

    Raises:
        ConfigError: unknown name (with the registered names).
    """
    _load_builtin_tasks()
    factory: Any = _REGISTRY.get(name)
    if factory is None:
        if ":" not in name:
            known = ", ".join(list_tasks()) or "none registered"
            raise ConfigError(f"unknown training task '{name}' (known tasks: {known}; "
                              "or give package.module:TaskClass)")
        factory = _import_ref(name)
    task = factory()
    if not isinstance(task, Task):
        raise ConfigError(f"task '{name}' did not produce a plip.training.Task (got {type(task).__name__})")
    return task
