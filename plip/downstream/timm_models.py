"""PLIP image encoders registered with timm (``import plip.timm`` or a first ``plip.backbone`` call).

>>> import plip.timm, timm
>>> net = timm.create_model("plip_rn50", pretrained=True, features_only=True)  # 4 stage maps
>>> net.feature_info.channels(), net.feature_info.reduction()
([256, 512, 1024, 2048], [4, 8, 16, 32])
>>> net = timm.create_model("plip_rn50", pretrained=True, num_classes=751, last_stride=1,
...                         pretrained_cfg_overlay=dict(file="PLIP_RN50.pth.tar"))
>>> net = timm.create_model("plip_tiny_synth", pretrained=True)   # the embedded model, offline

The entry points are data: one per :data:`MODEL_VARIANTS` row, built by one helper from a
registered architecture (:data:`plip.models.ARCHITECTURES`). Weights of ``plip_rn50`` come from
our Hub repository (``model.safetensors`` of the ``plip-rn50`` folder; only its ``visual.*``
tensors are used) or from a local file through ``pretrained_cfg_overlay=dict(file=...)``: a
``model.safetensors``, or the official ``PLIP_RN50.pth.tar`` (read with ``weights_only=True``).
``plip_tiny_synth`` reads the model shipped inside the package. A different ``img_size`` or
``last_stride=1`` interpolates the attention pool's positional embedding (with a warning) and
is reflected in ``pretrained_cfg`` (``input_size``, ``pool_size``).

``pretrained_cfg`` carries PLIP's preprocessing: SYNTH-PEDES mean/std, bicubic, and
``crop_mode="squash"`` with ``crop_pct=1`` so that
``timm.data.create_transform(**timm.data.resolve_data_config({}, model=net))`` is exactly
PLIP's plain resize (no aspect-preserving crop). For training transforms use
:func:`plip.data.transforms.train_transform` (person-shaped, not ImageNet's RandomResizedCrop).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn

from ..errors import ConfigError
from ..hub.official import IMAGE_ENTRY
from ..hub.folder import WEIGHTS_NAME
from ..hub.registry import MODELS, OFFICIAL_REPO_URL, embedded_folder
from ..models.config import ARCHITECTURES, PLIP_MEAN, PLIP_STD, VisionConfig
from ..models.modified_resnet import ModifiedResNet
from .positional import POS_EMBED_KEY, ResizedPositionalEmbeddingWarning, resize_positional_embedding

__all__ = ["PLIPResNet", "checkpoint_filter_fn", "MODEL_VARIANTS"]

_GLOBAL_POOLS = ("attn", "avg", "max", "")


class PLIPResNet(ModifiedResNet):
    """The PLIP Modified ResNet with timm's model interface.

    ``forward_features`` returns the layer4 map (``num_features`` channels) and ``forward_head``
    pools it (``global_pool``: ``"attn"`` the PLIP attention pool, ``head_hidden_size`` =
    ``output_dim``; ``"avg"`` / ``"max"``, the layer4 channels; ``""`` none) and applies the
    classifier (``num_classes=0``: none). Parameter names are the official ones, plus ``head.*``
    when ``num_classes > 0``.
    """

    def __init__(
        self,
        layers: tuple[int, int, int, int] = (3, 4, 6, 3),
        width: int = 64,
        heads: int = 8,
        output_dim: int = 768,
        img_size: tuple[int, int] | int = (256, 128),
        last_stride: int = 2,
        num_classes: int = 0,
        global_pool: str = "attn",
        in_chans: int = 3,
        drop_rate: float = 0.0,
    ) -> None:
        if isinstance(img_size, int):
            img_size = (img_size, img_size)
        if global_pool not in _GLOBAL_POOLS:
            raise ConfigError(f"global_pool must be one of {_GLOBAL_POOLS}, got {global_pool!r}")
        config = VisionConfig(
            layers=tuple(layers), width=width, heads=heads, image_size=tuple(img_size),
            output_dim=output_dim, last_stride=last_stride,
        )
        super().__init__(config)
        if in_chans != 3:
            # timm adapts the pretrained stem weights to this (``first_conv="conv1"``)
            self.conv1 = nn.Conv2d(in_chans, width // 2, 3, stride=2, padding=1, bias=False)
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.drop_rate = drop_rate
        if global_pool != "attn":
            self.attnpool = None
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.head_hidden_size, num_classes) if num_classes > 0 else nn.Identity()
        self.feature_info = [
            dict(num_chs=c, reduction=r, module=f"layer{i + 1}")
            for i, (c, r) in enumerate(zip(config.stage_channels, self.reductions))
        ]

    @property
    def head_hidden_size(self) -> int:
        return self.config.output_dim if self.global_pool == "attn" else self.num_features

    def prune_intermediate_layers(
        self, indices: int | tuple[int, ...] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the stages after the last of ``indices`` (and the head): timm's contract."""
        from ..models.modified_resnet import _stage_indices

        take = _stage_indices(indices)
        for i in range(take[-1] + 1, 4):
            setattr(self, f"layer{i + 1}", nn.Identity())
        if prune_head:
            self.attnpool = None
            self.global_pool = "avg" if self.global_pool == "attn" else self.global_pool
            self.reset_classifier(0)
        return list(take)

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None and global_pool != self.global_pool:
            if global_pool == "attn" or global_pool not in _GLOBAL_POOLS:
                raise ConfigError(
                    f"global_pool can change to 'avg', 'max' or '' only (the attention pool is "
                    f"not rebuilt), got {global_pool!r}"
                )
            self.global_pool = global_pool
            self.attnpool = None
        self.num_classes = num_classes
        self.head = nn.Linear(self.head_hidden_size, num_classes) if num_classes > 0 else nn.Identity()

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == "attn":
            x = self.attnpool(x)
        elif self.global_pool == "avg":
            x = x.mean(dim=(2, 3))
        elif self.global_pool == "max":
            x = x.amax(dim=(2, 3))
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _grid_from_tokens(tokens: int) -> tuple[int, int]:
    """The (H, W) grid of a PLIP positional embedding, assuming PLIP's 2:1 pedestrian aspect."""
    cols = math.isqrt(tokens // 2)
    if cols < 1 or 2 * cols * cols != tokens:
        raise ConfigError(
            f"cannot tell the grid of a positional embedding with {tokens} positions (not 2:1)"
        )
    return 2 * cols, cols


def checkpoint_filter_fn(state_dict: dict[str, Any], model: PLIPResNet) -> dict[str, torch.Tensor]:
    """Turn any PLIP checkpoint into :class:`PLIPResNet` keys (timm's ``pretrained_filter_fn``).

    Accepts our ``model.safetensors`` (``visual.*`` / ``text.*``), the official pickle
    (``ImgEncoder_state_dict`` / ``TxtEncoder_state_dict``) or a bare image-encoder state dict.
    Text weights are dropped, the attention pool too when the model has none, and the
    positional embedding is interpolated to the model's grid.
    """
    state = state_dict
    if IMAGE_ENTRY in state:
        state = state[IMAGE_ENTRY]
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    if any(k.startswith("visual.") for k in state):
        state = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
    if model.attnpool is None:
        return {k: v for k, v in state.items() if not k.startswith("attnpool.")}
    pos = state.get(POS_EMBED_KEY)
    if pos is not None and pos.shape != model.attnpool.positional_embedding.shape:
        old_grid = _grid_from_tokens(pos.shape[0] - 1)
        new_grid = model.attnpool.grid
        state[POS_EMBED_KEY] = resize_positional_embedding(pos, old_grid, new_grid)
        warnings.warn(
            f"PLIP attention-pool positions were trained for a {old_grid[0]}x{old_grid[1]} grid and "
            f"were interpolated to {new_grid[0]}x{new_grid[1]} (bicubic) for this img_size / last_stride",
            ResizedPositionalEmbeddingWarning,
            stacklevel=2,
        )
    return state


def _cfg(input_size: tuple[int, int], last_stride: int = 2, **kwargs: Any) -> dict[str, Any]:
    reduction = 32 if last_stride == 2 else 16
    return {
        "num_classes": 0,
        "input_size": (3, *input_size),
        "pool_size": (input_size[0] // reduction, input_size[1] // reduction),
        "fixed_input_size": True,
        "crop_pct": 1.0,
        "crop_mode": "squash",
        "interpolation": "bicubic",
        "mean": PLIP_MEAN,
        "std": PLIP_STD,
        "first_conv": "conv1",
        "classifier": "head",
        "license": "mit",
        "origin_url": OFFICIAL_REPO_URL,
        "paper_name": "PLIP: Language-Image Pre-training for Person Representation Learning",
        "paper_ids": "arXiv:2305.08386",
        **kwargs,
    }


#: timm entry name -> (architecture, pretrained tag, default input size, weights cfg)
MODEL_VARIANTS: dict[str, tuple[str, str, tuple[int, int], dict[str, Any]]] = {
    "plip_rn50": ("rn50", "synth_pedes", (256, 128),
                  dict(hf_hub_id=MODELS["plip-rn50"].hub_repo, hf_hub_filename=WEIGHTS_NAME)),
    "plip_tiny_synth": ("small", "synthetic", (64, 32),
                        dict(file=str(embedded_folder("plip-tiny-synth") / WEIGHTS_NAME))),
}


def _create(variant: str, pretrained: bool = False, **kwargs: Any) -> PLIPResNet:
    arch, tag, size, _ = MODEL_VARIANTS[variant]
    architecture = ARCHITECTURES[arch]
    vision = architecture.config(image_size=size).vision
    args = dict(layers=vision.layers, width=vision.width, heads=vision.heads, output_dim=vision.output_dim,
                img_size=size)
    args.update(kwargs)
    img_size = args["img_size"]
    img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    if img_size != size or args.get("last_stride", 2) != 2:
        # the pretrained cfg describes the model as built, not as trained
        overlay = dict(args.pop("pretrained_cfg_overlay", None) or {})
        overlay.update(input_size=(3, *img_size), pool_size=_cfg(img_size, args.get("last_stride", 2))["pool_size"])
        args["pretrained_cfg_overlay"] = overlay
    return build_model_with_cfg(
        PLIPResNet,
        f"{variant}.{tag}",
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=(0, 1, 2, 3)),
        **args,
    )


def _entry_point(variant: str, description: str):
    def create(pretrained: bool = False, **kwargs: Any) -> PLIPResNet:
        return _create(variant, pretrained, **kwargs)

    create.__name__ = create.__qualname__ = variant
    create.__module__ = __name__
    create.__doc__ = description
    return create


default_cfgs = generate_default_cfgs({
    f"{variant}.{tag}": _cfg(size, **weights) for variant, (_, tag, size, weights) in MODEL_VARIANTS.items()
})

for _variant, (_arch, _, _, _) in MODEL_VARIANTS.items():
    globals()[_variant] = register_model(_entry_point(_variant, f"PLIP image encoder ({ARCHITECTURES[_arch].description})"))
