"""What the downstream tasks (``bot``, ``mgn``, ``par``) share.

Each builds its model on the PLIP backbone (``model.name``: any PLIP model name, folder or
checkpoint; ``model.init``: a trained downstream folder to continue from), reads its
benchmark (``data.dataset`` / ``data.root``), trains with its paper's losses, evaluates on
the test split every ``eval.every_epochs`` epochs and exports a folder that
:func:`plip.downstream.load_model` reads. The values of a run are the task's recipe in
``plip/training/recipes`` (``bot_market1501``, ``mgn_market1501``, ``par_pa100k``); the
sections below only declare the keys. Training images go through the backbone's own
preprocessing (its mean, std and interpolation) at ``data.image_size``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Literal

import torch
from torch import nn

from ...errors import ConfigError
from ..config import DataConfig, EvalConfig, ModelConfig, RunConfig
from ..task import StepContext, Task, TrainData, unwrap_model

__all__ = ["TrainingModule", "DownstreamModelConfig", "ReIDDataConfig", "ReIDEvalConfig", "ReIDTask",
           "gather_tree"]


def gather_tree(value: Any, gather: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """``gather`` applied to every tensor of a (named) tuple / list tree."""
    if isinstance(value, torch.Tensor):
        return gather(value)
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(gather_tree(v, gather) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(gather_tree(v, gather) for v in value)
    return value


class TrainingModule(nn.Module):
    """``net`` and its ``criterion`` in one module, so that DDP sees every trained parameter
    (the centre-loss centres included) and one call runs the whole step.

    With ``gather`` (the engine's ``ctx.gather``) and ``gather_loss=True`` the criterion sees
    the outputs of the whole global batch, so batch-hard mining picks its hardest positives
    and negatives among every rank's samples, as one process on the whole batch would.
    """

    def __init__(self, net: nn.Module, criterion: nn.Module, gather_loss: bool = True) -> None:
        super().__init__()
        self.net = net
        self.criterion = criterion
        self.gather_loss = gather_loss

    def forward(self, images: torch.Tensor, targets: torch.Tensor,
                gather: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        output = self.net(images)
        if gather is not None and self.gather_loss:
            output, targets = gather_tree(output, gather), gather(targets)
        out = self.criterion(output, targets)
        return out if isinstance(out, dict) else {"loss": out}


@dataclass
class DownstreamModelConfig(ModelConfig):
    """Attributes:
        name: the PLIP model whose image encoder is the backbone (registry name, Hub
            reference, model folder or official checkpoint).
        init: a trained downstream model folder (``plip.downstream.load_model``) to start from
            instead; its architecture must match this config.
        pretrained: load ``name``'s weights (``false``: random backbone, for smoke tests).
    """

    name: str = "plip-rn50"
    init: str | None = None
    pretrained: bool = True


@dataclass
class ReIDDataConfig(DataConfig):
    """Attributes:
        dataset: ``market1501``, ``dukemtmc`` or ``msmt17``.
        root: the dataset folder.
        flip, pad, random_erasing: training augmentations (see :func:`plip.downstream.data.train_transform`).
    """

    dataset: str = "market1501"
    flip: bool = True
    pad: int = 10
    random_erasing: float = 0.5

    def validate(self, prefix: str) -> None:
        super().validate(prefix)
        if self.pad < 0:
            raise ConfigError(f"config key '{prefix}pad' must be >= 0, got {self.pad}")
        if not 0 <= self.random_erasing <= 1:
            raise ConfigError(f"config key '{prefix}random_erasing' must be in [0, 1], got {self.random_erasing}")


@dataclass
class ReIDEvalConfig(EvalConfig):
    """Attributes:
        metric: ``mAP`` (default), ``rank1``, ``rank5``, ``rank10`` or ``mINP`` selects ``best.pt``.
        batch_size: images per forward pass.
        flip: add the feature of the horizontally flipped image.
        normalize: L2-normalise features before the distance (BoT's FEAT_NORM).
        distance: ``euclidean`` or ``cosine``.
    """

    metric: str = "mAP"
    batch_size: int = 128
    flip: bool = False
    normalize: bool = True
    distance: Literal["euclidean", "cosine"] = "euclidean"


class ReIDTask(Task):
    """What BoT and MGN share: the ReID split, P x K batches, gathered losses, evaluation, export."""

    def __init__(self) -> None:
        self._split = None
        self._preprocess = None

    def split(self, cfg: RunConfig):
        if self._split is None:
            from ...data.image_reid import read_image_reid

            if not cfg.data.root:
                raise ConfigError("config key 'data.root' must name the dataset folder")
            self._split = read_image_reid(cfg.data.dataset, cfg.data.root)
            if self._split.num_train_ids < 2:
                raise ConfigError(f"{cfg.data.root}: the training split has fewer than two identities")
        return self._split

    def build_net(self, cfg: RunConfig, num_classes: int) -> nn.Module:
        raise NotImplementedError

    def build_criterion(self, cfg: RunConfig, net: nn.Module) -> nn.Module:
        raise NotImplementedError

    def build_model(self, cfg: RunConfig) -> nn.Module:
        num_classes = self.split(cfg).num_train_ids
        net = init_or_build(cfg, lambda: self.build_net(cfg, num_classes))
        if net.num_classes != num_classes:
            raise ConfigError(
                f"model.init {cfg.model.init}: its classifier has {net.num_classes} identities, "
                f"{cfg.data.dataset}'s training split {num_classes}"
            )
        self._preprocess = preprocess_of(net, cfg.data.image_size)
        return TrainingModule(net, self.build_criterion(cfg, net), gather_loss=cfg.model.triplet_gather)

    def build_train_data(self, cfg: RunConfig) -> TrainData:
        from ...downstream.data import ReIDImageDataset, train_transform

        split = self.split(cfg)
        if self._preprocess is None:
            self.build_model(cfg)
        transform = train_transform(self._preprocess, flip=cfg.data.flip, pad=cfg.data.pad,
                                    random_erasing=cfg.data.random_erasing)
        dataset = ReIDImageDataset(split.train, transform, split.train_pid_to_label)
        return TrainData(dataset, labels=dataset.labels)

    def training_step(self, model: nn.Module, batch: Any, ctx: StepContext) -> dict[str, torch.Tensor]:
        return model(batch["images"], batch["pids"], gather=ctx.gather)

    def evaluate(self, model: nn.Module, cfg: RunConfig) -> dict[str, float] | None:
        from ...downstream.evaluate import evaluate_reid_model

        net = unwrap_model(model).net
        return evaluate_reid_model(
            net, self.split(cfg), batch_size=cfg.eval.batch_size, num_workers=cfg.data.num_workers,
            flip=cfg.eval.flip, normalize=cfg.eval.normalize, metric=cfg.eval.distance,
        )

    def export(self, model: nn.Module, out_dir: str) -> None:
        unwrap_model(model).net.save_pretrained(out_dir)


def init_or_build(cfg: RunConfig, build: Callable[[], nn.Module]) -> nn.Module:
    """The net from ``model.init`` (a trained downstream folder; its architecture is used) or ``build()``."""
    if not cfg.model.init:
        return build()
    from ...downstream.base import load_model

    return load_model(cfg.model.init).train()


def preprocess_of(net: nn.Module, image_size):
    """The backbone's own preprocessing (mean, std, interpolation), at ``image_size``."""
    config = getattr(net, "preprocess_config", None) or net.backbone.preprocess_config
    return dataclasses.replace(config, image_size=tuple(image_size))
