"""The PLIP image encoder as a drop-in backbone for re-identification and attribute models.

>>> import plip
>>> net = plip.backbone("plip-rn50", last_stride=1)          # stem, layer1..layer4
>>> c2, c3, c4, c5 = net(images)                            # 256@64x32 ... 2048@16x8 for 256x128
>>> emb = plip.backbone("plip-rn50", attn_pool=True)(images) # the 768-d PLIP embedding

Two things differ from a torchvision ResNet-50 and matter when swapping it in:

* **Last stride 1** (BoT, MGN) cannot be made by setting a convolution's stride: in this
  anti-aliased ResNet every stride is an average pool, placed before the third convolution
  and before the downsample convolution of a stage's first block. ``last_stride=1`` turns both
  pools of ``layer4[0]`` into identities; the weights are unchanged and layer4's map doubles
  in each direction. (It is not dilation: timm's ``output_stride=16`` dilates instead.)
* **Input size.** The attention pool has a learned positional embedding for the 8x4 grid of
  a 256x128 input (plus one row for the mean token). A different grid (384x128 inputs as MGN
  uses, or last stride 1) gets that embedding resized by interpolation, with a warning.
  Without the attention pool (the ReID default) any input size multiple of 32 works.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Any, Sequence

import torch
from torch import nn

from ..data.transforms import ImagePreprocess
from ..errors import ConfigError
from ..hub.state_dict import load_state_dict_strict
from ..hub.visual_weights import load_visual_weights
from ..models.config import PLIPConfig, PreprocessConfig, VisionConfig
from ..models.modified_resnet import ModifiedResNet
from .load_report import BackboneLoadReport
from .timm_backbone import TimmBackbone
from .positional import POS_EMBED_KEY, ResizedPositionalEmbeddingWarning, resize_positional_embedding

__all__ = [
    "PLIPBackbone",
    "BackboneLoadReport",
    "ResizedPositionalEmbeddingWarning",
    "backbone",
    "resize_positional_embedding",
]

class PLIPBackbone(ModifiedResNet):
    """The PLIP Modified ResNet as a feature extractor (stem, ``layer1`` .. ``layer4``).

    Parameter names are the official ones (``conv1.weight``, ``layer4.0.downsample.0.weight``
    ...), so a PLIP checkpoint loads strictly. ``forward`` returns the stage maps selected by
    ``out_indices`` (a list; a single tensor when ``out_indices`` is an int), or the pooled
    PLIP embedding when ``attn_pool=True``. Build it with :func:`plip.backbone`.

    Args:
        config: the encoder as trained (its ``image_size`` / ``last_stride`` fit the weights).
        last_stride: 1 or 2 for ``layer4`` (see the module docstring).
        out_indices: stages to return, 0..3 for layer1..layer4.
        attn_pool: keep the attention pool and return the pooled embedding.
        image_size: ``(H, W)`` of the inputs this backbone will see (default: as trained).
        state_dict: weights to load strictly before adapting (official key names).
        source: where ``state_dict`` came from, for messages.
        interpolation: how to resize the positional embedding.
        preprocess: the preprocessing the weights were trained with (for :attr:`preprocess`).
    """

    def __init__(
        self,
        config: VisionConfig,
        *,
        last_stride: int = 2,
        out_indices: int | Sequence[int] = (0, 1, 2, 3),
        attn_pool: bool = False,
        image_size: Sequence[int] | None = None,
        state_dict: dict[str, torch.Tensor] | None = None,
        source: str = "state dict",
        interpolation: str = "bicubic",
        preprocess: PreprocessConfig | None = None,
    ) -> None:
        super().__init__(config)
        self.single_output = isinstance(out_indices, int)
        self.out_indices = _check_out_indices(out_indices)
        if last_stride not in (1, 2):
            raise ConfigError(f"last_stride must be 1 or 2, got {last_stride!r}")
        target = dataclasses.replace(
            config, last_stride=last_stride, image_size=tuple(image_size or config.image_size)
        )
        try:
            target.validate()
        except ConfigError as err:
            raise ConfigError(f"backbone: {err}") from None

        self.load_report: BackboneLoadReport | None = None
        if state_dict is not None:
            self.load_report = self._load_strict(state_dict, source)

        self.layer4[0].set_stride(last_stride)
        if attn_pool:
            old_grid, new_grid = self.attnpool.grid, target.feature_grid
            if old_grid != new_grid:
                self._resize_attnpool(old_grid, new_grid, interpolation, warn=state_dict is not None)
        else:
            if self.load_report is not None:
                self.load_report.dropped_keys = sorted(f"attnpool.{k}" for k in self.attnpool.state_dict())
            self.attnpool = None  # unused parameters would break DDP
        self.config = target
        base = preprocess or PreprocessConfig(image_size=tuple(config.image_size))
        self.preprocess_config = dataclasses.replace(base, image_size=tuple(target.image_size))

    # -- loading -------------------------------------------------------------------------
    def _load_strict(self, state: dict[str, torch.Tensor], source: str) -> BackboneLoadReport:
        load_state_dict_strict(self, state, source)
        return BackboneLoadReport(source=source, loaded_keys=sorted(state))

    def _resize_attnpool(self, old_grid, new_grid, interpolation: str, warn: bool) -> None:
        old = self.attnpool.positional_embedding.data
        new = resize_positional_embedding(old, old_grid, new_grid, interpolation=interpolation)
        self.attnpool.positional_embedding = nn.Parameter(new.contiguous())
        self.attnpool.grid = tuple(new_grid)
        note = f"{POS_EMBED_KEY}: {tuple(old.shape)} -> {tuple(new.shape)} ({interpolation})"
        if self.load_report is not None:
            self.load_report.resized.append(note)
        if warn:
            warnings.warn(
                f"PLIP attention-pool positions were trained for a {old_grid[0]}x{old_grid[1]} grid "
                f"and were interpolated to {new_grid[0]}x{new_grid[1]} ({interpolation}) for this "
                f"input size / last stride; fine-tune before relying on the pooled embedding",
                ResizedPositionalEmbeddingWarning,
                stacklevel=3,
            )

    # -- description (num_features / head_hidden_size / reductions: see ModifiedResNet) ---
    @property
    def out_channels(self) -> list[int]:
        """Channels of each returned map, in ``out_indices`` order."""
        return [self.stage_channels[i] for i in self.out_indices]

    @property
    def head_hidden_size(self) -> int:
        """Size of :meth:`forward_head`: the PLIP embedding with ``attn_pool``, else the pooled trunk."""
        return self.config.output_dim if self.attnpool is not None else self.num_features

    @property
    def feature_info(self) -> list[dict[str, Any]]:
        """timm-style description of the returned maps (``num_chs``, ``reduction``, ``module``)."""
        return [
            dict(num_chs=self.stage_channels[i], reduction=self.reductions[i], module=f"layer{i + 1}")
            for i in self.out_indices
        ]

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.config.image_size)  # type: ignore[return-value]

    @property
    def preprocess(self) -> ImagePreprocess:
        """PIL image / path / array -> normalised ``(3, H, W)`` tensor at this backbone's input size."""
        return ImagePreprocess(self.preprocess_config)

    # -- forward ---------------------------------------------------------------------------
    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool a layer4 map: the attention pool with ``attn_pool``, else global average pooling."""
        if self.attnpool is not None:
            return self.attnpool(x)
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor):
        """Selected stage maps (list, or one tensor for an int ``out_indices``), or the embedding."""
        if self.attnpool is not None:
            return self.forward_head(self.forward_features(x))
        maps = self.forward_intermediates(x, indices=self.out_indices, stop_early=True, intermediates_only=True)
        return maps[0] if self.single_output else maps

    def extra_repr(self) -> str:
        return (
            f"out_indices={self.out_indices}, last_stride={self.config.last_stride}, "
            f"image_size={self.image_size}, attn_pool={self.attnpool is not None}"
        )


def _check_out_indices(out_indices: int | Sequence[int]) -> tuple[int, ...]:
    indices = (out_indices,) if isinstance(out_indices, int) else tuple(out_indices)
    if not indices or any(not isinstance(i, int) or isinstance(i, bool) or not 0 <= i <= 3 for i in indices):
        raise ConfigError(f"out_indices must be stage numbers in 0..3 (layer1..layer4), got {out_indices!r}")
    if len(set(indices)) != len(indices) or list(indices) != sorted(indices):
        raise ConfigError(f"out_indices must be increasing and distinct, got {out_indices!r}")
    return indices


#: architectures known without reading any file, for ``pretrained=False``
_KNOWN_ARCHITECTURES = {"plip-rn50": lambda: PLIPConfig.rn50().vision}


def backbone(
    model: Any = "plip-rn50",
    pretrained: bool = True,
    *,
    last_stride: int = 2,
    out_indices: int | Sequence[int] = (0, 1, 2, 3),
    attn_pool: bool = False,
    image_size: Sequence[int] | None = None,
    interpolation: str = "bicubic",
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> "PLIPBackbone | TimmBackbone":
    """The PLIP image encoder as a backbone for ReID / attribute models.

    Args:
        model: ``"plip-rn50"``, ``"hf-hub:org/repo"``, a model folder, an official
            ``PLIP_RN50.pth.tar``, a loaded :class:`~plip.models.PLIPModel`, or a
            :class:`~plip.models.PLIPConfig` / ``VisionConfig`` (random weights).
        pretrained: load the weights (strictly: every backbone tensor must be present and of
            the right shape). Only the image encoder is read.
        last_stride: 2 as released; 1 keeps layer4 at 1/16 resolution (BoT, MGN) by turning
            the average pools of ``layer4[0]`` into identities (weights unchanged).
        out_indices: which stage maps ``forward`` returns (0..3 = layer1..layer4); an int
            returns that single map instead of a list.
        attn_pool: return the attention-pooled PLIP embedding instead of maps; its positional
            embedding is interpolated (with a warning) when the grid differs from training.
        image_size: ``(H, W)`` of the inputs, e.g. ``(384, 128)``; default: as trained (256x128).
        interpolation: ``"bicubic"`` or ``"bilinear"`` for the positional-embedding resize.
        revision: Hub revision, as in :func:`plip.load`.
        cache_dir: Hub cache folder, as in :func:`plip.load`.

    Returns:
        a :class:`PLIPBackbone` in training mode (a :class:`~plip.downstream.timm_backbone.TimmBackbone`
        for a model whose image tower is a timm model); ``.load_report`` says what was loaded.
    """
    _register_timm_models()
    kwargs = dict(last_stride=last_stride, out_indices=out_indices, attn_pool=attn_pool,
                  image_size=image_size, interpolation=interpolation)
    if isinstance(model, (PLIPConfig, VisionConfig)):
        if pretrained:
            raise ConfigError(
                "a config describes an architecture but holds no weights: pass pretrained=False, "
                "or a model name / folder / checkpoint to load pretrained weights"
            )
        vision = model.vision if isinstance(model, PLIPConfig) else model
        preprocess = model.preprocess if isinstance(model, PLIPConfig) else None
        return _backbone_class(vision)(dataclasses.replace(vision), preprocess=preprocess, **kwargs)
    if not pretrained and isinstance(model, str) and model in _KNOWN_ARCHITECTURES:
        return PLIPBackbone(_KNOWN_ARCHITECTURES[model](), **kwargs)

    weights = load_visual_weights(model, revision=revision, cache_dir=cache_dir)
    cls = _backbone_class(weights.config)
    if not pretrained:
        return cls(weights.config, preprocess=weights.preprocess, **kwargs)
    return cls(
        weights.config, state_dict=weights.state_dict, source=weights.source,
        preprocess=weights.preprocess, **kwargs,
    )


def _backbone_class(vision: VisionConfig) -> type:
    return TimmBackbone if vision.kind == "timm" else PLIPBackbone


def _register_timm_models() -> None:
    """The first backbone call registers the timm models too (documented in plip.timm)."""
    from . import timm_models  # noqa: F401


def resolve_backbone(
    spec: Any, pretrained: bool, *, last_stride: int, image_size: Sequence[int] | None, where: str
) -> PLIPBackbone:
    """The backbone of a downstream model: ``spec`` built by :func:`backbone`, or a prebuilt
    :class:`PLIPBackbone` / ``TimmBackbone`` (without attention pool, with the requested last
    stride) used as is."""
    if isinstance(spec, TimmBackbone):
        if spec.has_head:
            raise ConfigError(f"{where}: the backbone must be built with attn_pool=False")
        return spec
    if isinstance(spec, PLIPBackbone):
        if spec.attnpool is not None:
            raise ConfigError(f"{where}: the backbone must be built with attn_pool=False")
        if spec.config.last_stride != last_stride:
            raise ConfigError(
                f"{where}: expected a backbone with last_stride={last_stride}, got {spec.config.last_stride}"
            )
        return spec
    return backbone(spec, pretrained, last_stride=last_stride, out_indices=3, image_size=image_size)
