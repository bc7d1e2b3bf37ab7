"""Training: the task-agnostic engine (DDP, P x K sampler, AMP, checkpoints) and its tasks.

Entry points: ``plip train TASK --config cfg.yaml [key=value ...] [--resume latest]`` and
``torchrun --nproc_per_node=N -m plip.training TASK ...``; from Python, :func:`train`.
A training kind is a :class:`Task` registered with ``@register_task(name)`` at its definition;
the shipped ones live in :mod:`plip.training.tasks` and register themselves on first lookup.
"""

from .config import (
    CheckpointConfig,
    DataConfig,
    EvalConfig,
    LoggingConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    SamplerConfig,
    ScheduleConfig,
    TrainConfig,
    load_config,
)
from .distributed import gather_with_grad, is_main
from .engine import TrainResult, train
from .task import StepContext, Task, TrainData, get_task, list_tasks, register_task, unwrap_model

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
