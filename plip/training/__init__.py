"""Training: the task-agnostic engine (DDP, P x K sampler, AMP, checkpoints) and its tasks.

Entry points: ``plip train TASK --config cfg.yaml [key=value ...] [--resume latest]`` and
``torchrun --nproc_per_node=N -m plip.training TASK ...``; from Python, :func:`train`.
A training kind is a :class:`Task` registered with ``@register_task(name)`` at its definition;
the shipped ones live in :mod:`plip.training.tasks` and register themselves on first lookup.
"""

from typing import TYPE_CHECKING, Any

# Imported on first use (as `import plip`): `plip train --help` and recipe listing need no torch.
_EXPORTS = {
    **{name: "config" for name in (
        "CheckpointConfig", "DataConfig", "EvalConfig", "LoggingConfig", "ModelConfig", "OptimConfig",
        "RunConfig", "SamplerConfig", "ScheduleConfig", "TrainConfig", "load_config")},
    "gather_with_grad": "distributed", "is_main": "distributed",
    "TrainResult": "engine", "train": "engine",
    **{name: "task" for name in (
        "StepContext", "Task", "TrainData", "get_task", "list_tasks", "register_task", "unwrap_model")},
}

if TYPE_CHECKING:
    from .config import (
        CheckpointConfig, DataConfig, EvalConfig, LoggingConfig, ModelConfig, OptimConfig, RunConfig,
        SamplerConfig, ScheduleConfig, TrainConfig, load_config,
    )
    from .distributed import gather_with_grad, is_main
    from .engine import TrainResult, train
    from .task import StepContext, Task, TrainData, get_task, list_tasks, register_task, unwrap_model


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'plip.training' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = [
    "Task",
    "TrainData",
    "StepContext",
    "register_task",
    "get_task",
    "list_tasks",
    "unwrap_model",
    "train",
    "TrainResult",
    "load_config",
    "RunConfig",
    "ModelConfig",
    "DataConfig",
    "SamplerConfig",
    "OptimConfig",
    "ScheduleConfig",
    "TrainConfig",
    "CheckpointConfig",
    "EvalConfig",
    "LoggingConfig",
    "gather_with_grad",
    "is_main",
]
