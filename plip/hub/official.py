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

from ..errors import CheckpointError, ConfigError
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


def infer_config(
    image: Mapping[str, torch.Tensor],
    text: Mapping[str, torch.Tensor],
    path: str = "checkpoint",
    *,
    vision_heads: int | None = None,
    text_heads: int | None = None,
    pooling: str | None = None,
) -> PLIPConfig:
    """Infer the architecture of an official-layout checkpoint from evidence in it.

    Sizes come from the tensor shapes. Shapes cannot tell the attention heads of the image
    pool or of BERT, nor the text pooling: those are taken from a registered architecture
    (:data:`plip.models.ARCHITECTURES`, e.g. ``rn50`` for ``PLIP_RN50.pth.tar``) whose
    every size equals the checkpoint's, or from the arguments. A checkpoint that matches no
    registered architecture needs all three arguments; without them a
    :class:`~plip.errors.CheckpointError` names the options. The input size follows the
    positional embedding, assuming the 2:1 (H:W) pedestrian aspect of PLIP.
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
    sizes = dict(layers=layers, width=width, output_dim=output_dim, vocab_size=vocab, hidden_size=hidden,
                 num_hidden_layers=n_layers, intermediate_size=intermediate, max_position_embeddings=max_pos,
                 type_vocab_size=type_vocab)
    known = _matching_architecture(sizes, image_size)
    chosen = {
        "vision_heads": vision_heads if vision_heads is not None else (known.vision.heads if known else None),
        "text_heads": text_heads if text_heads is not None else (known.text.num_attention_heads if known else None),
        "pooling": pooling if pooling is not None else (known.text.pooling if known else None),
    }
    missing = [name for name, value in chosen.items() if value is None]
    if missing:
        channels = width * 32
        raise CheckpointError(
            f"{path}: its shapes match no registered architecture, and shapes cannot tell "
            f"{', '.join(missing)}. Give them: vision_heads (the image attention pool's heads: a divisor of "
            f"{channels}, PLIP-RN50 uses 8), text_heads (BERT's heads: a divisor of {hidden}, bert-base uses "
            f"hidden/64 = {max(1, hidden // 64)}), pooling ('pooler' = BERT's pooler output, the released PLIP, or "
            "'mean'); e.g. `plip convert CKPT OUT --vision-heads 8 --text-heads 12 --pooling pooler`, "
            "or a full config (plip convert --config, plip.load(path, config=...))"
        )
    config = PLIPConfig(
        vision=VisionConfig(layers=layers, width=width, heads=int(chosen["vision_heads"]), image_size=image_size,
                            output_dim=output_dim),
        text=TextConfig(
            vocab_size=vocab, hidden_size=hidden, num_hidden_layers=n_layers,
            num_attention_heads=int(chosen["text_heads"]), intermediate_size=intermediate,
            max_position_embeddings=max_pos, type_vocab_size=type_vocab, pooling=str(chosen["pooling"]),
        ),
    )
    config.preprocess.image_size = image_size
    try:
        return config.validate()
    except ConfigError as err:
        raise CheckpointError(f"{path}: {err}") from None


def _matching_architecture(sizes: dict, image_size: tuple[int, int]) -> PLIPConfig | None:
    """The config of the registered architecture whose every size equals ``sizes`` (heads and
    pooling then come from it), or ``None``; several matches must agree on heads and pooling."""
    from ..models.config import ARCHITECTURES

    found: list[PLIPConfig] = []
    for arch in ARCHITECTURES.values():
        try:
            candidate = arch.config(image_size=image_size, dim=sizes["output_dim"])
        except ConfigError:
            continue
        v, t = candidate.vision, candidate.text
        have = dict(layers=tuple(v.layers), width=v.width, output_dim=v.output_dim, vocab_size=t.vocab_size,
                    hidden_size=t.hidden_size, num_hidden_layers=t.num_hidden_layers,
                    intermediate_size=t.intermediate_size, max_position_embeddings=t.max_position_embeddings,
                    type_vocab_size=t.type_vocab_size)
        if have == sizes and v.last_stride == 2:
            found.append(candidate)
    keys = {(c.vision.heads, c.text.num_attention_heads, c.text.pooling) for c in found}
    return found[0] if len(keys) == 1 else None


def is_official_checkpoint_path(path: str | os.PathLike) -> bool:
    return os.fspath(path).lower().endswith(OFFICIAL_SUFFIXES)
