"""PLIP models in torchreid's model factory (deep-person-reid / PyPI ``torchreid``).

>>> import torchreid
>>> import plip.integrations.torchreid as plip_torchreid          # registers the models
>>> dm = torchreid.data.ImageDataManager(root="data", sources="market1501",
...                                      **plip_torchreid.datamanager_kwargs("plip_bot"))
>>> model = torchreid.models.build_model("plip_bot", num_classes=dm.num_train_pids, loss="softmax")

Registered names (``pretrained=True`` loads ``plip-rn50``; ``pretrained=False`` builds the same
architecture with random weights):

- ``plip_bot``: BoT (:class:`plip.downstream.BoT`, last stride 1, BNNeck), 256x128;
- ``plip_mgn``: MGN (:class:`plip.downstream.MGN`, 3 branches, 8 heads), 384x128;
- ``plip_rn50``: the PLIP image tower with its attention pool (the 768-d PLIP embedding)
  plus a linear ID classifier, 256x128.

Every model follows torchreid's contract: in training mode ``loss="softmax"`` returns the
ID logits and ``loss="triplet"`` returns ``(logits, features)`` (MGN: lists of its 8 logits
and 3 global features, which torchreid's ``DeepSupervision`` averages exactly as MGN's own
loss does); in eval mode the retrieval feature. BoT's triplet feature is ``global_feat``
(before the BNNeck) and its eval feature the after-BN one, as in the BoT paper.

Other PLIP weights (a folder, ``hf-hub:...``, an official checkpoint, ``plip-tiny-synth``):
``register("my_bot", "bot", backbone="path/to/model")``.

torchreid keeps its factory in the private dict ``torchreid.models.__model_factory``;
:func:`model_factory` is the one place that touches it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..downstream import MGN, BoT
from ..downstream.backbone import backbone as build_backbone
from ..errors import ConfigError, PlipError
from . import require

__all__ = [
    "ARCHITECTURES", "LOSSES", "TorchreidBoT", "TorchreidMGN", "TorchreidPLIP",
    "datamanager_kwargs", "model_factory", "register", "registered_models",
]  # fmt: skip

LOSSES = ("softmax", "triplet")
DEFAULT_BACKBONE = "plip-rn50"


def model_factory() -> dict[str, Callable[..., nn.Module]]:
    """torchreid's model registry (the dict ``torchreid.models.build_model`` looks names up in)."""
    torchreid = require("torchreid")
    models = getattr(torchreid, "models", None)
    factory = getattr(models, "__model_factory", None)
    if not isinstance(factory, dict):
        version = getattr(torchreid, "__version__", "?")
        raise PlipError(
            f"torchreid {version} has no dict torchreid.models.__model_factory (where torchreid 0.2.5 / "
            f"deep-person-reid 1.4 keep their model registry); this torchreid is not supported by "
            f"plip.integrations.torchreid - please report it with the torchreid version"
        )
    return factory


ARCHITECTURES: dict[str, type[nn.Module]] = {}


def _architecture(name: str):
    """Register a torchreid-speaking model class as ``register(..., architecture=name)``."""

    def decorate(cls: type[nn.Module]) -> type[nn.Module]:
        ARCHITECTURES[name] = cls
        return cls

    return decorate


def _check_loss(loss: str) -> str:
    if loss not in LOSSES:
        raise ConfigError(f"torchreid loss must be one of {LOSSES}, got {loss!r}")
    return loss


@_architecture("bot")
class TorchreidBoT(BoT):
    """:class:`plip.downstream.BoT` with torchreid's outputs (state dict keys unchanged)."""

    def __init__(self, num_classes: int, *, loss: str = "softmax", **kwargs: Any) -> None:
        super().__init__(num_classes, **kwargs)
        self.loss = _check_loss(loss)

    @property
    def feature_dim(self) -> int:
        return self.feat_dim

    @property
    def preprocess_config(self):
        return self.backbone.preprocess_config

    def forward(self, images: torch.Tensor):
        out = super().forward(images)
        if not self.training:
            return out
        return out.cls_score if self.loss == "softmax" else (out.cls_score, out.global_feat)

    def as_plip(self) -> BoT:
        """A :class:`plip.downstream.BoT` sharing these parameters (for plip's save/load)."""
        return _as_base(self, BoT)

    def save_pretrained(self, directory) -> None:
        self.as_plip().save_pretrained(directory)


@_architecture("mgn")
class TorchreidMGN(MGN):
    """:class:`plip.downstream.MGN` with torchreid's outputs: lists that ``DeepSupervision`` averages."""

    def __init__(self, num_classes: int, *, loss: str = "softmax", **kwargs: Any) -> None:
        super().__init__(num_classes, **kwargs)
        self.loss = _check_loss(loss)

    @property
    def feature_dim(self) -> int:
        return self.embed_dim

    def forward(self, images: torch.Tensor):
        out = super().forward(images)
        if not self.training:
            return out
        logits = list(out.logits)
        return logits if self.loss == "softmax" else (logits, list(out.global_feats))

    def as_plip(self) -> MGN:
        """A :class:`plip.downstream.MGN` sharing these parameters (for plip's save/load)."""
        return _as_base(self, MGN)

    def save_pretrained(self, directory) -> None:
        self.as_plip().save_pretrained(directory)


def _as_base(model: nn.Module, base: type) -> nn.Module:
    # A second Python object over the same submodules and parameters, of the plain plip
    # class, so plip's own save/load (which keys on the exact class) accepts it.
    plain = base.__new__(base)
    plain.__dict__.update(model.__dict__)
    plain.__dict__.pop("loss", None)
    return plain


@_architecture("rn50")
class TorchreidPLIP(nn.Module):
    """The PLIP image tower (attention-pooled 768-d embedding) plus a linear ID classifier.

    Eval mode returns the PLIP embedding (unnormalised), exactly what ``model.visual`` gives;
    training returns the logits (``loss="softmax"``) or ``(logits, embedding)`` (``"triplet"``).
    """

    def __init__(self, num_classes: int, *, loss: str = "softmax", backbone: Any = DEFAULT_BACKBONE,
                 pretrained: bool = True, image_size: Any = None) -> None:  # fmt: skip
        super().__init__()
        if num_classes < 1:
            raise ConfigError(f"plip_rn50: num_classes must be >= 1, got {num_classes!r}")
        self.loss = _check_loss(loss)
        # another input size interpolates the attention pool's positions (with a warning)
        self.backbone = build_backbone(backbone, pretrained, attn_pool=True, image_size=image_size)
        self.feature_dim = self.backbone.num_features
        self.classifier = nn.Linear(self.feature_dim, num_classes)
        nn.init.normal_(self.classifier.weight, std=0.001)
        nn.init.zeros_(self.classifier.bias)

    @property
    def preprocess_config(self):
        return self.backbone.preprocess_config

    def forward(self, images: torch.Tensor):
        embedding = self.backbone(images)
        if not self.training:
            return embedding
        logits = self.classifier(embedding)
        return logits if self.loss == "softmax" else (logits, embedding)


@dataclass(frozen=True)
class _Entry:
    architecture: str
    backbone: Any
    kwargs: dict[str, Any]


def _build(entry: _Entry, num_classes: int, loss: str, pretrained: bool) -> nn.Module:
    cls = ARCHITECTURES[entry.architecture]
    return cls(num_classes, loss=loss, backbone=entry.backbone, pretrained=pretrained, **entry.kwargs)


_ENTRIES: dict[str, _Entry] = {}


def register(name: str, architecture: str, *, backbone: Any = DEFAULT_BACKBONE, overwrite: bool = False,
             **kwargs: Any) -> Callable[..., nn.Module]:  # fmt: skip
    """Add ``name`` to torchreid's model factory.

    Args:
        name: what ``torchreid.models.build_model(name, ...)`` will accept.
        architecture: ``"bot"``, ``"mgn"`` or ``"rn50"`` (see the module docstring).
        backbone: the PLIP weights ``pretrained=True`` loads (any :func:`plip.backbone` spec).
        overwrite: replace an existing entry of that name (else a :class:`~plip.errors.ConfigError`).
        kwargs: passed to the model (e.g. ``image_size=(384, 128)``, ``neck_feat="before"``).

    Returns:
        the factory function ``(num_classes, loss="softmax", pretrained=True, use_gpu=True)``.
    """
    if architecture not in ARCHITECTURES:
        raise ConfigError(f"architecture must be one of {tuple(ARCHITECTURES)}, got {architecture!r}")
    factory = model_factory()
    if name in factory and not overwrite and name not in _ENTRIES:
        raise ConfigError(f"torchreid already has a model named {name!r}; pass overwrite=True to replace it")
    entry = _Entry(architecture, backbone, dict(kwargs))

    def build(num_classes: int, loss: str = "softmax", pretrained: bool = True, use_gpu: bool = True,
              **extra: Any) -> nn.Module:  # fmt: skip
        # use_gpu: torchreid moves the model itself (model.cuda()); nothing to do here.
        return _build(dataclasses.replace(entry, kwargs={**entry.kwargs, **extra}), num_classes, loss, pretrained)

    build.__name__ = name
    build.__doc__ = f"torchreid factory for {name}: PLIP {architecture} on {backbone!r}."
    factory[name] = build
    _ENTRIES[name] = entry
    return build


def registered_models() -> list[str]:
    """The names this module added to torchreid's factory."""
    return sorted(_ENTRIES)


_IMAGE_SIZES = {"bot": None, "mgn": (384, 128), "rn50": None}


def _preprocess_of(model: Any):
    from ..models.config import PreprocessConfig

    if isinstance(model, str):
        if model not in _ENTRIES:
            raise ConfigError(f"{model!r} is not a PLIP torchreid model; registered: {', '.join(registered_models())}")
        entry = _ENTRIES[model]
        if entry.backbone == DEFAULT_BACKBONE:
            base = PreprocessConfig()
        else:
            from ..hub.visual_weights import load_visual_weights

            base = load_visual_weights(entry.backbone).preprocess
        size = entry.kwargs.get("image_size") or _IMAGE_SIZES[entry.architecture] or base.image_size
        return dataclasses.replace(base, image_size=tuple(size))
    config = getattr(model, "preprocess_config", None)
    if config is None and hasattr(model, "config") and hasattr(model.config, "preprocess"):
        config = model.config.preprocess  # a PLIPModel
    if config is None:
        raise ConfigError(f"cannot tell the preprocessing of a {type(model).__name__}; pass a PLIP model or its name")
    return config


def datamanager_kwargs(model: Any = "plip_bot") -> dict[str, Any]:
    """``height``, ``width``, ``norm_mean`` and ``norm_std`` for torchreid's ``ImageDataManager``.

    Args:
        model: a registered name (``"plip_bot"``), a model built from the factory, a
            :class:`~plip.downstream.PLIPBackbone` or a :class:`~plip.PLIPModel`.

    torchreid's defaults are ImageNet's mean/std, which give PLIP weights a different input
    than they were trained on. torchreid resizes with bilinear interpolation (PLIP: bicubic);
    that difference is small and cannot be set through ``ImageDataManager``.
    """
    config = _preprocess_of(model)
    height, width = (int(v) for v in config.image_size)
    return {"height": height, "width": width, "norm_mean": list(config.mean), "norm_std": list(config.std)}


register("plip_bot", "bot")
register("plip_mgn", "mgn")
register("plip_rn50", "rn50")
