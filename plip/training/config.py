"""Typed run configuration: dataclasses loaded from YAML, overridden from the command line.

A run is described by a :class:`RunConfig` (or a task's subclass of it that adds or
narrows sections). The configuration is built in three steps, all before any data is read:

1. a YAML file (or a recipe shipped in ``plip/training/recipes``) gives the values;
2. ``key.sub=value`` overrides from the command line replace them; each value is parsed
   with the type of the field it sets (``optim.lr=1e-3`` is a float,
   ``schedule.milestones=[30,50]`` a list, ``data.root=2024`` stays a string);
3. every value is checked against its field's type and against the section's rules
   (``validate``).

A mistake raises :class:`~plip.errors.ConfigError` naming the key: unknown keys come
with the closest valid spellings, wrong types with the expected type and the value given.

Tasks extend the configuration by subclassing the sections (e.g. a ``ModelConfig``
with a ``name`` and loss weights) and :class:`RunConfig` itself, overriding the
annotation of the section field::

    @dataclass
    class PretrainConfig(RunConfig):
        model: PretrainModelConfig = field(default_factory=PretrainModelConfig)
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, TypeVar, Union

import yaml

from ..errors import ConfigError
from ..utils.config import build_dataclass, field_hints, unknown_key_error
from ..utils.io import atomic_write_text

__all__ = [
    "ModelConfig",
    "DataConfig",
    "SamplerConfig",
    "OptimConfig",
    "ScheduleConfig",
    "TrainConfig",
    "CheckpointConfig",
    "EvalConfig",
    "LoggingConfig",
    "RunConfig",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "apply_overrides",
    "save_config",
    "dump_config",
    "atomic_write_text",
    "list_recipes",
    "recipe_path",
]

C = TypeVar("C")

RECIPES_DIR = Path(__file__).parent / "recipes"


# ----------------------------------------------------------------------------- sections
class _Section:
    """Mixin: ``validate(prefix)`` checks values beyond their types (ranges, consistency)."""

    def validate(self, prefix: str) -> None:  # pragma: no cover - overridden where needed
        pass


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"config key '{key}' {message}")


@dataclass
class ModelConfig(_Section):
    """Which model to build and which weights to start from (tasks add their own fields).

    Attributes:
        name: model name or architecture understood by the task (e.g. ``plip-rn50``).
        init: weights to start from: a registry name, a folder, or a checkpoint file;
            ``None`` starts from the task's default initialisation.
    """

    name: str = ""
    init: str | None = None


@dataclass
class DataConfig(_Section):
    """Where the training data lives and how it is loaded (tasks add their own fields).

    Attributes:
        root: dataset root folder.
        dataset: dataset name or reader understood by the task.
        image_size: (height, width) of the training images.
        num_workers: DataLoader worker processes per rank.
        pin_memory: pin host memory for faster copies to the GPU.
    """

    root: str = ""
    dataset: str = ""
    image_size: tuple[int, int] = (256, 128)
    num_workers: int = 2
    pin_memory: bool = True

    def validate(self, prefix: str) -> None:
        _require(all(s > 0 for s in self.image_size), f"{prefix}image_size",
                 f"must hold two positive sizes, got {list(self.image_size)}")
        _require(self.num_workers >= 0, f"{prefix}num_workers", f"must be >= 0, got {self.num_workers}")


@dataclass
class SamplerConfig(_Section):
    """How batches are drawn (see :class:`plip.training.sampler.IdentityBatchSampler`).

    Attributes:
        num_instances: K, images of one identity next to each other in a batch; each rank's
            batch holds ``P = train.batch_size // K`` identities. ``1`` gives a plain
            shuffle (identity labels unused).
        drop_last: drop the end of an epoch that does not fill a whole global batch
            (fewer than ``batch_size * world_size`` samples, different ones each epoch);
            ``False`` pads it with samples from the start of the epoch instead.
    """

    num_instances: int = 4
    drop_last: bool = True

    def validate(self, prefix: str) -> None:
        _require(self.num_instances >= 1, f"{prefix}num_instances", f"must be >= 1, got {self.num_instances}")


@dataclass
class OptimConfig(_Section):
    """Optimizer (see :mod:`plip.training.optim`).

    Attributes:
        name: ``adan`` (timm's Adan, the paper's optimizer), ``adamw``, ``adam`` (Adam with
            coupled L2: ``weight_decay`` is added to the gradient, as BoT and Rethinking-of-PAR
            train) or ``sgd``.
        lr: base learning rate, for the global batch ``reference_batch`` when that is set.
        weight_decay: decoupled weight decay (coupled L2 for SGD).
        betas: optimizer betas; ``None`` uses the optimizer's defaults
            (Adan: 3 values, AdamW: 2 values).
        eps: numerical epsilon of Adan / AdamW.
        momentum: SGD momentum.
        nesterov: SGD Nesterov momentum.
        lr_mult: learning-rate multipliers by parameter-name prefix
            (``{"text.encoder": 0.1}``); the longest matching prefix wins. Tasks may also
            return their own groups with an ``lr_mult``; these values override them by
            group name.
        no_weight_decay_1d: exempt biases and normalisation weights (1-d parameters)
            from weight decay.
        reference_batch: opt-in linear scaling rule: when set, the learning rate used is
            ``lr * global_batch / reference_batch`` with
            ``global_batch = train.batch_size * world_size * train.grad_accum``.
    """

    name: Literal["adan", "adamw", "adam", "sgd"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, ...] | None = None
    eps: float = 1e-8
    momentum: float = 0.9
    nesterov: bool = False
    lr_mult: dict[str, float] = field(default_factory=dict)
    no_weight_decay_1d: bool = False
    reference_batch: int | None = None

    def validate(self, prefix: str) -> None:
        _require(self.lr > 0, f"{prefix}lr", f"must be > 0, got {self.lr}")
        _require(self.weight_decay >= 0, f"{prefix}weight_decay", f"must be >= 0, got {self.weight_decay}")
        if self.betas is not None:
            n = {"adan": 3, "adamw": 2, "adam": 2}.get(self.name)
            _require(n is not None, f"{prefix}betas", f"is not used by optimizer '{self.name}'; remove it")
            _require(len(self.betas) == n, f"{prefix}betas",
                     f"needs {n} values for {self.name}, got {list(self.betas)}")
            _require(all(0 <= b < 1 for b in self.betas), f"{prefix}betas",
                     f"values must be in [0, 1), got {list(self.betas)}")
        for k, v in self.lr_mult.items():
            _require(v >= 0, f"{prefix}lr_mult.{k}", f"must be >= 0, got {v}")
        if self.reference_batch is not None:
            _require(self.reference_batch > 0, f"{prefix}reference_batch",
                     f"must be > 0, got {self.reference_batch}")


@dataclass
class ScheduleConfig(_Section):
    """Learning-rate schedule (see :func:`plip.training.optim.lr_factor`).

    Attributes:
        name: decay after warm-up: ``constant``, ``step`` (x gamma every ``step_size``
            epochs), ``multistep`` (x gamma at each of ``milestones``), ``cosine``
            (to ``min_lr_ratio`` at the last epoch) or ``plateau`` (x gamma when the
            evaluation result ``plateau_metric`` has not improved for more than
            ``plateau_patience`` evaluations: ``torch.optim.lr_scheduler.ReduceLROnPlateau``
            with a relative threshold).
        warmup_epochs: linear warm-up length in epochs (may be fractional).
        warmup_factor: learning-rate factor at the start of the warm-up.
        step_size: epochs between decays for ``step``.
        milestones: epochs (counted from 0, warm-up included) where ``multistep`` decays.
        gamma: decay factor of ``step`` / ``multistep``.
        min_lr_ratio: final factor of ``cosine``.
        per: ``step`` updates the rate after every optimizer step from the fractional
            epoch; ``epoch`` keeps it constant within an epoch (the value at its start).
        epoch_offset: evaluate the schedule this many epochs ahead (reid-strong-baseline
            steps its scheduler at the start of each epoch, so its epoch ``e`` uses the value
            at ``e + 1``: ``epoch_offset: 1`` with ``per: epoch``).
        plateau_metric, plateau_mode, plateau_patience, plateau_threshold: the ``plateau``
            decay (evaluation key, ``min``/``max``, patience, relative threshold).
    """

    name: Literal["constant", "step", "multistep", "cosine", "plateau"] = "multistep"
    warmup_epochs: float = 0.0
    warmup_factor: float = 0.1
    step_size: int = 10
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    min_lr_ratio: float = 0.0
    per: Literal["step", "epoch"] = "step"
    epoch_offset: int = 0
    plateau_metric: str = "loss"
    plateau_mode: Literal["min", "max"] = "min"
    plateau_patience: int = 4
    plateau_threshold: float = 1e-4

    def validate(self, prefix: str) -> None:
        _require(self.epoch_offset >= 0, f"{prefix}epoch_offset", f"must be >= 0, got {self.epoch_offset}")
        _require(self.plateau_patience >= 0, f"{prefix}plateau_patience",
                 f"must be >= 0, got {self.plateau_patience}")
        _require(self.warmup_epochs >= 0, f"{prefix}warmup_epochs", f"must be >= 0, got {self.warmup_epochs}")
        _require(0 <= self.warmup_factor <= 1, f"{prefix}warmup_factor",
                 f"must be in [0, 1], got {self.warmup_factor}")
        _require(self.step_size >= 1, f"{prefix}step_size", f"must be >= 1, got {self.step_size}")
        _require(list(self.milestones) == sorted(set(self.milestones)), f"{prefix}milestones",
                 f"must be strictly increasing, got {list(self.milestones)}")
        _require(self.gamma > 0, f"{prefix}gamma", f"must be > 0, got {self.gamma}")
        _require(0 <= self.min_lr_ratio <= 1, f"{prefix}min_lr_ratio",
                 f"must be in [0, 1], got {self.min_lr_ratio}")


@dataclass
class TrainConfig(_Section):
    """The training loop.

    Attributes:
        epochs: number of epochs.
        batch_size: samples per rank per micro-batch (P x K with the identity sampler).
        grad_accum: micro-batches per optimizer step.
        clip_grad_norm: clip the global gradient norm to this value (``None``: off).
        amp: mixed precision: ``none``, ``bf16`` (autocast; CUDA or CPU) or ``fp16``
            (autocast + gradient scaler; CUDA only).
        seed: base seed; rank ``r`` trains with ``seed + r``, the model is initialised
            with ``seed`` on every rank.
        sync_bn: convert BatchNorm layers to SyncBatchNorm when running on several GPUs.
        find_unused_parameters: passed to DistributedDataParallel.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda``.
        max_steps: stop after this many optimizer steps (smoke tests, benchmarks).
        deterministic: ask torch for deterministic algorithms (slower on GPU).
        dist_timeout_minutes: timeout of collective operations (evaluation runs on
            rank 0 while the others wait).
        ema_decay: keep an exponential moving average of the weights (parameters and
            floating-point buffers, updated after every optimizer step as timm's
            ``ModelEmaV2``), evaluated and exported instead of the raw weights; ``None``: off.
    """

    epochs: int = 1
    batch_size: int = 32
    grad_accum: int = 1
    clip_grad_norm: float | None = None
    amp: Literal["none", "bf16", "fp16"] = "none"
    seed: int = 0
    sync_bn: bool = False
    find_unused_parameters: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    max_steps: int | None = None
    deterministic: bool = False
    dist_timeout_minutes: int = 60
    ema_decay: float | None = None

    def validate(self, prefix: str) -> None:
        if self.ema_decay is not None:
            _require(0 < self.ema_decay < 1, f"{prefix}ema_decay", f"must be in (0, 1) (or null), got {self.ema_decay}")
        _require(self.epochs >= 1, f"{prefix}epochs", f"must be >= 1, got {self.epochs}")
        _require(self.batch_size >= 1, f"{prefix}batch_size", f"must be >= 1, got {self.batch_size}")
        _require(self.grad_accum >= 1, f"{prefix}grad_accum", f"must be >= 1, got {self.grad_accum}")
        if self.clip_grad_norm is not None:
            _require(self.clip_grad_norm > 0, f"{prefix}clip_grad_norm",
                     f"must be > 0 (or null), got {self.clip_grad_norm}")
        if self.max_steps is not None:
            _require(self.max_steps >= 1, f"{prefix}max_steps", f"must be >= 1, got {self.max_steps}")
        _require(self.dist_timeout_minutes >= 1, f"{prefix}dist_timeout_minutes",
                 f"must be >= 1, got {self.dist_timeout_minutes}")


@dataclass
class CheckpointConfig(_Section):
    """When training checkpoints are written (under ``<output_dir>/checkpoints``).

    Attributes:
        every_steps: also save every N optimizer steps (0: only at epoch ends).
        every_epochs: save every N epochs (the last epoch is always saved).
        keep_last: number of periodic checkpoints kept (``best.pt`` is kept apart).
    """

    every_steps: int = 0
    every_epochs: int = 1
    keep_last: int = 3

    def validate(self, prefix: str) -> None:
        _require(self.every_steps >= 0, f"{prefix}every_steps", f"must be >= 0, got {self.every_steps}")
        _require(self.every_epochs >= 1, f"{prefix}every_epochs", f"must be >= 1, got {self.every_epochs}")
        _require(self.keep_last >= 1, f"{prefix}keep_last", f"must be >= 1, got {self.keep_last}")


@dataclass
class EvalConfig(_Section):
    """Evaluation during training.

    Attributes:
        every_epochs: evaluate every N epochs and after the last one (0: never).
        metric: the key of the task's evaluation results that selects ``best.pt``.
        mode: whether a higher (``max``) or lower (``min``) metric is better.
    """

    every_epochs: int = 0
    metric: str = "R@1"
    mode: Literal["max", "min"] = "max"

    def validate(self, prefix: str) -> None:
        _require(self.every_epochs >= 0, f"{prefix}every_epochs", f"must be >= 0, got {self.every_epochs}")


@dataclass
class LoggingConfig(_Section):
    """Metrics and progress output.

    Attributes:
        every_steps: write a step record every N optimizer steps.
        jsonl: write ``<output_dir>/metrics.jsonl``.
        tensorboard: also write TensorBoard events to ``<output_dir>/tensorboard``
            (needs the ``tensorboard`` package).
        progress: show a progress bar on rank 0.
    """

    every_steps: int = 10
    jsonl: bool = True
    tensorboard: bool = False
    progress: bool = True

    def validate(self, prefix: str) -> None:
        _require(self.every_steps >= 1, f"{prefix}every_steps", f"must be >= 1, got {self.every_steps}")


@dataclass
class RunConfig(_Section):
    """A whole training run. Tasks subclass it to narrow or add sections."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    output_dir: str = "runs/train"

    def validate(self, prefix: str = "") -> None:
        _require(bool(self.output_dir), f"{prefix}output_dir", "must not be empty")
        k = self.sampler.num_instances
        _require(self.train.batch_size % k == 0, f"{prefix}train.batch_size",
                 f"({self.train.batch_size}) must be a multiple of sampler.num_instances ({k})")
        if self.schedule.name == "plateau":
            _require(self.eval.every_epochs >= 1, f"{prefix}eval.every_epochs",
                     "must be >= 1 with schedule.name 'plateau' (it watches the evaluation)")


# ----------------------------------------------------------------------------- typing helpers
_hints = field_hints


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _validate_tree(obj: Any, prefix: str) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            _validate_tree(value, f"{prefix}{f.name}.")
    if isinstance(obj, _Section):
        obj.validate(prefix)


# ----------------------------------------------------------------------------- public API
def config_from_dict(cls: type[C], data: Mapping[str, Any] | None, *, source: str = "") -> C:
    """Build and validate a config of type ``cls`` from a (nested) mapping.

    Raises:
        ConfigError: naming the key that is unknown, of the wrong type, or out of range.
    """
    cfg = build_dataclass(cls, data, source=source)
    _validate_tree(cfg, "")
    return cfg


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain nested dicts / lists (tuples become lists), ready for YAML/JSON."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(cfg)


def _field_type_at(cls: type, path: list[str], key: str) -> tuple[Any, list[str]]:
    """Walk ``path`` through the config classes; return the leaf type and the dict path.

    A dict-typed field swallows the rest of the path as one key (``optim.lr_mult.text.encoder``
    sets ``lr_mult["text.encoder"]``).
    """
    tp: Any = cls
    walked: list[str] = []
    i = 0
    while i < len(path):
        while _is_union(tp):  # Optional[Section]
            non_none = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = non_none[0] if len(non_none) == 1 else tp
            if len(non_none) != 1:
                break
        if dataclasses.is_dataclass(tp):
            fields = _fields(tp)
            name = path[i]
            if name not in fields:
                raise unknown_key_error(".".join(path[: i + 1]), list(fields), " (on the command line)")
            tp = _hints(tp)[name]
            walked.append(name)
            i += 1
        elif typing.get_origin(tp) is dict:
            walked.append(".".join(path[i:]))
            return typing.get_args(tp)[1], walked
        else:
            raise ConfigError(
                f"config key '{key}' is unknown: '{'.'.join(walked)}' is a value, not a section "
                "(on the command line)"
            )
    return tp, walked


def _parse_override_value(text: str, tp: Any) -> Any:
    """Parse a command-line value with the type of the field it sets."""
    if _is_union(tp) and text.strip().lower() in ("null", "none", "~"):
        return None
    plain = tp
    if _is_union(tp):
        non_none = [a for a in typing.get_args(tp) if a is not type(None)]
        plain = non_none[0] if len(non_none) == 1 else tp
    if plain is str:
        return text
    if typing.get_origin(plain) is Literal and all(isinstance(c, str) for c in typing.get_args(plain)):
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], cls: type) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides to a raw config mapping (a new dict is returned).

    Each key is checked against ``cls`` (unknown keys raise with suggestions) and each value
    parsed with the field's type.
    """
    import copy

    data = copy.deepcopy(dict(data or {}))
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override '{item}' must look like key.sub=value")
        path = key.split(".")
        tp, walked = _field_type_at(cls, path, key)
        value = _parse_override_value(text, tp)
        node = data
        for part in walked[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[walked[-1]] = value
    return data


def recipe_path(name: str) -> Path:
    """Path of a recipe shipped with plip (``plip/training/recipes/<name>.yaml``)."""
    return RECIPES_DIR / f"{name}.yaml"


def list_recipes() -> list[str]:
    """Names of the recipes shipped with plip."""
    if not RECIPES_DIR.is_dir():
        return []
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def _read_yaml(path: str | os.PathLike) -> tuple[dict[str, Any], str]:
    p = Path(path)
    if not p.exists() and not p.suffix and recipe_path(str(path)).exists():
        p = recipe_path(str(path))
    if not p.exists():
        recipes = list_recipes()
        hint = f" (shipped recipes: {', '.join(recipes)})" if recipes else ""
        raise ConfigError(f"config file '{path}' does not exist{hint}")
    try:
        with open(p, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except yaml.YAMLError as err:
        raise ConfigError(f"config file '{p}' is not valid YAML: {err}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{p}' must hold a mapping of sections, got {type(data).__name__}")
    return data, str(p)


def load_config(cls: type[C] = RunConfig, path: str | os.PathLike | None = None,
                overrides: Sequence[str] = ()) -> C:
    """Load a YAML config (a path or a shipped recipe name), apply overrides, validate.

    Args:
        cls: the config class (a task's :class:`RunConfig` subclass).
        path: YAML file or recipe name; ``None`` starts from the defaults.
        overrides: ``key.sub=value`` strings.

    Raises:
        ConfigError: naming the key at fault.
    """
    data, source = _read_yaml(path) if path is not None else ({}, "")
    data = apply_overrides(data, overrides, cls)
    where = source + (" with command-line overrides" if overrides else "") if source else \
        ("command-line overrides" if overrides else "")
    return config_from_dict(cls, data, source=where)


def dump_config(cfg: Any) -> str:
    """The config as YAML text."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=False)


def save_config(cfg: Any, path: str | os.PathLike) -> None:
    """Write the resolved config to ``path`` (YAML) atomically."""
    atomic_write_text(path, dump_config(cfg))
