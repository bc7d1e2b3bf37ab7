"""What an index remembers about the model that filled it: name, config, preprocessing and a
fingerprint of the weights, so that a search with another model is refused."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import torch

from .errors import ModelMismatchError


def weights_fingerprint(model: torch.nn.Module) -> str:
    """BLAKE2b of every state-dict tensor (sorted by name, floats as float32, on the CPU).

    Independent of the device the model runs on; a different dtype (bfloat16 weights) or any
    fine-tuning step gives another fingerprint, because the embeddings differ too.
    """
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().cpu()
        if value.is_floating_point():
            value = value.float()
        digest.update(name.encode())
        digest.update(str(tuple(value.shape)).encode())
        digest.update(memoryview(value.contiguous().numpy()).cast("B"))
    return digest.hexdigest()


def model_spec(model: Any) -> dict[str, Any]:
    """A JSON-able description of ``model`` (a :class:`plip.PLIPModel`) for an index manifest."""
    preprocess = getattr(model.preprocess, "config", None)
    return {
        "name": str(model.name_or_path or ""),
        "embed_dim": int(model.embed_dim),
        "fingerprint": weights_fingerprint(model),
        "dtype": str(model.dtype).replace("torch.", ""),
        "config": model.config.to_dict(),
        "preprocess": dataclasses.asdict(preprocess) if dataclasses.is_dataclass(preprocess) else repr(model.preprocess),
    }


def check_model(stored: dict[str, Any] | None, model: Any, where: str, dim: int) -> None:
    """Raise :class:`ModelMismatchError` unless ``model`` is the model the index was built with.

    An index built from bare embeddings (no stored fingerprint) only checks the dimension.
    """
    if model.embed_dim != dim:
        raise ModelMismatchError(
            f"{where}: the index holds {dim}-d embeddings, model {model.name_or_path or '(unnamed)'!r} makes "
            f"{model.embed_dim}-d ones (built with {(stored or {}).get('name') or 'an unknown model'})"
        )
    if not stored or not stored.get("fingerprint"):
        return
    mine = weights_fingerprint(model)
    if mine != stored["fingerprint"]:
        raise ModelMismatchError(
            f"{where}: built with model {stored.get('name')!r} (weights {stored['fingerprint'][:12]}, "
            f"{stored.get('dtype')}), but this model is {model.name_or_path or '(unnamed)'!r} (weights {mine[:12]}, "
            f"{str(model.dtype).replace('torch.', '')}); use the model the index was built with"
        )
