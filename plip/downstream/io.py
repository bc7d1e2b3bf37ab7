"""Saving and loading trained downstream models (BoT, MGN, attribute recognizer).

A model folder holds ``config.json`` (``model_type``, the constructor arguments, the
backbone's architecture and preprocessing) and ``model.safetensors`` (the whole model's
state dict). Loading rebuilds the architecture without any PLIP weights or download and
loads the tensors strictly.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import CheckpointError, ConfigError, ModelNotFoundError
from ..models.config import PreprocessConfig, VisionConfig
from ..utils.config import build_dataclass
from ..utils.io import atomic_path, atomic_write_text

__all__ = ["save_model", "load_model", "MODEL_TYPES"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def _model_types() -> dict[str, type[nn.Module]]:
    from .bot import BoT
    from .mgn import MGN
    from .par import AttributeRecognizer

    return {"bot": BoT, "mgn": MGN, "attribute_recognizer": AttributeRecognizer}


MODEL_TYPES = ("bot", "mgn", "attribute_recognizer")


def _type_name(model: nn.Module) -> str:
    for name, cls in _model_types().items():
        if type(model) is cls:
            return name
    raise ConfigError(f"cannot save a {type(model).__name__}: not one of {', '.join(MODEL_TYPES)}")


def save_model(model: nn.Module, directory: str | os.PathLike) -> None:
    """Write ``model`` (BoT, MGN or AttributeRecognizer) to ``directory``; files are written atomically."""
    from .. import __version__

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    backbone = model.backbone
    preprocess = getattr(model, "preprocess_config", None) or backbone.preprocess_config
    config = {
        "_plip_version": __version__,
        "model_type": _type_name(model),
        "args": model.init_args(),
        "vision": dataclasses.asdict(backbone.config),
        "preprocess": dataclasses.asdict(preprocess),
    }
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(directory / WEIGHTS_NAME) as tmp:
        save_file(state, tmp, metadata={"format": "pt", "plip_model_type": config["model_type"]})
    atomic_write_text(directory / CONFIG_NAME, json.dumps(config, indent=2) + "\n")


def load_model(directory: str | os.PathLike, device: str | torch.device | None = None) -> nn.Module:
    """Rebuild a model saved by :func:`save_model` (eval mode, on ``device``, default CPU)."""
    from ..hub.state_dict import load_state_dict_strict
    from .backbone import PLIPBackbone

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
    types = _model_types()
    kind = config.get("model_type")
    if kind not in types:
        raise ConfigError(f"{config_path}: model_type {kind!r} is not one of {', '.join(MODEL_TYPES)}")
    for key in ("args", "vision", "preprocess"):
        if not isinstance(config.get(key), dict):
            raise ConfigError(f"{config_path}: missing or malformed {key!r}")
    vision: VisionConfig = build_dataclass(VisionConfig, config["vision"], source=str(config_path), prefix="vision.")
    preprocess: PreprocessConfig = build_dataclass(PreprocessConfig, config["preprocess"], source=str(config_path), prefix="preprocess.")
    args: dict[str, Any] = dict(config["args"])
    try:
        model = types[kind](backbone=vision, pretrained=False, **args)
    except TypeError as err:
        raise ConfigError(f"{config_path}: arguments do not fit a {kind} model ({err})") from None
    backbone = model.backbone
    assert isinstance(backbone, PLIPBackbone)
    backbone.preprocess_config = preprocess
    if hasattr(model, "preprocess_config"):
        model.preprocess_config = preprocess
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{weights}: unreadable safetensors file ({err})") from None
    load_state_dict_strict(model, state, str(weights))
    return model.to(device or "cpu").eval()
