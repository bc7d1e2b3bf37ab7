"""PLIP pre-training (IVLC + TIC + IAP) and CMPM/C fine-tuning as engine tasks.

``plip train pretrain --config pretrain_paper`` and ``plip train finetune --config
finetune_cmpmc`` (recipes in ``plip/training/recipes/``), or the same under ``torchrun``.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Callable, Literal

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..inference import PLIPModel, create_model
from ..models import PLIPConfig
from .config import DataConfig, ModelConfig, RunConfig, _require
from .losses import CMPCHead, cmpm_loss
from .masking import AttributeMasker, mask_ratio_schedule
from .pretext import PLIPForPretraining, PretrainHeads, PretrainLossWeights, to_grayscale
from .task import StepContext, Task, TrainData, unwrap_model
from .text_data import CaptionedImages, CollateCaptioned


# ------------------------------------------------------------------------------ configs
@dataclass
class PLIPModelConfig(ModelConfig):
    """The PLIP encoder to train.

    Attributes:
        name: architecture for a fresh model: ``rn50``, ``small``, ``tiny`` or a ``config.json`` path
            (ignored when ``init`` is set).
        init: start from these weights (registry name, folder or official checkpoint).
        text_init: a local Hugging Face BERT folder to initialise the text encoder from
            (e.g. a downloaded ``bert-base-uncased``); never fetched from the network.
        freeze_text_embeddings: freeze BERT's embeddings (the paper does).
        freeze_text_layers: freeze BERT layers ``0 .. n-1`` (the paper: 8 of 12).
        cmpm_variant: ``official`` (the released CMPM code) or ``paper`` (cosine logits).
        cmpm_temperature: logit temperature of the ``paper`` variant (1.0 = none).
    """

    name: str = "rn50"
    text_init: str | None = None
    freeze_text_embeddings: bool = True
    freeze_text_layers: int = 8
    cmpm_variant: Literal["official", "paper"] = "official"
    cmpm_temperature: float = 1.0

    def validate(self, prefix: str) -> None:
        _require(self.freeze_text_layers >= 0, f"{prefix}freeze_text_layers", "must be >= 0")
        _require(self.cmpm_temperature > 0, f"{prefix}cmpm_temperature", "must be > 0")


@dataclass
class PretrainModelConfig(PLIPModelConfig):
    """Pre-training heads and loss weights (L = ivlc + 0.02 tic + 0.1 iap by default)."""

    ivlc_weight: float = 1.0
    tic_weight: float = 0.02
    iap_weight: float = 0.1
    fpn_channels: int = 256
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
class FinetuneModelConfig(PLIPModelConfig):
    """CMPM + CMPC fine-tuning (the official downstream recipe)."""

    freeze_text_embeddings: bool = False
    freeze_text_layers: int = 0
    cmpc_weight: float = 1.0
    cmpm_weight: float = 1.0


@dataclass
class TextReIDDataConfig(DataConfig):
    """A text-ReID dataset (``plip.data.textreid`` reader names) for training and evaluation.

    Attributes:
        dataset / root / split: training split (e.g. ``synth-pedes``, ``cuhk-pedes``).
        flip_prob: horizontal-flip probability (the paper's only augmentation).
        max_samples: use only the first N samples (quick runs).
        eval_dataset / eval_root / eval_split: held-out split for evaluation (defaults: the
            training dataset and root, split ``test``).
        eval_batch_size: encoding batch size during evaluation.
    """

    dataset: str = "synth-pedes"
    split: str = "train"
    flip_prob: float = 0.5
    max_samples: int | None = None
    eval_dataset: str = ""
    eval_root: str = ""
    eval_split: str = "test"
    eval_batch_size: int = 128


@dataclass
class PretrainConfig(RunConfig):
    model: PretrainModelConfig = field(default_factory=PretrainModelConfig)
    data: TextReIDDataConfig = field(default_factory=TextReIDDataConfig)
    output_dir: str = "runs/pretrain"


@dataclass
class FinetuneConfig(RunConfig):
    model: FinetuneModelConfig = field(default_factory=FinetuneModelConfig)
    data: TextReIDDataConfig = field(default_factory=lambda: TextReIDDataConfig(dataset="cuhk-pedes"))
    output_dir: str = "runs/finetune"


# ------------------------------------------------------------------------------ helpers
def build_plip_model(cfg: PLIPModelConfig, image_size: tuple[int, int]) -> PLIPModel:
    """A PLIP encoder in float32 on CPU, fresh or from weights, with BERT layers frozen."""
    if cfg.init:
        from ..inference import load

        model = load(cfg.init)
        model.visual.to(memory_format=torch.contiguous_format)
    else:
        if cfg.name.endswith(".json") and os.path.isfile(cfg.name):
            config = PLIPConfig.load(cfg.name)
        elif cfg.name in ("rn50", "small", "tiny"):
            config = PLIPConfig.preset(cfg.name, None if cfg.name == "rn50" else image_size)
        else:
            raise ConfigError(f"config key 'model.name': {cfg.name!r} is not rn50, small, tiny or a config.json file")
        model = create_model(config)
    if tuple(model.config.vision.image_size) != tuple(image_size):
        raise ConfigError(
            f"config key 'data.image_size' {list(image_size)} differs from the model's input size "
            f"{list(model.config.vision.image_size)}"
        )
    if cfg.text_init:
        _load_bert(model, cfg.text_init)
    bert = model.text.encoder
    if cfg.freeze_text_embeddings:
        bert.embeddings.requires_grad_(False)
    if cfg.freeze_text_layers > len(bert.encoder.layer):
        raise ConfigError(
            f"config key 'model.freeze_text_layers' is {cfg.freeze_text_layers} but BERT has "
            f"{len(bert.encoder.layer)} layers"
        )
    for layer in bert.encoder.layer[: cfg.freeze_text_layers]:
        layer.requires_grad_(False)
    return model.train()


def _load_bert(model: PLIPModel, folder: str) -> None:
    from safetensors.torch import load_file

    from ..hub.state_dict import load_state_dict_strict

    path = os.path.join(folder, "model.safetensors")
    if not os.path.isfile(path):
        raise ConfigError(f"config key 'model.text_init': {path} not found (a local BERT folder in safetensors)")
    state = {k.removeprefix("bert."): v for k, v in load_file(path).items() if not k.startswith("cls.")}
    state.pop("embeddings.position_ids", None)
    load_state_dict_strict(model.text.encoder, state, path)


def load_text_reid_split(dataset: str, root: str, split: str):
    from ..data.textreid import load_text_reid

    if not root:
        raise ConfigError("config key 'data.root' is empty: give the dataset folder")
    return load_text_reid(dataset, root, split)


def evaluate_plip(plip_model: PLIPModel, cfg) -> dict[str, float]:
    """Text-to-image R@K / mAP / mINP on the held-out split (the ``plip eval`` evaluator)."""
    from ..evaluation.text_retrieval import evaluate_text_to_image

    data = cfg.data
    split = load_text_reid_split(data.eval_dataset or data.dataset, data.eval_root or data.root, data.eval_split)
    result = evaluate_text_to_image(plip_model, split, batch_size=data.eval_batch_size, num_workers=0)
    t2i = result["t2i"]
    return {k: float(v) for k, v in t2i.items() if k.startswith("R@") or k in ("mAP", "mINP")}


# ------------------------------------------------------------------------------ pretrain
class PretrainTask(Task):
    """PLIP pre-training: IVLC (identity CMPM) + 0.02 TIC (colorization) + 0.1 IAP (masked attributes)."""

    config_class = PretrainConfig

    def build_model(self, cfg: PretrainConfig) -> nn.Module:
        m = cfg.model
        encoder = build_plip_model(m, cfg.data.image_size)
        heads = PretrainHeads.from_config(
            encoder.config, tic=m.tic_weight > 0, iap=m.iap_weight > 0, fpn_channels=m.fpn_channels
        )
        weights = PretrainLossWeights(ivlc=m.ivlc_weight, tic=m.tic_weight, iap=m.iap_weight)
        return PLIPWithPretextLosses(encoder, heads, weights, cmpm_variant=m.cmpm_variant,
                                     cmpm_temperature=m.cmpm_temperature)

    def build_train_data(self, cfg: PretrainConfig) -> TrainData:
        m = cfg.model
        split = load_text_reid_split(cfg.data.dataset, cfg.data.root, cfg.data.split)
        tokenizer = _tokenizer_for(cfg)
        masker = AttributeMasker(tokenizer.hf) if m.iap_weight > 0 else None
        schedule = functools.partial(
            _mask_ratio, epochs=cfg.train.epochs, start=m.mask_start, end=m.mask_end, kind=m.mask_schedule
        )
        dataset = CaptionedImages(
            split.samples, _preprocess_for(cfg), tokenizer, mode="random", flip_prob=cfg.data.flip_prob,
            masker=masker, mask_schedule=schedule, max_samples=cfg.data.max_samples,
        )
        return TrainData(dataset, labels=dataset.labels, collate_fn=CollateCaptioned(tokenizer.pad_token_id))

    def training_step(self, model: nn.Module, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
        return model(batch, gather=ctx.gather)

    def evaluate(self, model: nn.Module, cfg: PretrainConfig) -> dict[str, float] | None:
        return evaluate_plip(unwrap_model(model).model, cfg)

    def export(self, model: nn.Module, out_dir: str) -> None:
        unwrap_model(model).model.save_pretrained(out_dir)


def _mask_ratio(epoch: int, *, epochs: int, start: float, end: float, kind: str) -> float:
    return mask_ratio_schedule(epoch, epochs, start=start, end=end, kind=kind)


def _tokenizer_for(cfg):
    from ..tokenizer import PLIPTokenizer

    return PLIPTokenizer(max_length=64)


def _preprocess_for(cfg):
    from ..data.transforms import ImagePreprocess
    from ..models.config import PreprocessConfig

    return ImagePreprocess(PreprocessConfig(image_size=tuple(cfg.data.image_size)))


class PLIPWithPretextLosses(PLIPForPretraining):
    """:class:`PLIPForPretraining` fed a collated batch (grayscale copies made here)."""

    def forward(self, batch: dict[str, Tensor], gather: Callable[[Tensor], Tensor] | None = None):  # type: ignore[override]
        images = batch["images"]
        gray = None
        if self.weights.tic > 0:
            config = self.model.config.preprocess
            gray = to_grayscale(images, config.mean, config.std)
        return super().forward(
            images, batch["input_ids"], batch["attention_mask"], batch["labels"], gray_images=gray,
            masked_input_ids=batch.get("masked_ids"), target_mask=batch.get("target_mask"), gather=gather,
        )


# ------------------------------------------------------------------------------ finetune
class PLIPWithCMPMC(nn.Module):
    """A PLIP encoder + the CMPC classifier; ``forward(batch)`` returns the CMPM/C losses."""

    def __init__(self, model: PLIPModel, num_classes: int, cmpm_weight: float = 1.0, cmpc_weight: float = 1.0,
                 cmpm_variant: str = "official", cmpm_temperature: float = 1.0) -> None:
        super().__init__()
        self.model = model
        self.cmpc = CMPCHead(num_classes, model.embed_dim)
        self.cmpm_weight, self.cmpc_weight, self.cmpm_variant = cmpm_weight, cmpc_weight, cmpm_variant
        self.cmpm_temperature = cmpm_temperature

    def forward(self, batch: dict[str, Tensor], gather: Callable[[Tensor], Tensor] | None = None):
        image_emb, text_emb = self.model(batch["images"], batch["input_ids"], batch["attention_mask"])
        labels = batch["labels"]
        losses = {"cmpc": self.cmpc(image_emb, text_emb, labels)}
        img_all, txt_all, ids_all = (gather(t) for t in (image_emb, text_emb, labels)) if gather else (
            image_emb, text_emb, labels)
        losses["cmpm"] = cmpm_loss(img_all, txt_all, ids_all, variant=self.cmpm_variant,
                                   temperature=self.cmpm_temperature)
        return {"loss": self.cmpm_weight * losses["cmpm"] + self.cmpc_weight * losses["cmpc"], **losses}


class FinetuneTask(Task):
    """CMPM + CMPC fine-tuning from PLIP weights, one caption per sample (official recipe)."""

    config_class = FinetuneConfig

    def __init__(self) -> None:
        self._num_classes: int | None = None

    def build_train_data(self, cfg: FinetuneConfig) -> TrainData:
        split = load_text_reid_split(cfg.data.dataset, cfg.data.root, cfg.data.split)
        tokenizer = _tokenizer_for(cfg)
        dataset = CaptionedImages(split.samples, _preprocess_for(cfg), tokenizer, mode="pairs",
                                  flip_prob=cfg.data.flip_prob, max_samples=cfg.data.max_samples)
        self._num_classes = dataset.num_classes
        return TrainData(dataset, labels=dataset.labels, collate_fn=CollateCaptioned(tokenizer.pad_token_id))

    def build_model(self, cfg: FinetuneConfig) -> nn.Module:
        if self._num_classes is None:  # the engine builds the model first: count identities
            split = load_text_reid_split(cfg.data.dataset, cfg.data.root, cfg.data.split)
            samples = split.samples[: cfg.data.max_samples] if cfg.data.max_samples else split.samples
            self._num_classes = len({s.person_id for s in samples})
        m = cfg.model
        return PLIPWithCMPMC(build_plip_model(m, cfg.data.image_size), self._num_classes,
                             m.cmpm_weight, m.cmpc_weight, m.cmpm_variant, m.cmpm_temperature)

    def training_step(self, model: nn.Module, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
        return model(batch, gather=ctx.gather)

    def evaluate(self, model: nn.Module, cfg: FinetuneConfig) -> dict[str, float] | None:
        return evaluate_plip(unwrap_model(model).model, cfg)

    def export(self, model: nn.Module, out_dir: str) -> None:
        unwrap_model(model).model.save_pretrained(out_dir)
