"""PLIP pre-training (IVLC + TIC + IAP): ``plip train pretrain --config pretrain_paper``."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable, Literal

from torch import Tensor, nn

from ..config import RunConfig, _require
from ..masking import AttributeMasker, mask_ratio_schedule
from ..pretext import PLIPForPretraining, PretrainHeads, PretrainLossWeights, to_grayscale
from ..task import StepContext, Task, TrainData, register_task, unwrap_model
from ..text_data import CaptionedImages, CollateCaptioned
from ._plip import (PLIPModelConfig, TextReIDDataConfig, build_plip_model, check_text_reid_inputs, evaluate_plip,
                    load_train_split)

__all__ = ["PretrainModelConfig", "PretrainConfig", "PretrainTask", "PLIPWithPretextLosses"]


@dataclass
class PretrainModelConfig(PLIPModelConfig):
    """Pre-training heads and loss weights (``L = ivlc + tic_weight * tic + iap_weight * iap``).

    Attributes:
        ivlc_weight, tic_weight, iap_weight: task weights (paper: 1, 0.02, 0.1).
        fpn_channels: width of the TIC decoder's FPN (256).
        tic_decoder: ``paper`` (the two transposed-conv blocks with nothing between them, as
            the paper's figure) or ``norm_act`` (BatchNorm + ReLU between them).
        tic_loss: ``l2`` (the paper's eq. 1: per-image Euclidean distance, batch mean),
            ``mse`` (mean squared error per element) or ``l1``.
        se_init: initialisation of the TIC decoder's SE blocks: ``torch`` (PyTorch's Linear
            default) or ``kaiming`` (the official repository's ``weights_init_kaiming``; see
            :class:`plip.training.pretext.TextConditionedSE`).
        mask_start, mask_end, mask_schedule: attribute-masking ratio over the epochs.
    """

    ivlc_weight: float = 1.0
    tic_weight: float = 0.02
    iap_weight: float = 0.1
    fpn_channels: int = 256
    tic_decoder: Literal["paper", "norm_act"] = "paper"
    tic_loss: Literal["l2", "mse", "l1"] = "l2"
    se_init: Literal["torch", "kaiming"] = "kaiming"
    mask_start: float = 0.2
    mask_end: float = 0.8
    mask_schedule: Literal["sqrt", "linear", "square", "constant"] = "sqrt"

    def validate(self, prefix: str) -> None:
        super().validate(prefix)
        for key in ("ivlc_weight", "tic_weight", "iap_weight"):
            _require(getattr(self, key) >= 0, f"{prefix}{key}", "must be >= 0")
        _require(self.ivlc_weight + self.tic_weight + self.iap_weight > 0, f"{prefix}ivlc_weight",
                 "and the other loss weights are all 0: nothing to train")
        _require(0 <= self.mask_start <= 1 and 0 <= self.mask_end <= 1, f"{prefix}mask_start",
                 "and mask_end must be in [0, 1]")


@dataclass
class PretrainConfig(RunConfig):
    model: PretrainModelConfig = field(default_factory=PretrainModelConfig)
    data: TextReIDDataConfig = field(default_factory=TextReIDDataConfig)


class PLIPWithPretextLosses(PLIPForPretraining):
    """:class:`PLIPForPretraining` fed a collated batch; the grayscale copies are made here
    with the mean / std of the model's own preprocessing (the one that built the batch)."""

    def forward(self, batch: dict[str, Tensor], gather: Callable[[Tensor], Tensor] | None = None):  # type: ignore[override]
        images = batch["images"]
        gray = None
        if self.weights.tic > 0:
            config = self.model.preprocess.config
            gray = to_grayscale(images, config.mean, config.std)
        return super().forward(
            images, batch["input_ids"], batch["attention_mask"], batch["labels"], gray_images=gray,
            masked_input_ids=batch.get("masked_ids"), target_mask=batch.get("target_mask"), gather=gather,
        )


def _mask_ratio(epoch: int, *, epochs: int, start: float, end: float, kind: str) -> float:
    return mask_ratio_schedule(epoch, epochs, start=start, end=end, kind=kind)


@register_task("pretrain")
class PretrainTask(Task):
    """PLIP pre-training: IVLC (identity CMPM) + TIC (colorization) + IAP (masked attributes).

    The data are tokenized and preprocessed by the encoder's own ``tokenizer`` and
    ``preprocess`` (its ``text.max_length``, input size, mean and std).
    """

    config_class = PretrainConfig
    default_recipe = "pretrain_paper"

    def __init__(self) -> None:
        self._encoder = None

    def check_inputs(self, cfg: PretrainConfig) -> None:
        check_text_reid_inputs(cfg.data)

    def build_model(self, cfg: PretrainConfig) -> nn.Module:
        m = cfg.model
        encoder = build_plip_model(m, cfg.data.image_size)
        self._encoder = encoder
        heads = PretrainHeads.for_model(
            encoder, tic=m.tic_weight > 0, iap=m.iap_weight > 0, fpn_channels=m.fpn_channels,
            hidden_norm_act=m.tic_decoder == "norm_act", se_init=m.se_init,
        )
        weights = PretrainLossWeights(ivlc=m.ivlc_weight, tic=m.tic_weight, iap=m.iap_weight)
        return PLIPWithPretextLosses(encoder, heads, weights, cmpm_variant=m.cmpm_variant,
                                     colorization_kind=m.tic_loss, cmpm_temperature=m.cmpm_temperature)

    def build_train_data(self, cfg: PretrainConfig) -> TrainData:
        m = cfg.model
        encoder = self._encoder if self._encoder is not None else build_plip_model(m, cfg.data.image_size)
        split = load_train_split(cfg.data)
        tokenizer = encoder.tokenizer
        masker = AttributeMasker(tokenizer.hf) if m.iap_weight > 0 else None
        schedule = functools.partial(
            _mask_ratio, epochs=cfg.train.epochs, start=m.mask_start, end=m.mask_end, kind=m.mask_schedule
        )
        dataset = CaptionedImages(
            split.samples, encoder.preprocess, tokenizer, mode="random", flip_prob=cfg.data.flip_prob,
            masker=masker, mask_schedule=schedule, max_samples=cfg.data.max_samples,
        )
        return TrainData(dataset, labels=dataset.labels, collate_fn=CollateCaptioned(tokenizer.pad_token_id))

    def training_step(self, model: nn.Module, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
        return model(batch, gather=ctx.gather)

    def evaluate(self, model: nn.Module, cfg: PretrainConfig) -> dict[str, float] | None:
        return evaluate_plip(unwrap_model(model).model, cfg)

    def export(self, model: nn.Module, out_dir: str) -> None:
        unwrap_model(model).model.save_pretrained(out_dir)
