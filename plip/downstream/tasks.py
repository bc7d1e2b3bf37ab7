"""Training tasks ``bot``, ``mgn`` and ``par`` for the engine (``plip train bot|mgn|par``).

Each task builds its model on the PLIP backbone (``model.name``: any PLIP model name, folder
or checkpoint; ``model.init``: a trained downstream folder to continue from), reads its
benchmark (``data.dataset`` / ``data.root``), trains with its paper's losses and recipe,
evaluates on the test split every ``eval.every_epochs`` epochs, and exports a folder that
:func:`plip.downstream.load_model` reads. The defaults below are the recipes in
``plip/training/recipes`` (``bot_market1501``, ``mgn_market1501``, ``par_pa100k``).

Differences from the reference code that the engine imposes, on purpose: optimizers are
AdamW / SGD / Adan (BoT's and Rethink's Adam with coupled L2 is approximated by AdamW with the
same weight decay), and BoT's centre-loss centres are updated by the main optimizer
(their own parameter group, no weight decay) instead of a separate SGD with lr 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from ..errors import ConfigError
from ..models.config import PreprocessConfig
from ..training.config import (
    DataConfig,
    EvalConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    SamplerConfig,
    ScheduleConfig,
    TrainConfig,
)
from ..training.optim import param_groups_by_prefix
from ..training.task import StepContext, Task, TrainData, unwrap_model

__all__ = [
    "BoTTask", "MGNTask", "PARTask", "BoTConfig", "MGNConfig", "PARConfig",
    "TrainingModule",
]


# ----------------------------------------------------------------------------- the trained module
class TrainingModule(nn.Module):
    """``net`` and its ``criterion`` in one module, so that DDP sees every trained parameter
    (the centre-loss centres included) and one call runs the whole step."""

    def __init__(self, net: nn.Module, criterion: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.criterion = criterion

    def forward(self, images: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.criterion(self.net(images), targets)
        return out if isinstance(out, dict) else {"loss": out}


# ----------------------------------------------------------------------------- shared config
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
    image_size: tuple[int, int] = (256, 128)
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

    every_epochs: int = 10
    metric: str = "mAP"
    batch_size: int = 128
    flip: bool = False
    normalize: bool = True
    distance: Literal["euclidean", "cosine"] = "euclidean"


@dataclass
class PKSamplerConfig(SamplerConfig):
    num_instances: int = 4


# ----------------------------------------------------------------------------- BoT
@dataclass
class BoTModelConfig(DownstreamModelConfig):
    """Attributes:
        last_stride: 1 as in BoT.
        neck_feat: ``after`` / ``before`` the BNNeck for evaluation.
        label_smoothing: epsilon of the ID loss (0.1).
        margin: triplet margin (0.3; ``null``: soft margin).
        id_weight, triplet_weight: loss weights.
        center_weight: centre-loss weight (0.0005; 0 turns it off).
        center_lr_mult: learning-rate multiplier of the centres.
    """

    last_stride: int = 1
    neck_feat: Literal["after", "before"] = "after"
    label_smoothing: float = 0.1
    margin: float | None = 0.3
    id_weight: float = 1.0
    triplet_weight: float = 1.0
    center_weight: float = 0.0005
    center_lr_mult: float = 1.0


@dataclass
class BoTOptimConfig(OptimConfig):
    name: Literal["adan", "adamw", "sgd"] = "adamw"
    lr: float = 3.5e-4
    weight_decay: float = 5e-4


@dataclass
class BoTScheduleConfig(ScheduleConfig):
    name: Literal["constant", "step", "multistep", "cosine"] = "multistep"
    warmup_epochs: float = 10.0
    warmup_factor: float = 0.01
    milestones: list[int] = field(default_factory=lambda: [40, 70])
    per: Literal["step", "epoch"] = "epoch"


@dataclass
class BoTTrainConfig(TrainConfig):
    epochs: int = 120
    batch_size: int = 64


@dataclass
class BoTConfig(RunConfig):
    model: BoTModelConfig = field(default_factory=BoTModelConfig)
    data: ReIDDataConfig = field(default_factory=ReIDDataConfig)
    sampler: PKSamplerConfig = field(default_factory=PKSamplerConfig)
    optim: BoTOptimConfig = field(default_factory=BoTOptimConfig)
    schedule: BoTScheduleConfig = field(default_factory=BoTScheduleConfig)
    train: BoTTrainConfig = field(default_factory=BoTTrainConfig)
    eval: ReIDEvalConfig = field(default_factory=ReIDEvalConfig)
    output_dir: str = "runs/bot"


class _ReIDTask(Task):
    """What BoT and MGN share: the ReID split, PK batches, evaluation and export."""

    def __init__(self) -> None:
        self._split = None
        self._preprocess = None

    def split(self, cfg: RunConfig):
        if self._split is None:
            from ..data.image_reid import read_image_reid

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
        net = _init_or_build(cfg, lambda: self.build_net(cfg, num_classes))
        _check_classes(net, num_classes, cfg)
        self._preprocess = _preprocess_of(net, cfg.data.image_size)
        return TrainingModule(net, self.build_criterion(cfg, net))

    def build_train_data(self, cfg: RunConfig) -> TrainData:
        from .data import ReIDImageDataset, train_transform

        split = self.split(cfg)
        preprocess = self._preprocess or PreprocessConfig(image_size=tuple(cfg.data.image_size))
        transform = train_transform(preprocess, flip=cfg.data.flip, pad=cfg.data.pad,
                                    random_erasing=cfg.data.random_erasing)
        dataset = ReIDImageDataset(split.train, transform, split.train_pid_to_label)
        return TrainData(dataset, labels=dataset.labels)

    def training_step(self, model: nn.Module, batch: Any, ctx: StepContext) -> dict[str, torch.Tensor]:
        return model(batch["images"], batch["pids"])

    def evaluate(self, model: nn.Module, cfg: RunConfig) -> dict[str, float] | None:
        from .evaluate import evaluate_reid_model

        net = unwrap_model(model).net
        return evaluate_reid_model(
            net, self.split(cfg), batch_size=cfg.eval.batch_size, num_workers=cfg.data.num_workers,
            flip=cfg.eval.flip, normalize=cfg.eval.normalize, metric=cfg.eval.distance,
        )

    def export(self, model: nn.Module, out_dir: str) -> None:
        unwrap_model(model).net.save_pretrained(out_dir)


class BoTTask(_ReIDTask):
    """BoT (Luo et al. 2019) on the PLIP backbone: ``plip train bot --config bot_market1501``."""

    config_class = BoTConfig

    def build_net(self, cfg: BoTConfig, num_classes: int) -> nn.Module:
        from .bot import BoT

        m = cfg.model
        return BoT(num_classes, backbone=m.name, pretrained=m.pretrained, last_stride=m.last_stride,
                   image_size=cfg.data.image_size, neck_feat=m.neck_feat)

    def build_criterion(self, cfg: BoTConfig, net: nn.Module) -> nn.Module:
        from .bot import BoTLoss

        m = cfg.model
        return BoTLoss(net.num_classes, net.feat_dim, epsilon=m.label_smoothing, margin=m.margin,
                       id_weight=m.id_weight, triplet_weight=m.triplet_weight, center_weight=m.center_weight)

    def param_groups(self, model: nn.Module, cfg: BoTConfig) -> list[dict[str, Any]]:
        lr_mult = dict(cfg.optim.lr_mult)
        if unwrap_model(model).criterion.center is not None:
            lr_mult.setdefault("criterion.center", cfg.model.center_lr_mult)
        groups = param_groups_by_prefix(model, lr_mult, no_weight_decay_1d=cfg.optim.no_weight_decay_1d)
        for group in groups:
            if group["name"].startswith("criterion.center"):
                group["weight_decay"] = 0.0
        return groups


# ----------------------------------------------------------------------------- MGN
@dataclass
class MGNModelConfig(DownstreamModelConfig):
    """Attributes:
        feat_dim: size of each reduced feature (256).
        parts: stripe counts of the part branches ([2, 3]).
        pool: ``max`` (paper) or ``avg``.
        margin: triplet margin (1.2; ``null``: soft margin).
        label_smoothing: epsilon of the ID losses (0: plain softmax).
        id_weight, triplet_weight: loss weights.
    """

    feat_dim: int = 256
    parts: list[int] = field(default_factory=lambda: [2, 3])
    pool: Literal["max", "avg"] = "max"
    margin: float | None = 1.2
    label_smoothing: float = 0.0
    id_weight: float = 1.0
    triplet_weight: float = 1.0


@dataclass
class MGNDataConfig(ReIDDataConfig):
    image_size: tuple[int, int] = (384, 128)
    pad: int = 0
    random_erasing: float = 0.0


@dataclass
class MGNOptimConfig(OptimConfig):
    name: Literal["adan", "adamw", "sgd"] = "sgd"
    lr: float = 0.01
    weight_decay: float = 5e-4
    momentum: float = 0.9


@dataclass
class MGNScheduleConfig(ScheduleConfig):
    name: Literal["constant", "step", "multistep", "cosine"] = "multistep"
    milestones: list[int] = field(default_factory=lambda: [40, 60])
    per: Literal["step", "epoch"] = "epoch"


@dataclass
class MGNTrainConfig(TrainConfig):
    epochs: int = 80
    batch_size: int = 64


@dataclass
class MGNEvalConfig(ReIDEvalConfig):
    flip: bool = True


@dataclass
class MGNConfig(RunConfig):
    model: MGNModelConfig = field(default_factory=MGNModelConfig)
    data: MGNDataConfig = field(default_factory=MGNDataConfig)
    sampler: PKSamplerConfig = field(default_factory=PKSamplerConfig)
    optim: MGNOptimConfig = field(default_factory=MGNOptimConfig)
    schedule: MGNScheduleConfig = field(default_factory=MGNScheduleConfig)
    train: MGNTrainConfig = field(default_factory=MGNTrainConfig)
    eval: MGNEvalConfig = field(default_factory=MGNEvalConfig)
    output_dir: str = "runs/mgn"


class MGNTask(_ReIDTask):
    """MGN (Wang et al. 2018) on the PLIP backbone: ``plip train mgn --config mgn_market1501``."""

    config_class = MGNConfig

    def build_net(self, cfg: MGNConfig, num_classes: int) -> nn.Module:
        from .mgn import MGN

        m = cfg.model
        return MGN(num_classes, backbone=m.name, pretrained=m.pretrained, image_size=cfg.data.image_size,
                   feat_dim=m.feat_dim, parts=m.parts, pool=m.pool)

    def build_criterion(self, cfg: MGNConfig, net: nn.Module) -> nn.Module:
        from .mgn import MGNLoss

        m = cfg.model
        return MGNLoss(margin=m.margin, epsilon=m.label_smoothing, id_weight=m.id_weight,
                       triplet_weight=m.triplet_weight)


# ----------------------------------------------------------------------------- attributes
@dataclass
class PARModelConfig(DownstreamModelConfig):
    """Attributes:
        last_stride: 2 (plain ResNet-50 as in the strong baseline) or 1.
        classifier_bn: BatchNorm1d after the linear classifier.
        weighted_loss: weight the BCE by the attributes' positive ratios (``ratio2weight``).
    """

    last_stride: int = 2
    classifier_bn: bool = True
    weighted_loss: bool = True


@dataclass
class AttributeDataConfig(DataConfig):
    """Attributes:
        dataset: ``pa100k``, ``peta``, ``rapv1`` or ``rapv2`` (or any, with a ``.pkl`` ``root``:
            a Rethinking-of-PAR partition pickle).
        root: the dataset folder (or the pickle).
        annotation: the annotation file, when not at its standard place under ``root``.
        partition: which of the random splits (PETA, RAP).
        train_split, eval_split: partitions to train and evaluate on.
        flip, pad, random_erasing: training augmentations.
    """

    dataset: str = "pa100k"
    annotation: str | None = None
    partition: int = 0
    train_split: str = "trainval"
    eval_split: str = "test"
    image_size: tuple[int, int] = (256, 192)
    flip: bool = True
    pad: int = 10
    random_erasing: float = 0.0


@dataclass
class AttributeEvalConfig(EvalConfig):
    """Attributes:
        metric: ``mA`` (default), ``accuracy``, ``precision``, ``recall`` or ``f1``.
        threshold: probability above which an attribute counts as present.
    """

    every_epochs: int = 5
    metric: str = "mA"
    batch_size: int = 128
    threshold: float = 0.5


@dataclass
class PARSamplerConfig(SamplerConfig):
    num_instances: int = 1


@dataclass
class PAROptimConfig(OptimConfig):
    name: Literal["adan", "adamw", "sgd"] = "adamw"
    lr: float = 1e-4
    weight_decay: float = 5e-4


@dataclass
class PARScheduleConfig(ScheduleConfig):
    name: Literal["constant", "step", "multistep", "cosine"] = "cosine"


@dataclass
class PARTrainConfig(TrainConfig):
    epochs: int = 30
    batch_size: int = 64
    clip_grad_norm: float | None = 10.0


@dataclass
class PARConfig(RunConfig):
    model: PARModelConfig = field(default_factory=PARModelConfig)
    data: AttributeDataConfig = field(default_factory=AttributeDataConfig)
    sampler: PARSamplerConfig = field(default_factory=PARSamplerConfig)
    optim: PAROptimConfig = field(default_factory=PAROptimConfig)
    schedule: PARScheduleConfig = field(default_factory=PARScheduleConfig)
    train: PARTrainConfig = field(default_factory=PARTrainConfig)
    eval: AttributeEvalConfig = field(default_factory=AttributeEvalConfig)
    output_dir: str = "runs/par"


class PARTask(Task):
    """The Rethink strong PAR baseline on the PLIP backbone: ``plip train par --config par_pa100k``."""

    config_class = PARConfig

    def __init__(self) -> None:
        self._dataset = None
        self._preprocess = None

    def dataset(self, cfg: PARConfig):
        if self._dataset is None:
            from ..data.attributes import read_attribute_dataset

            if not cfg.data.root:
                raise ConfigError("config key 'data.root' must name the dataset folder (or partition pickle)")
            kwargs: dict[str, Any] = {}
            if str(cfg.data.root).endswith(".pkl"):
                kwargs["partition"] = cfg.data.partition
            else:
                if cfg.data.annotation:
                    kwargs["annotation"] = cfg.data.annotation
                if cfg.data.dataset.lower().replace("-", "") not in ("pa100k",):
                    kwargs["partition"] = cfg.data.partition
            self._dataset = read_attribute_dataset(cfg.data.dataset, cfg.data.root, **kwargs)
        return self._dataset

    def build_model(self, cfg: PARConfig) -> nn.Module:
        from .losses import WeightedBCELoss, positive_ratio
        from .par import AttributeRecognizer

        dataset = self.dataset(cfg)
        m = cfg.model
        net = _init_or_build(cfg, lambda: AttributeRecognizer(
            dataset.attribute_names, backbone=m.name, pretrained=m.pretrained, last_stride=m.last_stride,
            image_size=cfg.data.image_size, classifier_bn=m.classifier_bn,
        ))
        if list(net.attribute_names) != list(dataset.attribute_names):
            raise ConfigError(
                f"model.init {cfg.model.init}: its attributes differ from {cfg.data.dataset}'s "
                f"({len(net.attribute_names)} vs {len(dataset.attribute_names)})"
            )
        self._preprocess = _preprocess_of(net, cfg.data.image_size)
        ratio = None
        if m.weighted_loss:
            _, labels = dataset.split(cfg.data.train_split)
            ratio = positive_ratio(torch.as_tensor(labels))
        return TrainingModule(net, WeightedBCELoss(ratio))

    def build_train_data(self, cfg: PARConfig) -> TrainData:
        from .data import AttributeImageDataset, train_transform

        paths, labels = self.dataset(cfg).split(cfg.data.train_split)
        preprocess = self._preprocess or PreprocessConfig(image_size=tuple(cfg.data.image_size))
        transform = train_transform(preprocess, flip=cfg.data.flip, pad=cfg.data.pad,
                                    random_erasing=cfg.data.random_erasing)
        return TrainData(AttributeImageDataset(paths, labels, transform), labels=None)

    def training_step(self, model: nn.Module, batch: Any, ctx: StepContext) -> dict[str, torch.Tensor]:
        return model(batch["images"], batch["labels"])

    def evaluate(self, model: nn.Module, cfg: PARConfig) -> dict[str, float] | None:
        from .evaluate import evaluate_attribute_model

        return evaluate_attribute_model(
            unwrap_model(model).net, self.dataset(cfg), cfg.data.eval_split,
            batch_size=cfg.eval.batch_size, num_workers=cfg.data.num_workers, threshold=cfg.eval.threshold,
        )

    def export(self, model: nn.Module, out_dir: str) -> None:
        unwrap_model(model).net.save_pretrained(out_dir)


# ----------------------------------------------------------------------------- helpers
def _init_or_build(cfg: RunConfig, build) -> nn.Module:
    """The net from ``model.init`` (a trained downstream folder; its architecture is used) or ``build()``."""
    if not cfg.model.init:
        return build()
    from .base import load_model

    return load_model(cfg.model.init).train()


def _check_classes(net: nn.Module, num_classes: int, cfg: RunConfig) -> None:
    if net.num_classes != num_classes:
        raise ConfigError(
            f"model.init {cfg.model.init}: its classifier has {net.num_classes} identities, "
            f"{cfg.data.dataset}'s training split {num_classes}"
        )


def _preprocess_of(net: nn.Module, image_size):
    """The backbone's preprocessing (mean, std, interpolation), at ``image_size``."""
    import dataclasses

    config = getattr(net, "preprocess_config", None) or net.backbone.preprocess_config
    return dataclasses.replace(config, image_size=tuple(image_size))
