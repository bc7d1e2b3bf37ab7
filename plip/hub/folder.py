"""Our own model format: a folder in the Hugging Face Hub layout.

``config.json`` (:class:`~plip.models.PLIPConfig`), ``model.safetensors`` (keys ``visual.*`` and
``text.*``), the tokenizer files (``vocab.txt`` ...) and a ``README.md`` model card. This module
reads and writes the files (configs, tensors, tokenizer); :mod:`plip.inference.factory` builds
the model from them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError, ModelNotFoundError
from ..models.config import PLIPConfig
from ..tokenizer import PLIPTokenizer
from ..utils.io import atomic_path, atomic_write_text

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MODEL_CARD_NAME = "README.md"
REQUIRED_FILES = (CONFIG_NAME, WEIGHTS_NAME)


@dataclass
class FolderContents:
    """What a model folder holds: its config, its tensors (``visual.*`` / ``text.*``) and tokenizer."""

    config: PLIPConfig
    state_dict: dict[str, torch.Tensor]
    tokenizer: PLIPTokenizer
    weights_path: Path


def write_folder(
    directory: str | os.PathLike,
    config: PLIPConfig,
    state_dict: Mapping[str, torch.Tensor],
    tokenizer: PLIPTokenizer,
    *,
    model_card: str | None = None,
    default_card: Callable[[], str] | None = None,
) -> None:
    """Write a model folder (created if needed); each file is written atomically.

    An existing ``README.md`` is kept unless ``model_card`` is given; otherwise
    ``default_card()`` writes one.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().cpu().contiguous() for key, value in state_dict.items()}
    with atomic_path(directory / WEIGHTS_NAME) as tmp:
        save_file(state, tmp, metadata={"format": "pt", "plip_model_type": "plip"})
    tokenizer.save_pretrained(directory)
    config.save(directory / CONFIG_NAME)
    if model_card is None and (directory / MODEL_CARD_NAME).exists():
        return
    if model_card is None and default_card is None:
        return
    atomic_write_text(directory / MODEL_CARD_NAME, model_card or default_card())


def read_folder(directory: str | os.PathLike) -> FolderContents:
    """Read a folder written by :func:`write_folder` (config, every tensor, tokenizer)."""
    directory = Path(directory)
    missing = [name for name in REQUIRED_FILES if not (directory / name).is_file()]
    if missing:
        raise ModelNotFoundError(f"{directory}: not a plip model folder (missing {', '.join(missing)})")
    config = PLIPConfig.load(directory / CONFIG_NAME)
    tokenizer = PLIPTokenizer.from_pretrained(directory, max_length=config.text.max_length)
    weights = directory / WEIGHTS_NAME
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{weights}: unreadable safetensors file ({err})") from None
    return FolderContents(config, state, tokenizer, weights)


def _describe_vision(vision) -> str:
    head = {"attention": f"attention pool with {vision.heads} heads", "max": "max-pool + linear",
            "avg": "average pool + linear", "token": "class token + linear"}[vision.pool]
    if vision.kind == "timm":
        return f"timm `{vision.timm.model_name}` ({head})"
    return f"Modified ResNet (layers {list(vision.layers)}, width {vision.width}, {head})"


def default_model_card(config: PLIPConfig, num_parameters: int) -> str:
    cfg = config
    params = num_parameters
    return f"""---
library_name: plip-person
license: mit
tags: [person-reid, text-based-person-search, plip]
---
# PLIP person encoder

Image encoder: {_describe_vision(cfg.vision)}, input {cfg.vision.image_size[0]}x{cfg.vision.image_size[1]}.
Text encoder: BERT ({cfg.text.num_hidden_layers} layers, hidden {cfg.text.hidden_size}), pooling `{cfg.text.pooling}`,
max {cfg.text.max_length} tokens. Embedding size {cfg.embed_dim}; {params / 1e6:.1f}M parameters.

```python
import plip
model = plip.load("path/or/hf-hub:org/repo")
gallery = model.encode_image(["a.jpg", "b.jpg"])
hits = model.retrieve("a woman in a red coat with a black bag", gallery=gallery, top_k=5)
```

Reference: Zuo et al., "PLIP: Language-Image Pre-training for Person Representation Learning", NeurIPS 2024.
"""
