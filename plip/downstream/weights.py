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

from ..errors import CheckpointError, ModelNotFoundError
from ..models.config import PLIPConfig, PreprocessConfig, VisionConfig

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
            a :class:`~plip.models.PLIPModel` or a :class:`~plip.models.ModifiedResNet`.
        revision, cache_dir: as in :func:`plip.load`, for Hub sources.
    """
    from ..models.modified_resnet import ModifiedResNet
    from ..models.plip_model import PLIPModel

    if isinstance(spec, PLIPModel):
        return _from_module(spec.visual, spec.config.preprocess, spec.name_or_path or "PLIPModel")
    if isinstance(spec, ModifiedResNet):
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
    from ..hub.loading import HUB_PREFIX, download_from_hub
    from ..hub.official import is_official_checkpoint_path
    from ..hub.pretrained import CONFIG_NAME
    from ..hub.registry import MODELS

    if spec.startswith(HUB_PREFIX):
        repo, _, rev = spec[len(HUB_PREFIX):].partition("@")
        folder = download_from_hub(repo, revision or rev or "main", cache_dir=cache_dir)
        return _from_folder(folder, label=spec)
    if spec in MODELS:
        entry = MODELS[spec]
        if entry.embedded:
            from importlib import resources

            return _from_folder(Path(str(resources.files("plip").joinpath(entry.embedded))), label=spec)
        try:
            folder = download_from_hub(entry.hub_repo, revision or entry.revision, cache_dir=cache_dir)
        except ModelNotFoundError as err:
            hint = ""
            if entry.official_source:
                hint = (
                    f" The original weights are {entry.official_source}; pass that file's path "
                    f"instead of {spec!r}."
                )
            raise ModelNotFoundError(f"{err}.{hint}") from None
        return _from_folder(folder, label=spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        return _from_folder(path, label=str(path))
    if path.is_file():
        if path.suffix == ".safetensors" and (path.parent / CONFIG_NAME).is_file():
            return _from_folder(path.parent, label=str(path), weights=path)
        return _from_official(path)
    if is_official_checkpoint_path(spec) or os.sep in spec or spec.startswith("."):
        raise ModelNotFoundError(f"{spec}: no such file or folder")
    known = ", ".join(sorted(MODELS))
    raise ModelNotFoundError(
        f"unknown model {spec!r}: not a registered name ({known}), an 'hf-hub:org/repo' "
        f"reference, a model folder or a checkpoint file"
    )


def _from_folder(folder: Path, label: str, weights: Path | None = None) -> VisualWeights:
    from safetensors import SafetensorError, safe_open

    from ..hub.pretrained import CONFIG_NAME, WEIGHTS_NAME

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
    from ..hub.official import infer_config, read_official_checkpoint

    image, text = read_official_checkpoint(path)
    config = infer_config(image, text, str(path))
    return VisualWeights(config.vision, config.preprocess, image, str(path))
