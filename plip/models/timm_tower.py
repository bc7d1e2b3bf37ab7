"""Any timm model as PLIP's image tower (``vision.kind: timm``): the paper's Swin-B and beyond.

The timm model is the *trunk* (``visual.trunk.*`` in ``model.safetensors``); PLIP adds the
global pooling and the projection to the joint embedding size. The contract is the Modified
ResNet's (:class:`plip.models.ModifiedResNet`), so the pre-training heads, ``plip.load`` and
the inference API use either tower unchanged:

* ``forward_intermediates`` returns the stage maps selected by ``vision.timm.out_indices`` as
  NCHW tensors (timm's own ``forward_intermediates``; Swin's NHWC and ViT's tokens are
  converted by timm), with ``stage_channels`` / ``reductions`` from timm's ``feature_info``;
* ``forward_features`` is the last stage map (NCHW, ``num_features`` channels, after the
  trunk's final norm);
* ``forward_head`` pools it (attention pool, average or max) and projects it to
  ``output_dim``; ``forward`` is the embedding. The ``token`` pool reads the class token,
  which a map does not hold: ``forward`` computes it, ``forward_head`` refuses it.

Every shape the heads need (channels divisible by the attention heads, an input size the
trunk's strides divide, a class token for ``token``) is checked when the tower is built.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from .config import VisionConfig
from .modified_resnet import AttentionPool2d, MaxPoolLinear
from .towers import register_vision_tower

__all__ = ["TimmVisionTower", "create_timm_trunk"]


def create_timm_trunk(config: VisionConfig, pretrained: bool | str = False) -> nn.Module:
    """The timm model of ``config.timm`` without classifier or pooling, at ``config.image_size``.

    ``pretrained``: ``True`` loads timm's own weights (its cache or the Hub), a path loads that
    local file (timm adapts it: resized position tables, dropped classifier).
    """
    import timm

    spec = config.timm
    if spec is None:
        raise ConfigError("vision.timm is missing: a timm tower needs vision.timm.model_name")
    if spec.model_name not in timm.list_models() and spec.model_name.split(".")[0] not in timm.list_models():
        raise ConfigError(f"vision.timm.model_name {spec.model_name!r} is not a timm model (timm {timm.__version__})")
    kwargs: dict[str, Any] = dict(spec.kwargs, num_classes=0, global_pool="")
    if isinstance(pretrained, str):
        if not os.path.isfile(pretrained):
            raise ConfigError(f"vision.timm.pretrained: {pretrained} is not a file")
        kwargs["pretrained_cfg_overlay"] = {"file": os.path.abspath(pretrained)}
    load = bool(pretrained)
    try:
        try:
            return timm.create_model(spec.model_name, pretrained=load, img_size=tuple(config.image_size), **kwargs)
        except TypeError as err:
            if "img_size" not in str(err):
                raise
            return timm.create_model(spec.model_name, pretrained=load, **kwargs)  # a CNN: any input size
    except (ConfigError, KeyboardInterrupt):
        raise
    except Exception as err:  # timm raises many types (TypeError for kwargs, OSError / HF errors offline)
        what = "loading its pretrained weights" if load else "building it"
        hint = (" (timm's weights need its cache or the Hub; offline, give a local weights file in "
                "vision.timm.pretrained)" if pretrained is True else "")
        raise ConfigError(
            f"timm model {spec.model_name!r} with kwargs {dict(spec.kwargs)}: {what} failed: "
            f"{type(err).__name__}: {err}{hint}"
        ) from err


@register_vision_tower("timm")
class TimmVisionTower(nn.Module):
    """A timm trunk + PLIP's pooling head, with :class:`~plip.models.ModifiedResNet`'s methods."""

    def __init__(self, config: VisionConfig, *, pretrained: bool | str = False) -> None:
        super().__init__()
        config.validate()
        if config.kind != "timm":
            raise ConfigError(f"TimmVisionTower needs vision.kind 'timm', got {config.kind!r}")
        self.config = config
        self.trunk = create_timm_trunk(config, pretrained)
        name = config.timm.model_name
        if not hasattr(self.trunk, "forward_intermediates") or not hasattr(self.trunk, "feature_info"):
            raise ConfigError(f"timm model {name!r} has no forward_intermediates / feature_info: it cannot be a PLIP tower")
        info = list(self.trunk.feature_info)
        indices = tuple(config.timm.out_indices) or tuple(range(max(0, len(info) - 4), len(info)))
        if any(i >= len(info) for i in indices):
            raise ConfigError(
                f"vision.timm.out_indices {list(indices)}: {name} has {len(info)} feature stages (0..{len(info) - 1})"
            )
        self.out_indices = tuple(sorted(indices))
        self._stage_channels = tuple(int(info[i]["num_chs"]) for i in self.out_indices)
        self._reductions = tuple(int(info[i]["reduction"]) for i in self.out_indices)
        self._last_index = len(info) - 1
        self._num_features = int(info[-1]["num_chs"])
        reduction = int(info[-1]["reduction"])
        h, w = config.image_size
        if h % reduction or w % reduction:
            raise ConfigError(
                f"vision.image_size {h}x{w} is not divisible by {name}'s output stride {reduction}"
            )
        self.feature_grid = (h // reduction, w // reduction)

        self.attnpool: AttentionPool2d | None = None
        self.maxpool: MaxPoolLinear | None = None
        self.proj: nn.Linear | None = None
        if config.pool == "attention":
            if self._num_features % config.heads:
                raise ConfigError(
                    f"vision.heads={config.heads} must divide {name}'s {self._num_features} output channels"
                )
            self.attnpool = AttentionPool2d(self.feature_grid, self._num_features, config.heads, config.output_dim)
        elif config.pool == "max":
            self.maxpool = MaxPoolLinear(self._num_features, config.output_dim)
        else:  # avg, token
            if config.pool == "token" and getattr(self.trunk, "cls_token", None) is None:
                raise ConfigError(f"vision.pool 'token' needs a class token; {name} has none (use avg, max or attention)")
            self.proj = nn.Linear(self._num_features, config.output_dim)

    # -- description (ModifiedResNet's names) ------------------------------------------------
    @property
    def output_dim(self) -> int:
        return self.config.output_dim

    @property
    def num_features(self) -> int:
        """Channels of :meth:`forward_features` (the trunk's last stage)."""
        return self._num_features

    @property
    def head_hidden_size(self) -> int:
        return self.config.output_dim

    @property
    def stage_channels(self) -> tuple[int, ...]:
        """Channels of the maps :meth:`forward_intermediates` returns."""
        return self._stage_channels

    @property
    def reductions(self) -> tuple[int, ...]:
        """Input-to-map stride of each returned map."""
        return self._reductions

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.trunk.set_grad_checkpointing(enable)

    def load_pretrained(self, source: bool | str | None = None) -> None:
        """Replace the trunk's weights by ``source`` (default ``vision.timm.pretrained``), strictly."""
        source = self.config.timm.pretrained if source is None else source
        if not source:
            return
        fresh = create_timm_trunk(self.config, pretrained=source)
        self.trunk.load_state_dict(fresh.state_dict(), strict=True)

    # -- forward ---------------------------------------------------------------------------
    def _maps(self, x: torch.Tensor, indices: Sequence[int], norm: bool, stop_early: bool) -> list[torch.Tensor]:
        return self.trunk.forward_intermediates(
            x, indices=list(indices), norm=norm, stop_early=stop_early, output_fmt="NCHW", intermediates_only=True
        )

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ):
        """The stage maps (``indices`` counts within ``out_indices``: ``None`` all, an int the
        last n), as :meth:`ModifiedResNet.forward_intermediates`."""
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be 'NCHW', got {output_fmt!r}")
        n = len(self.out_indices)
        if indices is None:
            picked = list(range(n))
        elif isinstance(indices, int):
            if not 1 <= indices <= n:
                raise ValueError(f"indices as an int must be 1..{n} (the last n stages), got {indices}")
            picked = list(range(n - indices, n))
        else:
            picked = sorted(int(i) for i in indices)
            if not picked or picked[0] < 0 or picked[-1] >= n:
                raise ValueError(f"indices must be stage numbers in 0..{n - 1}, got {indices!r}")
        maps = self._maps(x, [self.out_indices[i] for i in picked], norm, intermediates_only and stop_early)
        return maps if intermediates_only else (self.forward_features(x), maps)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage map ``(B, num_features, H/r, W/r)`` after the trunk's final norm."""
        return self._maps(x, [self._last_index], norm=True, stop_early=True)[0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool a last-stage map to ``(B, output_dim)``."""
        if self.attnpool is not None:
            return self.attnpool(x)
        if self.maxpool is not None:
            return self.maxpool(x)
        if self.config.pool == "token":
            raise ValueError("the 'token' pool reads the class token, which a feature map does not hold: call forward()")
        return self.proj(x.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled embedding ``(B, output_dim)``, not normalised."""
        if self.config.pool == "token":
            _, prefix = self.trunk.forward_intermediates(
                x, indices=[self._last_index], norm=True, stop_early=True, return_prefix_tokens=True,
                intermediates_only=True,
            )[0]
            return self.proj(prefix[:, 0])
        return self.forward_head(self.forward_features(x))
