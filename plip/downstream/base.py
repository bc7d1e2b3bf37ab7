"""What every downstream model is: a :class:`DownstreamModel` registered by type name.

A model type registers itself at its definition (``@register_downstream("bot")``, as timm's
``register_model``); saving and loading work for every registered type with no other edit.
A saved model folder holds ``config.json`` (``model_type``, the constructor arguments, the
backbone's architecture and preprocessing) and ``model.safetensors`` (the whole state dict).
Loading rebuilds the architecture without any PLIP weights or download and loads strictly.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Callable, ClassVar, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import CheckpointError, ConfigError, ModelNotFoundError
from ..hub.state_dict import load_state_dict_strict
from ..models.config import PreprocessConfig, VisionConfig
from ..utils.config import build_dataclass
from ..utils.io import atomic_path, atomic_write_text
from ..version import __version__
from .backbone import BackboneLoadReport, PLIPBackbone

__all__ = ["DownstreamModel", "DOWNSTREAM_MODELS", "register_downstream", "save_model", "load_model"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

#: model type name -> class, filled by :func:`register_downstream`
DOWNSTREAM_MODELS: dict[str, type["DownstreamModel"]] = {}

M = TypeVar("M", bound=type)


def register_downstream(name: str) -> Callable[[M], M]:
    """Class decorator: register a :class:`DownstreamModel` subclass under ``name``."""

    def decorate(cls: M) -> M:
        if name in DOWNSTREAM_MODELS:
            raise ConfigError(f"downstream model type {name!r} is already registered")
        cls.model_type = name  # type: ignore[attr-defined]
        DOWNSTREAM_MODELS[name] = cls  # type: ignore[assignment]
        return cls

    return decorate


class DownstreamModel(nn.Module):
    """A model on a :class:`~plip.downstream.PLIPBackbone` (``self.backbone``).

    Subclasses take ``backbone=`` and ``pretrained=`` in their constructor, describe the rest of
    it in :meth:`init_args`, and are saved / loaded by :func:`save_model` / :func:`load_model`.
    """

    model_type: ClassVar[str] = ""
    backbone: PLIPBackbone

    def init_args(self) -> dict[str, Any]:
        """Constructor arguments besides the backbone (JSON-serialisable)."""
        raise NotImplementedError

    @classmethod
    def tiny_example_kwargs(cls) -> dict[str, Any]:
        """Constructor arguments of a tiny random instance (``pretrained=False``), with a
        ``backbone`` config and an ``input_size`` (H, W) entry: what the conformance suite builds."""
        raise NotImplementedError(f"{cls.__name__} must define tiny_example_kwargs() (tests/test_conformance.py)")

    @property
    def load_report(self) -> BackboneLoadReport | None:
        """What the backbone loaded, ``None`` if it was built with random weights."""
        return self.backbone.load_report

    @property
    def preprocess_config(self) -> PreprocessConfig:
        """The preprocessing the model expects (the backbone's, at the model's input size)."""
        return self.backbone.preprocess_config

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write ``config.json`` + ``model.safetensors``; :func:`load_model` reads them."""
        save_model(self, directory)


def save_model(model: DownstreamModel, directory: str | os.PathLike) -> None:
    """Write a registered downstream model to ``directory``; files are written atomically."""
    if type(model).model_type not in DOWNSTREAM_MODELS or DOWNSTREAM_MODELS[type(model).model_type] is not type(model):
        raise ConfigError(
            f"cannot save a {type(model).__name__}: not a registered downstream model ({', '.join(DOWNSTREAM_MODELS)})"
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "_plip_version": __version__,
        "model_type": model.model_type,
        "args": model.init_args(),
        "vision": dataclasses.asdict(model.backbone.config),
        "preprocess": dataclasses.asdict(model.preprocess_config),
    }
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(directory / WEIGHTS_NAME) as tmp:
        save_file(state, tmp, metadata={"format": "pt", "plip_model_type": model.model_type})
    atomic_write_text(directory / CONFIG_NAME, json.dumps(config, indent=2) + "\n")


def load_model(directory: str | os.PathLike, device: str | torch.device | None = None) -> DownstreamModel:
    """Rebuild a model saved by :func:`save_model` (eval mode, on ``device``, default CPU)."""
    directory = Path(directory)
    config_path, weights = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    if not config_path.is_file() or not weights.is_file():
        raise ModelNotFoundError(
            f"{directory}: not a downstream model folder (needs {CONFIG_NAME} and {WEIGHTS_NAME})"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{config_path}: not valid JSON ({err})") from None
    kind = config.get("model_type")
    if kind not in DOWNSTREAM_MODELS:
        raise ConfigError(f"{config_path}: model_type {kind!r} is not one of {', '.join(DOWNSTREAM_MODELS)}")
    for key in ("args", "vision", "preprocess"):
        if not isinstance(config.get(key), dict):
            raise ConfigError(f"{config_path}: missing or malformed {key!r}")
    vision: VisionConfig = build_dataclass(VisionConfig, config["vision"], source=str(config_path), prefix="vision.")
    preprocess: PreprocessConfig = build_dataclass(
        PreprocessConfig, config["preprocess"], source=str(config_path), prefix="preprocess.")
    try:
        model = DOWNSTREAM_MODELS[kind](backbone=vision, pretrained=False, **dict(config["args"]))
    except TypeError as err:
        raise ConfigError(f"{config_path}: arguments do not fit a {kind} model ({err})") from None
    model.backbone.preprocess_config = preprocess
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{weights}: unreadable safetensors file ({err})") from None
    load_state_dict_strict(model, state, str(weights))
    return model.to(device or "cpu").eval()
