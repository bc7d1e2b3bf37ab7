"""Reading the official PLIP checkpoint (``PLIP_RN50.pth.tar``) unchanged.

The file is a torch pickle holding ``ImgEncoder_state_dict`` (the Modified ResNet, keys
``conv1.weight`` ... ``attnpool.c_proj.bias``) and ``TxtEncoder_state_dict`` (``encoder.*``: a
``transformers.BertModel``). It is read with ``torch.load(weights_only=True)`` only: a file
that needs arbitrary code to unpickle is refused, never executed. Tolerated differences:
``module.`` prefixes (DataParallel / DDP) and BERT's ``embeddings.position_ids`` buffer
(saved by older transformers). Everything else must match exactly.
"""

from __future__ import annotations

import math
import os
import pickle
from typing import Mapping

import torch

from ..errors import CheckpointError
from ..models.config import PLIPConfig, TextConfig, VisionConfig

IMAGE_ENTRY = "ImgEncoder_state_dict"
TEXT_ENTRY = "TxtEncoder_state_dict"
OFFICIAL_SUFFIXES = (".pth.tar", ".pth", ".pt", ".tar", ".bin", ".ckpt")


def read_official_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Return the (image, text) state dicts of an official checkpoint, cleaned of tolerated extras."""
    path = os.fspath(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found") from None
    except pickle.UnpicklingError as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path}: refused to unpickle: the file needs more than tensors and plain containers "
            f"(weights_only=True rejected it: {first_line}). Only load checkpoints you trust, and "
            f"convert them to safetensors with a trusted tool."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({err})") from None
    if not isinstance(payload, Mapping) or IMAGE_ENTRY not in payload or TEXT_ENTRY not in payload:
        found = sorted(payload)[:8] if isinstance(payload, Mapping) else type(payload).__name__
        raise CheckpointError(
            f"{path}: not an official PLIP checkpoint: expected entries {IMAGE_ENTRY!r} and "
            f"{TEXT_ENTRY!r}, found {found}"
        )
    image = _clean(payload[IMAGE_ENTRY], path, IMAGE_ENTRY)
    text = _clean(payload[TEXT_ENTRY], path, TEXT_ENTRY)
    return image, text


def _clean(state: object, path: str, entry: str) -> dict[str, torch.Tensor]:
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: {entry} is a {type(state).__name__}, expected a state dict")
    cleaned: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: {entry}[{key!r}] is not a tensor")
        while key.startswith("module."):
            key = key[len("module."):]
        if key.endswith("embeddings.position_ids"):
            continue
        cleaned[key] = value
    return cleaned


def infer_config(image: Mapping[str, torch.Tensor], text: Mapping[str, torch.Tensor], path: str = "checkpoint") -> PLIPConfig:
    """Infer the architecture from tensor shapes.

    Shapes cannot tell the number of attention heads: the image pool uses 8 (PLIP-RN50) and
    BERT uses hidden/64 (bert-base). The input size follows the positional embedding, assuming
    the 2:1 (H:W) pedestrian aspect of PLIP. Pass an explicit config for anything else.
    """
    try:
        width = int(image["conv3.weight"].shape[0])
        layers = tuple(
            1 + max(int(k.split(".")[1]) for k in image if k.startswith(f"layer{i}.")) for i in range(1, 5)
        )
        tokens = int(image["attnpool.positional_embedding"].shape[0]) - 1
        output_dim = int(image["attnpool.c_proj.weight"].shape[0])
        vocab, hidden = (int(s) for s in text["encoder.embeddings.word_embeddings.weight"].shape)
        max_pos = int(text["encoder.embeddings.position_embeddings.weight"].shape[0])
        type_vocab = int(text["encoder.embeddings.token_type_embeddings.weight"].shape[0])
        n_layers = 1 + max(int(k.split(".")[3]) for k in text if k.startswith("encoder.encoder.layer."))
        intermediate = int(text["encoder.encoder.layer.0.intermediate.dense.weight"].shape[0])
    except (KeyError, ValueError, IndexError) as err:
        raise CheckpointError(f"{path}: cannot infer the architecture (missing or odd key {err})") from None
    grid_w = math.isqrt(tokens // 2)
    if 2 * grid_w * grid_w != tokens:
        raise CheckpointError(
            f"{path}: attention-pool grid of {tokens} positions is not 2:1; pass a config with vision.image_size"
        )
    image_size = (grid_w * 2 * 32, grid_w * 32)
    heads = 8  # PLIP's attention pool; not recoverable from shapes
    config = PLIPConfig(
        vision=VisionConfig(layers=layers, width=width, heads=heads, image_size=image_size, output_dim=output_dim),
        text=TextConfig(
            vocab_size=vocab, hidden_size=hidden, num_hidden_layers=n_layers,
            num_attention_heads=max(1, hidden // 64), intermediate_size=intermediate,
            max_position_embeddings=max_pos, type_vocab_size=type_vocab,
        ),
    )
    config.preprocess.image_size = image_size
    return config.validate()


def is_official_checkpoint_path(path: str | os.PathLike) -> bool:
    return os.fspath(path).lower().endswith(OFFICIAL_SUFFIXES)
