"""One fingerprint of a model's computation, shared by every file that records which model
made its embeddings (the evaluation cache, ``plip encode`` shards and outputs, ``plip index``)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch

__all__ = ["model_fingerprint"]


def model_fingerprint(model: Any) -> str:
    """Hex digest identifying a model's computation: weights, config, preprocessing, tokenizer.

    Two models with equal fingerprints produce the same embeddings (on the same device and
    dtype, which the cache key adds separately). Hashes every parameter and buffer, so it
    follows a model through training.
    """
    digest = hashlib.blake2b(digest_size=20)
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        digest.update(json.dumps(config.to_dict(), sort_keys=True, default=str).encode())
    digest.update(repr(getattr(model, "preprocess", None)).encode())
    tokenizer = getattr(model, "tokenizer", None)
    digest.update(f"{type(tokenizer).__name__}:{getattr(tokenizer, 'max_length', None)}:{getattr(tokenizer, 'vocab_size', None)}".encode())
    state = model.state_dict() if hasattr(model, "state_dict") else {}
    for name in sorted(state):
        tensor = state[name].detach()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
