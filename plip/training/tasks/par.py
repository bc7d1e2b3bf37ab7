"""Pedestrian attribute recognition, the Rethinking-of-PAR strong baseline on the PLIP
backbone: ``plip train par --config par_pa100k``.

Weighted BCE (``ratio2weight``); the recipe adds what the reference trains with: Adam with
coupled L2, ReduceLROnPlateau on the validation loss, gradient clipping at 10 and an EMA of
the weights (decay 0.9998) that is evaluated and exported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ...errors import ConfigError
from ..config import DataConfig, EvalConfig, RunConfig
from ..task import StepContext, Task, TrainData, register_task, unwrap_model
from ._downstream import DownstreamModelConfig, TrainingModule, init_or_build, preprocess_of

__all__ = ["PARModelConfig", "AttributeDataConfig", "AttributeEvalConfig", "PARConfig", "PARTask"]


@dataclass
class PARModelConfig(DownstreamModelConfig):
    """Attributes:
        last_stride: 2 (plain ResNet-50 as in the strong baseline) or 1.
        classifier_bn: BatchNorm1d after the linear classifier (the baseline: off).
        weighted_loss: weight the BCE by the attributes' positive ratios (``ratio2weight``).
    """

    last_stride: int = 2
    classifier_bn: bool = False
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
    flip: bool = True
    pad: int = 10
    random_erasing: float = 0.0


@dataclass
class AttributeEvalConfig(EvalConfig):
    """Attributes:
        metric: ``mA`` (default), ``accuracy``, ``precision``, ``recall``, ``f1`` or ``loss``
            (the weighted BCE on the evaluation split, what ReduceLROnPlateau watches).
        threshold: probability above which an attribute counts as present.
    """

    metric: str = "mA"
    batch_size: int = 128
    threshold: float = 0.5


@dataclass
class PARConfig(RunConfig):
    model: PARModelConfig = field(default_factory=PARModelConfig)
    data: AttributeDataConfig = field(default_factory=AttributeDataConfig)
    eval: AttributeEvalConfig = field(default_factory=AttributeEvalConfig)


@register_task("par")
class PARTask(Task):
    """The Rethinking-of-PAR strong baseline on the PLIP backbone."""

    config_class = PARConfig
    default_recipe = "par_pa100k"

    def __init__(self) -> None:
        self._dataset = None
        self._preprocess = None
        self._criterion: nn.Module | None = None

    def dataset(self, cfg: PARConfig):
        if self._dataset is None:
            from ...data.attributes import read_attribute_dataset

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
        from ...downstream.losses import WeightedBCELoss, positive_ratio
        from ...downstream.par import AttributeRecognizer

        dataset = self.dataset(cfg)
        m = cfg.model
        net = init_or_build(cfg, lambda: AttributeRecognizer(
            dataset.attribute_names, backbone=m.name, pretrained=m.pretrained, last_stride=m.last_stride,
            image_size=cfg.data.image_size, classifier_bn=m.classifier_bn,
        ))
        if list(net.attribute_names) != list(dataset.attribute_names):
            raise ConfigError(
                f"model.init {cfg.model.init}: its attributes differ from {cfg.data.dataset}'s "
                f"({len(net.attribute_names)} vs {len(dataset.attribute_names)})"
            )
        self._preprocess = preprocess_of(net, cfg.data.image_size)
        ratio = None
        if m.weighted_loss:
            _, labels = dataset.split(cfg.data.train_split)
            ratio = positive_ratio(torch.as_tensor(labels))
        self._criterion = WeightedBCELoss(ratio)
        return TrainingModule(net, self._criterion)

    def build_train_data(self, cfg: PARConfig) -> TrainData:
        from ...downstream.data import AttributeImageDataset, train_transform

        if self._preprocess is None:
            self.build_model(cfg)
        paths, labels = self.dataset(cfg).split(cfg.data.train_split)
        transform = train_transform(self._preprocess, flip=cfg.data.flip, pad=cfg.data.pad,
                                    random_erasing=cfg.data.random_erasing)
        return TrainData(AttributeImageDataset(paths, labels, transform), labels=None)

    def training_step(self, model: nn.Module, batch: Any, ctx: StepContext) -> dict[str, torch.Tensor]:
        return model(batch["images"], batch["labels"])

    def evaluate(self, model: nn.Module, cfg: PARConfig) -> dict[str, float] | None:
        """mA, accuracy, precision, recall, F1 and the weighted BCE ``loss`` on ``data.eval_split``."""
        from ...downstream.evaluate import predict_attribute_probs
        from ...evaluation.attribute_metrics import evaluate_attributes

        net = unwrap_model(model).net
        paths, labels = self.dataset(cfg).split(cfg.data.eval_split)
        probs = predict_attribute_probs(net, paths, batch_size=cfg.eval.batch_size,
                                        num_workers=cfg.data.num_workers)
        result = evaluate_attributes(probs.numpy(), labels, threshold=cfg.eval.threshold)
        out = {key: float(result[key]) for key in ("mA", "accuracy", "precision", "recall", "f1")}
        criterion = self._criterion or unwrap_model(model).criterion
        logits = torch.logit(probs.double().clamp(1e-7, 1 - 1e-7)).float()
        out["loss"] = float(criterion(logits, torch.as_tensor(labels)))
        return out

    def export(self, model: nn.Module, out_dir: str) -> None:
        unwrap_model(model).net.save_pretrained(out_dir)
