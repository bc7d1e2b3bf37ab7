"""What the PLIP tasks (``pretrain``, ``finetune``) share: the encoder config and builder,
the text-ReID data section, and the model's own tokenizer and preprocessing for the data."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Literal

import torch

from ...errors import ConfigError
from ...inference import PLIPModel, create_model
from ...models import ARCHITECTURES, PLIPConfig
from ..config import DataConfig, ModelConfig, _require


# ------------------------------------------------------------------------------ configs
@dataclass
class PLIPModelConfig(ModelConfig):
    """The PLIP encoder to train.

    Attributes:
        name: architecture for a fresh model: a :data:`plip.models.ARCHITECTURES` name (``rn50``,
            ``swin-b``, ``small``, ``tiny``, ``swin-micro``) or a ``config.json`` path (ignored when
            ``init`` is set). A ``vision.kind: timm`` tower with ``vision.timm.pretrained`` set
            starts from those trunk weights.
        init: start from these weights (registry name, folder or official checkpoint).
        text_init: a local Hugging Face BERT folder to initialise the text encoder from
            (e.g. a downloaded ``bert-base-uncased``); never fetched from the network.
        freeze_text_embeddings: freeze BERT's embeddings (the paper does).
        freeze_text_layers: freeze BERT layers ``0 .. n-1`` (the paper: 8 of 12).
        cmpm_variant: ``official`` (the released CMPM code) or ``paper`` (cosine logits).
        cmpm_temperature: logit temperature of the ``paper`` variant (1.0 = none).
        image_head: the image embedding head of a fresh model: ``attention`` (the released
            checkpoint's attention pool) or ``max`` (max-pool + linear, the paper's default); a timm
            tower also ``avg`` (average + linear) or ``token`` (class token + linear);
            ``null`` keeps the architecture's.
        timm_pretrained: for a fresh timm-tower model, ``vision.timm.pretrained`` (``true``: timm's
            own weights, from its cache or the Hub; a path: a local weights file; ``false``:
            random init); ``null`` keeps the architecture's.
        text_pooling: the global text embedding of a fresh model: ``pooler`` (BERT's pooler,
            the released checkpoint) or ``mean`` (mean of the hidden states, the paper's
            default); ``null`` keeps the architecture's.
    """

    name: str = "rn50"
    text_init: str | None = None
    freeze_text_embeddings: bool = True
    freeze_text_layers: int = 8
    cmpm_variant: Literal["official", "paper"] = "official"
    cmpm_temperature: float = 1.0
    image_head: Literal["attention", "max", "avg", "token"] | None = None
    timm_pretrained: bool | str | None = None
    text_pooling: Literal["pooler", "mean"] | None = None

    def validate(self, prefix: str) -> None:
        _require(self.freeze_text_layers >= 0, f"{prefix}freeze_text_layers", "must be >= 0")
        _require(self.cmpm_temperature > 0, f"{prefix}cmpm_temperature", "must be > 0")


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
        captions_file: an external caption set (or a list of files) joined to the training
            images by path (:mod:`plip.data.external_captions`); evaluation data never is.
        captions_format: ``auto``, ``ham-pedes``, ``luperson-mllm``, ``json`` or ``csv``.
        captions_mode: ``replace`` the images' own captions or ``append`` to them.
        captions_unmatched: an external entry naming no image is an ``error`` or is ``skip``-ped.
        captions_missing: an image without external captions (under ``replace``) is an
            ``error``, ``keep``-s its own captions, or is ``drop``-ped.
        captions_match: join by relative ``path`` or by ``filename`` only.
    """

    dataset: str = "synth-pedes"
    split: str = "train"
    flip_prob: float = 0.5
    max_samples: int | None = None
    eval_dataset: str = ""
    eval_root: str = ""
    eval_split: str = "test"
    eval_batch_size: int = 128
    captions_file: str | list[str] | None = None
    captions_format: Literal["auto", "ham-pedes", "luperson-mllm", "json", "csv"] = "auto"
    captions_mode: Literal["replace", "append"] = "replace"
    captions_unmatched: Literal["error", "skip"] = "error"
    captions_missing: Literal["error", "keep", "drop"] = "error"
    captions_match: Literal["path", "filename"] = "path"


# ------------------------------------------------------------------------------ helpers
def build_plip_model(cfg: PLIPModelConfig, image_size: tuple[int, int]) -> PLIPModel:
    """A PLIP encoder in float32 on CPU, fresh or from weights, with BERT layers frozen."""
    if cfg.init:
        from ...inference import load

        model = load(cfg.init)
        model.visual.to(memory_format=torch.contiguous_format)
    else:
        if cfg.name.endswith(".json") and os.path.isfile(cfg.name):
            config = PLIPConfig.load(cfg.name)
        elif cfg.name in ARCHITECTURES:
            # full-size architectures keep their own input size (a mismatch is reported below)
            config = PLIPConfig.preset(cfg.name, None if ARCHITECTURES[cfg.name].fixed_size else image_size)
        else:
            raise ConfigError(
                f"config key 'model.name': {cfg.name!r} is not an architecture ({', '.join(sorted(ARCHITECTURES))}) "
                f"or a config.json file"
            )
        if cfg.image_head is not None:
            config.vision.pool = cfg.image_head
        if cfg.timm_pretrained is not None:
            if config.vision.timm is None:
                raise ConfigError(f"config key 'model.timm_pretrained' is set but {cfg.name} has no timm image tower")
            config.vision.timm.pretrained = cfg.timm_pretrained
        if cfg.text_pooling is not None:
            config.text.pooling = cfg.text_pooling
        model = create_model(config.validate())
        if config.vision.kind == "timm" and config.vision.timm.pretrained:
            model.visual.load_pretrained()  # timm's weights (or a local file) for a fresh trunk
    for key, wanted, has in (("image_head", cfg.image_head, model.config.vision.pool),
                             ("text_pooling", cfg.text_pooling, model.config.text.pooling)):
        if wanted is not None and wanted != has:
            raise ConfigError(f"config key 'model.{key}' is {wanted!r} but the model of model.init has {has!r}")
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
    freeze_unused(model)
    return model.train()


def freeze_unused(model: PLIPModel) -> None:
    """Freeze the parameters the model's config never uses, so that no optimizer updates them
    and DDP does not wait for their gradients: BERT's pooler under ``text.pooling: mean``."""
    pooler = getattr(model.text.encoder, "pooler", None)
    if model.config.text.pooling != "pooler" and pooler is not None:
        pooler.requires_grad_(False)


def _load_bert(model: PLIPModel, folder: str) -> None:
    from safetensors.torch import load_file

    from ...hub.state_dict import load_state_dict_strict

    path = os.path.join(folder, "model.safetensors")
    if not os.path.isfile(path):
        raise ConfigError(f"config key 'model.text_init': {path} not found (a local BERT folder in safetensors)")
    state = {k.removeprefix("bert."): v for k, v in load_file(path).items() if not k.startswith("cls.")}
    state.pop("embeddings.position_ids", None)
    load_state_dict_strict(model.text.encoder, state, path)


def check_text_reid_inputs(data: TextReIDDataConfig) -> None:
    """The training data (folder or annotation file) and every external caption file exist (checked before the model is built)."""
    if not data.root:
        raise ConfigError("config key 'data.root' is empty: give the dataset folder")
    if not os.path.exists(os.path.expanduser(data.root)):
        raise ConfigError(f"config key 'data.root': {data.root} does not exist (the dataset folder or its annotation file)")
    if data.captions_file:
        files = [data.captions_file] if isinstance(data.captions_file, str) else list(data.captions_file)
        for path in files:
            if not os.path.isfile(os.path.expanduser(str(path))):
                raise ConfigError(f"config key 'data.captions_file': caption file {path} not found")


def load_text_reid_split(dataset: str, root: str, split: str):
    from ...data.textreid import load_text_reid

    if not root:
        raise ConfigError("config key 'data.root' is empty: give the dataset folder")
    return load_text_reid(dataset, root, split)


def load_train_split(data: TextReIDDataConfig):
    """The training split, re-captioned from ``data.captions_file`` when set (report logged)."""
    split = load_text_reid_split(data.dataset, data.root, data.split)
    if data.captions_file:
        from ...data.external_captions import join_captions, read_caption_set

        captions = read_caption_set(data.captions_file, data.captions_format)
        split, report = join_captions(split, captions, mode=data.captions_mode, unmatched=data.captions_unmatched,
                                      missing=data.captions_missing, match=data.captions_match)
        logging.getLogger("plip.training").info("%s", report)
    return split


def evaluate_plip(plip_model: PLIPModel, cfg) -> dict[str, float]:
    """Text-to-image R@K / mAP / mINP on the held-out split (the ``plip eval`` evaluator)."""
    from ...evaluation.text_retrieval import evaluate_text_to_image

    data = cfg.data
    split = load_text_reid_split(data.eval_dataset or data.dataset, data.eval_root or data.root, data.eval_split)
    result = evaluate_text_to_image(plip_model, split, batch_size=data.eval_batch_size, num_workers=0)
    t2i = result["t2i"]
    return {k: float(v) for k, v in t2i.items() if k.startswith("R@") or k in ("mAP", "mINP")}


