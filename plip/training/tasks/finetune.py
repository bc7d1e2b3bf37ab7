"""CMPM + CMPC fine-tuning of a PLIP encoder: ``plip train finetune --config finetune_cmpmc``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import Tensor, nn

from ...inference import PLIPModel
from ..config import RunConfig
from ..losses import CMPCHead, cmpm_loss
from ..task import StepContext, Task, TrainData, register_task, unwrap_model
from ..text_data import CaptionedImages, CollateCaptioned
from ._plip import (PLIPModelConfig, TextReIDDataConfig, build_plip_model, check_text_reid_inputs, evaluate_plip,
                    load_train_split)

__all__ = ["FinetuneModelConfig", "FinetuneConfig", "FinetuneTask", "PLIPWithCMPMC"]


@dataclass
class FinetuneModelConfig(PLIPModelConfig):
    """CMPM + CMPC fine-tuning (the official downstream recipe).

    Attributes:
        cmpm_weight, cmpc_weight: loss weights.
        cmpm_gather: compute CMPM over the whole global batch (gathered from every rank);
            ``false`` computes it on each rank's own batch, as the official ``train.py``
            does on each GPU (DDP then averages the gradients).
    """

    cmpc_weight: float = 1.0
    cmpm_weight: float = 1.0
    cmpm_gather: bool = True


@dataclass
class FinetuneConfig(RunConfig):
    model: FinetuneModelConfig = field(default_factory=FinetuneModelConfig)
    data: TextReIDDataConfig = field(default_factory=TextReIDDataConfig)


class PLIPWithCMPMC(nn.Module):
    """A PLIP encoder + the CMPC classifier; ``forward(batch)`` returns the CMPM/C losses."""

    def __init__(self, model: PLIPModel, num_classes: int, cmpm_weight: float = 1.0, cmpc_weight: float = 1.0,
                 cmpm_variant: str = "official", cmpm_temperature: float = 1.0, cmpm_gather: bool = True) -> None:
        super().__init__()
        self.model = model
        self.cmpc = CMPCHead(num_classes, model.embed_dim)
        self.cmpm_weight, self.cmpc_weight, self.cmpm_variant = cmpm_weight, cmpc_weight, cmpm_variant
        self.cmpm_temperature, self.cmpm_gather = cmpm_temperature, cmpm_gather

    def forward(self, batch: dict[str, Tensor], gather: Callable[[Tensor], Tensor] | None = None):
        image_emb, text_emb = self.model(batch["images"], batch["input_ids"], batch["attention_mask"])
        labels = batch["labels"]
        losses = {"cmpc": self.cmpc(image_emb, text_emb, labels)}
        if gather is not None and self.cmpm_gather:
            image_emb, text_emb, labels = gather(image_emb), gather(text_emb), gather(labels)
        losses["cmpm"] = cmpm_loss(image_emb, text_emb, labels, variant=self.cmpm_variant,
                                   temperature=self.cmpm_temperature)
        return {"loss": self.cmpm_weight * losses["cmpm"] + self.cmpc_weight * losses["cmpc"], **losses}


@register_task("finetune")
class FinetuneTask(Task):
    """CMPM + CMPC fine-tuning from PLIP weights, one caption per sample (official recipe).

    The data are tokenized and preprocessed by the encoder's own ``tokenizer`` and ``preprocess``.
    """

    config_class = FinetuneConfig
    default_recipe = "finetune_cmpmc"

    def __init__(self) -> None:
        self._num_classes: int | None = None
        self._encoder: PLIPModel | None = None
        self._split = None  # read once: build_model counts its identities, build_train_data uses it

    def build_train_data(self, cfg: FinetuneConfig) -> TrainData:
        encoder = self._encoder if self._encoder is not None else build_plip_model(cfg.model, cfg.data.image_size)
        split = self._train_split(cfg)
        tokenizer = encoder.tokenizer
        dataset = CaptionedImages(split.samples, encoder.preprocess, tokenizer, mode="pairs",
                                  flip_prob=cfg.data.flip_prob, max_samples=cfg.data.max_samples)
        self._num_classes = dataset.num_classes
        return TrainData(dataset, labels=dataset.labels, collate_fn=CollateCaptioned(tokenizer.pad_token_id))

    def _train_split(self, cfg: FinetuneConfig):
        if self._split is None or self._split[0] != cfg.data:
            self._split = (cfg.data, load_train_split(cfg.data))
        return self._split[1]

    def check_inputs(self, cfg: FinetuneConfig) -> None:
        check_text_reid_inputs(cfg.data)

    def build_model(self, cfg: FinetuneConfig) -> nn.Module:
        if self._num_classes is None:  # the engine builds the model first: count identities
            split = self._train_split(cfg)
            samples = split.samples[: cfg.data.max_samples] if cfg.data.max_samples else split.samples
            self._num_classes = len({s.person_id for s in samples})
        m = cfg.model
        self._encoder = build_plip_model(m, cfg.data.image_size)
        return PLIPWithCMPMC(self._encoder, self._num_classes, m.cmpm_weight, m.cmpc_weight, m.cmpm_variant,
                             m.cmpm_temperature, m.cmpm_gather)

    def training_step(self, model: nn.Module, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
        return model(batch, gather=ctx.gather)

    def evaluate(self, model: nn.Module, cfg: FinetuneConfig) -> dict[str, float] | None:
        return evaluate_plip(unwrap_model(model).model, cfg)

    def export(self, model: nn.Module, out_dir: str) -> None:
        unwrap_model(model).model.save_pretrained(out_dir)
