"""Training: the task-agnostic engine (DDP, P x K sampler, AMP, checkpoints) and its tasks.

Entry points: ``plip train TASK --config cfg.yaml [key=value ...] [--resume latest]`` and
``torchrun --nproc_per_node=N -m plip.training TASK ...``; from Python, :func:`train`.
A training kind is a :class:`Task` registered with :func:`register_task`.
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

# The PLIP tasks, imported on first use (``plip train pretrain|finetune``).
register_task("pretrain", "plip.training.plip_tasks:PretrainTask")
register_task("finetune", "plip.training.plip_tasks:FinetuneTask")
# The downstream models on the PLIP backbone (``plip train bot|mgn|par``).
register_task("bot", "plip.downstream.tasks:BoTTask")
register_task("mgn", "plip.downstream.tasks:MGNTask")
register_task("par", "plip.downstream.tasks:PARTask")

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
