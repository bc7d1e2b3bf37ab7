"""A PLIP timm image tower (``vision.kind: timm``) as a backbone for BoT and the attribute recogniser.

:func:`plip.backbone` returns this class for a model whose image tower is a timm model; it
has :class:`~plip.downstream.PLIPBackbone`'s interface (``out_indices``, ``attn_pool``,
``forward_features`` as an NCHW map, ``feature_info``, ``preprocess``, ``load_report``).

Supported combinations: BoT and :class:`~plip.downstream.AttributeRecognizer` with
``last_stride=2`` at the input size the tower was trained at. Not supported (a clear error):
``last_stride=1`` (it is the Modified ResNet's stride-as-average-pool; timm towers keep their
strides), another input size (a Swin's windows and a ViT's positions are fixed at build time),
and MGN (its branches copy ResNet ``layer3`` / ``layer4``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import torch

from ..data.transforms import ImagePreprocess
from ..errors import ConfigError
from ..hub.state_dict import load_state_dict_strict
from ..models.config import PreprocessConfig, VisionConfig
from ..models.timm_tower import TimmVisionTower
from .load_report import BackboneLoadReport

__all__ = ["TimmBackbone"]

_HEAD_MODULES = ("attnpool", "maxpool", "proj")


class TimmBackbone(TimmVisionTower):
    """Stage maps (``out_indices`` within the tower's exposed stages) or, with ``attn_pool``,
    the pooled PLIP embedding of a timm tower. Arguments as :class:`~plip.downstream.PLIPBackbone`."""

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
        name = config.timm.model_name if config.timm else "?"
        if last_stride != 2:
            raise ConfigError(
                f"backbone: last_stride={last_stride} is the Modified ResNet's (its strides are average "
                f"pools); the timm tower {name} keeps its own strides: use last_stride=2"
            )
        if image_size is not None and tuple(image_size) != tuple(config.image_size):
            raise ConfigError(
                f"backbone: the timm tower {name} was built for {tuple(config.image_size)} inputs; "
                f"image_size={tuple(image_size)} is not supported for timm towers"
            )
        super().__init__(dataclasses.replace(config))
        self.single_output = isinstance(out_indices, int)
        picked = (out_indices,) if isinstance(out_indices, int) else tuple(out_indices)
        n = len(self.out_indices)
        if not picked or any(not isinstance(i, int) or not 0 <= i < n for i in picked) or list(picked) != sorted(set(picked)):
            raise ConfigError(f"out_indices must be increasing stage numbers in 0..{n - 1}, got {out_indices!r}")
        self.selected = picked
        self.load_report: BackboneLoadReport | None = None
        if state_dict is not None:
            load_state_dict_strict(self, state_dict, source)
            self.load_report = BackboneLoadReport(source=source, loaded_keys=sorted(state_dict))
        self.has_head = attn_pool
        if not attn_pool:
            dropped = [f"{m}.{k}" for m in _HEAD_MODULES if getattr(self, m) is not None
                       for k in getattr(self, m).state_dict()]
            if self.load_report is not None:
                self.load_report.dropped_keys = sorted(dropped)
            for module in _HEAD_MODULES:
                setattr(self, module, None)  # unused parameters would break DDP
        base = preprocess or PreprocessConfig(image_size=tuple(config.image_size))
        self.preprocess_config = dataclasses.replace(base, image_size=tuple(config.image_size))

    @property
    def out_channels(self) -> list[int]:
        return [self.stage_channels[i] for i in self.selected]

    @property
    def head_hidden_size(self) -> int:
        return self.config.output_dim if self.has_head else self.num_features

    @property
    def feature_info(self) -> list[dict[str, Any]]:
        return [dict(num_chs=self.stage_channels[i], reduction=self.reductions[i], module=f"trunk.stage{i}")
                for i in self.selected]

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.config.image_size)  # type: ignore[return-value]

    @property
    def preprocess(self) -> ImagePreprocess:
        return ImagePreprocess(self.preprocess_config)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.has_head:
            return super().forward_head(x, pre_logits)
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor):
        if self.has_head:
            return super().forward(x)
        maps = self.forward_intermediates(x, indices=list(self.selected), stop_early=True, intermediates_only=True)
        return maps[0] if self.single_output else maps

    def extra_repr(self) -> str:
        return f"model={self.config.timm.model_name}, out_indices={self.selected}, attn_pool={self.has_head}"
