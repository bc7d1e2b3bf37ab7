"""Where a backbone's weights come from: only the image encoder of a PLIP model is read.

Every way :func:`plip.load` names a model works here too (registry name, ``hf-hub:org/repo``,
a model folder, its ``model.safetensors``, an official ``PLIP_RN50.pth.tar``), plus a model
object already in memory. From a folder only the ``visual.*`` tensors are read (the BERT
weights are never loaded), so building a ReID model costs a fraction of ``plip.load``.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from ..errors import CheckpointError, ModelNotFoundError
from ..models.config import PLIPConfig, PreprocessConfig, VisionConfig
from ..models.modified_resnet import ModifiedResNet
from ..models.timm_tower import TimmVisionTower
from .folder import CONFIG_NAME, WEIGHTS_NAME
from .official import infer_config, read_official_checkpoint
from .sources import resolve_source

VISUAL_PREFIX = "visual."


@dataclass
class VisualWeights:
    """The image encoder of a PLIP model, as trained.

    Attributes:
        config: the encoder's architecture (input size and last stride as trained).
        preprocess: the preprocessing the weights were trained with.
        state_dict: tensors under the official key names (``conv1.weight`` ... ``attnpool.c_proj.bias``).
        source: a human-readable name of where they came from (used in messages).
    """

    config: VisionConfig
    preprocess: PreprocessConfig
    state_dict: dict[str, torch.Tensor]
    source: str


def load_visual_weights(
    spec: Any, *, revision: str | None = None, cache_dir: str | os.PathLike | None = None
) -> VisualWeights:
    """Read the image-encoder weights named by ``spec``.

    Args:
        spec: a registry name (``"plip-rn50"``), ``"hf-hub:org/repo[@rev]"``, a model folder,
            a ``model.safetensors`` next to its ``config.json``, an official checkpoint file,
            a :class:`~plip.models.PLIPModel` or an image tower (``ModifiedResNet`` / ``TimmVisionTower``).
        revision, cache_dir: as in :func:`plip.load`, for Hub sources.
    """
    towers = (ModifiedResNet, TimmVisionTower)
    if isinstance(spec, nn.Module) and isinstance(getattr(spec, "visual", None), towers):
        # a PLIPModel (or anything holding a PLIP image tower as .visual)
        preprocess = spec.config.preprocess if hasattr(spec, "config") else PreprocessConfig(
            image_size=tuple(spec.visual.config.image_size))
        return _from_module(spec.visual, preprocess, getattr(spec, "name_or_path", None) or type(spec).__name__)
    if isinstance(spec, towers):
        preprocess = PreprocessConfig(image_size=tuple(spec.config.image_size))
        return _from_module(spec, preprocess, type(spec).__name__)
    if not isinstance(spec, (str, os.PathLike)):
        raise ModelNotFoundError(
            f"cannot load backbone weights from a {type(spec).__name__}: pass a model name, "
            f"a path, or a PLIPModel"
        )
    return _from_path_or_name(os.fspath(spec), revision=revision, cache_dir=cache_dir)


def _from_module(visual, preprocess: PreprocessConfig, source: str) -> VisualWeights:
    state = {k: v.detach().to("cpu", torch.float32).clone() for k, v in visual.state_dict().items()}
    return VisualWeights(copy.deepcopy(visual.config), copy.deepcopy(preprocess), state, source)


def _from_path_or_name(spec: str, *, revision: str | None, cache_dir) -> VisualWeights:
    source = resolve_source(spec, revision=revision, cache_dir=cache_dir)
    if source.kind == "official":
        return _from_official(source.path)
    return _from_folder(source.path, label=source.name or spec, weights=source.weights)


def _from_folder(folder: Path, label: str, weights: Path | None = None) -> VisualWeights:
    folder = Path(folder)
    if not (folder / CONFIG_NAME).is_file():
        raise ModelNotFoundError(f"{folder}: not a plip model folder (missing {CONFIG_NAME})")
    config = PLIPConfig.load(folder / CONFIG_NAME)
    weights = weights or folder / WEIGHTS_NAME
    if not weights.is_file():
        raise ModelNotFoundError(f"{folder}: not a plip model folder (missing {WEIGHTS_NAME})")
    state: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(weights), framework="pt", device="cpu") as handle:
            for key in handle.keys():
                if key.startswith(VISUAL_PREFIX):
                    state[key[len(VISUAL_PREFIX):]] = handle.get_tensor(key)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{weights}: unreadable safetensors file ({err})") from None
    if not state:
        raise CheckpointError(f"{weights}: holds no image-encoder tensors (no '{VISUAL_PREFIX}*' keys)")
    return VisualWeights(config.vision, config.preprocess, state, label)


def _from_official(path: Path) -> VisualWeights:
    image, text = read_official_checkpoint(path)
    # only the image tower is used: BERT's heads and pooling cannot matter here
    config = infer_config(image, text, str(path), text_heads=1, pooling="pooler")
    return VisualWeights(config.vision, config.preprocess, image, str(path))
