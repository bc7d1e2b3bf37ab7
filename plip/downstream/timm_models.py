"""PLIP image encoders registered with timm (``import plip`` registers them).

>>> import plip, timm
>>> net = timm.create_model("plip_rn50", pretrained=True, features_only=True)  # 4 stage maps
>>> net.feature_info.channels(), net.feature_info.reduction()
([256, 512, 1024, 2048], [4, 8, 16, 32])
>>> net = timm.create_model("plip_rn50", pretrained=True, num_classes=751, last_stride=1,
...                         pretrained_cfg_overlay=dict(file="PLIP_RN50.pth.tar"))

Weights come from our Hub repository (``model.safetensors`` of the ``plip-rn50`` folder;
only its ``visual.*`` tensors are used) or from a local file through
``pretrained_cfg_overlay=dict(file=...)``: a ``model.safetensors``, or the official
``PLIP_RN50.pth.tar`` (read with ``weights_only=True``). A different ``img_size`` or
``last_stride=1`` interpolates the attention pool's positional embedding (with a warning).

``pretrained_cfg`` carries PLIP's preprocessing: input 3x256x128, SYNTH-PEDES mean/std,
bicubic, and ``crop_mode="squash"`` with ``crop_pct=1`` so that
``timm.data.create_transform(**timm.data.resolve_data_config({}, model=net))`` is exactly
PLIP's plain resize to 256x128 (no aspect-preserving crop).
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
from ..hub.registry import MODELS, OFFICIAL_REPO_URL
from ..models.config import PLIP_MEAN, PLIP_STD, VisionConfig
from ..models.modified_resnet import ModifiedResNet
from .backbone import POS_EMBED_KEY, ResizedPositionalEmbeddingWarning, resize_positional_embedding

__all__ = ["PLIPResNet", "checkpoint_filter_fn", "plip_rn50", "plip_tiny_test"]

_GLOBAL_POOLS = ("attn", "avg", "max", "")


class PLIPResNet(ModifiedResNet):
    """The PLIP Modified ResNet with timm's model interface.

    ``forward_features`` returns the layer4 map and ``forward_head`` pools it (``global_pool``:
    ``"attn"`` the PLIP attention pool, output ``output_dim``; ``"avg"`` / ``"max"``, output the
    layer4 channels; ``""`` none) and applies the classifier (``num_classes=0``: none).
    Parameter names are the official ones, plus ``head.*`` when ``num_classes > 0``.
    Unlike :class:`~plip.models.ModifiedResNet`, ``forward_features`` follows timm and returns
    the map, not an ``ImageFeatures``.
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
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        reductions = (4, 8, 16, 16 * last_stride)
        self.feature_info = [
            dict(num_chs=c, reduction=r, module=f"layer{i + 1}")
            for i, (c, r) in enumerate(zip(config.stage_channels, reductions))
        ]

    @property
    def num_features(self) -> int:
        return self.config.output_dim if self.global_pool == "attn" else self.config.stage_channels[-1]

    @property
    def head_hidden_size(self) -> int:
        return self.num_features

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
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """The layer4 map ``(B, C, H/32, W/32)`` (``H/16`` with last stride 1)."""
        return self.forward_stages(x)[-1]

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


def _cfg(**kwargs: Any) -> dict[str, Any]:
    return {
        "num_classes": 0,
        "input_size": (3, 256, 128),
        "pool_size": (8, 4),
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


def _create(variant: str, pretrained: bool = False, **kwargs: Any) -> PLIPResNet:
    return build_model_with_cfg(
        PLIPResNet,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=(0, 1, 2, 3)),
        **kwargs,
    )


_PLIP_RN50_HUB = MODELS["plip-rn50"]

default_cfgs = generate_default_cfgs({
    "plip_rn50.synth_pedes": _cfg(hf_hub_id=_PLIP_RN50_HUB.hub_repo, hf_hub_filename="model.safetensors"),
    # the architecture of PLIPConfig.tiny(), for tests and examples: weights only from a local file
    "plip_tiny_test.untrained": _cfg(input_size=(3, 64, 32), pool_size=(2, 1)),
})


@register_model
def plip_rn50(pretrained: bool = False, **kwargs: Any) -> PLIPResNet:
    """PLIP Modified ResNet-50 (attention pool to 768-d), pre-trained on SYNTH-PEDES."""
    args = dict(layers=(3, 4, 6, 3), width=64, heads=8, output_dim=768)
    return _create("plip_rn50", pretrained, **dict(args, **kwargs))


@register_model
def plip_tiny_test(pretrained: bool = False, **kwargs: Any) -> PLIPResNet:
    """The architecture of ``PLIPConfig.tiny()`` (width 8, one block per stage, 64x32 input)."""
    args = dict(layers=(1, 1, 1, 1), width=8, heads=8, output_dim=32)
    return _create("plip_tiny_test", pretrained, **dict(args, **kwargs))
