"""PLIP in fast-reid (JDAI-CV/fast-reid, PyPI ``fastreid``): a backbone and an MGN meta-architecture.

>>> from fastreid.config import get_cfg
>>> from fastreid.modeling import build_model
>>> import plip.integrations.fastreid as plip_fastreid          # registers both
>>> cfg = get_cfg()
>>> cfg.merge_from_file(plip_fastreid.config_path("bagtricks_PLIP-R50.yml"))
>>> model = build_model(cfg)                                   # fast-reid's Baseline on PLIP

- ``MODEL.BACKBONE.NAME: build_plip_backbone`` builds :class:`~plip.downstream.PLIPBackbone`
  (layer4 map, ``LAST_STRIDE`` as set) from ``MODEL.BACKBONE.PRETRAIN_PATH``: any
  :func:`plip.backbone` spec (``plip-rn50``, a model folder, ``hf-hub:...``, an official
  ``PLIP_RN50.pth.tar``); empty means ``plip-rn50``. ``PRETRAIN: False`` keeps the
  architecture with random weights.
- ``MODEL.META_ARCHITECTURE: PLIPMGN`` is :class:`~plip.downstream.MGN` speaking fast-reid's
  protocol (a dict of ``images`` in 0..255 and ``targets`` in; a loss dict in training, the
  2048-d feature in eval). fast-reid's own ``MGN`` rebuilds torchvision-style blocks and cannot
  use the PLIP network (``no attribute 'relu'``).

fast-reid feeds 0..255 pixels and normalises inside the model, so ``MODEL.PIXEL_MEAN/STD``
must be PLIP's mean/std x 255, and ``MODEL.BACKBONE.FEAT_DIM`` the backbone's width. Both
are checked when the model is built: a mismatch is a :class:`~plip.errors.ConfigError`.
The shipped configs (:func:`config_path`) have them right.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import torch
from torch import nn

from ..downstream import MGN
from ..downstream.backbone import PLIPBackbone, backbone as build_backbone_from_spec
from ..errors import ConfigError
from . import require

__all__ = ["CONFIGS", "PLIPMGN", "build_plip_backbone", "check_pixel_stats", "config_path"]

CONFIGS = ("bagtricks_PLIP-R50.yml", "mgn_PLIP-R50.yml")
DEFAULT_SPEC = "plip-rn50"
_PIXEL_TOLERANCE = 0.5  # grey levels: the configs round PLIP's mean/std x 255 to 3 decimals

_registries = require("fastreid.modeling")


def config_path(name: str = "bagtricks_PLIP-R50.yml") -> str:
    """Path of a config shipped with plip (:data:`CONFIGS`), for ``cfg.merge_from_file``."""
    if name not in CONFIGS:
        raise ConfigError(f"unknown plip fast-reid config {name!r}; shipped: {', '.join(CONFIGS)}")
    return str(resources.files("plip.integrations") / "fastreid_configs" / name)


def _spec(cfg: Any) -> str:
    return str(cfg.MODEL.BACKBONE.PRETRAIN_PATH or DEFAULT_SPEC)


def check_pixel_stats(cfg: Any, backbone: PLIPBackbone) -> None:
    """``MODEL.PIXEL_MEAN/STD`` must be the backbone's preprocessing mean/std on fast-reid's 0..255 scale."""
    mean, std = [float(v) for v in cfg.MODEL.PIXEL_MEAN], [float(v) for v in cfg.MODEL.PIXEL_STD]
    pre = backbone.preprocess_config
    want_mean, want_std = [255.0 * v for v in pre.mean], [255.0 * v for v in pre.std]
    fmt = lambda values: "[" + ", ".join(f"{v:.3f}" for v in values) + "]"  # noqa: E731
    if max(mean) <= 1.0 and max(std) <= 1.0:
        raise ConfigError(
            f"MODEL.PIXEL_MEAN {fmt(mean)} / PIXEL_STD {fmt(std)} look like 0..1 values, but fast-reid feeds "
            f"0..255 pixels: use MODEL.PIXEL_MEAN {fmt(want_mean)} and MODEL.PIXEL_STD {fmt(want_std)}"
        )
    if not cfg.MODEL.BACKBONE.PRETRAIN:
        return  # random weights: any normalisation is the user's choice
    off = max(abs(a - b) for a, b in zip(mean + std, want_mean + want_std))
    if off > _PIXEL_TOLERANCE:
        raise ConfigError(
            f"MODEL.PIXEL_MEAN {fmt(mean)} / PIXEL_STD {fmt(std)} differ from the normalisation the PLIP weights "
            f"{_spec(cfg)!r} were trained with (x 255: mean {fmt(want_mean)}, std {fmt(want_std)}); "
            f"set those (ImageNet's values give the weights a different input)"
        )


def _backbone(cfg: Any, *, last_stride: int) -> PLIPBackbone:
    size = tuple(int(v) for v in cfg.INPUT.SIZE_TRAIN)
    net = build_backbone_from_spec(
        _spec(cfg), bool(cfg.MODEL.BACKBONE.PRETRAIN), last_stride=last_stride, out_indices=3, image_size=size
    )
    check_pixel_stats(cfg, net)
    return net


@_registries.BACKBONE_REGISTRY.register()
def build_plip_backbone(cfg: Any) -> PLIPBackbone:
    """fast-reid backbone builder: the PLIP image encoder's layer4 map (``(B, 2048, H/16, W/16)`` at last stride 1)."""
    last_stride = int(cfg.MODEL.BACKBONE.LAST_STRIDE)
    if last_stride not in (1, 2):
        raise ConfigError(f"MODEL.BACKBONE.LAST_STRIDE must be 1 or 2, got {last_stride}")
    net = _backbone(cfg, last_stride=last_stride)
    width = net.stage_channels[-1]
    if int(cfg.MODEL.BACKBONE.FEAT_DIM) != width:
        raise ConfigError(
            f"MODEL.BACKBONE.FEAT_DIM is {cfg.MODEL.BACKBONE.FEAT_DIM} but the PLIP backbone {_spec(cfg)!r} "
            f"outputs {width} channels; set MODEL.BACKBONE.FEAT_DIM: {width}"
        )
    return net


@_registries.META_ARCH_REGISTRY.register()
class PLIPMGN(nn.Module):
    """plip's :class:`~plip.downstream.MGN` as a fast-reid meta-architecture.

    Config: ``MODEL.HEADS.NUM_CLASSES`` (identities), ``MODEL.HEADS.EMBEDDING_DIM`` (the
    reduced feature size, 256), ``INPUT.SIZE_TRAIN`` (384x128), ``MODEL.LOSSES`` (CE epsilon
    and scale, triplet margin / hard mining / scale) and the backbone keys above. Losses:
    ``loss_cls`` = mean of the 8 cross-entropies, ``loss_triplet`` = mean of the 3 global
    triplet losses, each times its ``SCALE`` (the averaging of :class:`~plip.downstream.MGNLoss`).
    """

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        net = _backbone(cfg, last_stride=2)  # MGN sets its part branches' stride itself
        feat_dim = int(cfg.MODEL.HEADS.EMBEDDING_DIM) or 256
        self.mgn = MGN(int(cfg.MODEL.HEADS.NUM_CLASSES), backbone=net, feat_dim=feat_dim, image_size=net.image_size)
        self.register_buffer("pixel_mean", torch.tensor(cfg.MODEL.PIXEL_MEAN, dtype=torch.float32).view(1, -1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(cfg.MODEL.PIXEL_STD, dtype=torch.float32).view(1, -1, 1, 1), False)
        losses = cfg.MODEL.LOSSES
        self.loss_names = tuple(losses.NAME)
        self.ce = dict(eps=float(losses.CE.EPSILON), alpha=float(losses.CE.ALPHA), scale=float(losses.CE.SCALE))
        self.tri = dict(margin=float(losses.TRI.MARGIN), norm_feat=bool(losses.TRI.NORM_FEAT),
                        hard_mining=bool(losses.TRI.HARD_MINING), scale=float(losses.TRI.SCALE))  # fmt: skip
        unknown = set(self.loss_names) - {"CrossEntropyLoss", "TripletLoss"}
        if unknown:
            raise ConfigError(f"PLIPMGN supports MODEL.LOSSES.NAME CrossEntropyLoss and TripletLoss, got {sorted(unknown)}")

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def preprocess_image(self, batched_inputs: Any) -> torch.Tensor:
        images = batched_inputs["images"] if isinstance(batched_inputs, dict) else batched_inputs
        if not isinstance(images, torch.Tensor):
            raise ConfigError(f"PLIPMGN expects a dict with 'images' or a tensor, got {type(batched_inputs).__name__}")
        return (images.to(self.device, torch.float32) - self.pixel_mean) / self.pixel_std

    def forward(self, batched_inputs: Any):
        images = self.preprocess_image(batched_inputs)
        out = self.mgn(images)
        if not self.training:
            return out
        if not isinstance(batched_inputs, dict) or "targets" not in batched_inputs:
            raise ConfigError("PLIPMGN in training mode needs batched_inputs['targets'] (person labels)")
        targets = batched_inputs["targets"].to(self.device)
        return self.losses(out, targets)

    def losses(self, out, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        from fastreid.modeling.losses import cross_entropy_loss, log_accuracy, triplet_loss
        from fastreid.utils.events import _CURRENT_STORAGE_STACK

        if _CURRENT_STORAGE_STACK:  # inside fast-reid's trainer: log accuracy as its Baseline does
            log_accuracy(out.logits[0].detach(), targets)
        result = {}
        if "CrossEntropyLoss" in self.loss_names:
            terms = [cross_entropy_loss(z, targets, self.ce["eps"], self.ce["alpha"]) for z in out.logits]
            result["loss_cls"] = torch.stack(terms).mean() * self.ce["scale"]
        if "TripletLoss" in self.loss_names:
            terms = [triplet_loss(f, targets, self.tri["margin"], self.tri["norm_feat"], self.tri["hard_mining"])
                     for f in out.global_feats]  # fmt: skip
            result["loss_triplet"] = torch.stack(terms).mean() * self.tri["scale"]
        return result
