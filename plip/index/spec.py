"""What an index remembers about the model that filled it: name, config, preprocessing and a
fingerprint of the weights, so that a search with another model is refused."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..inference.fingerprint import model_fingerprint
from .errors import ModelMismatchError


def model_spec(model: Any) -> dict[str, Any]:
    """A JSON-able description of ``model`` (a :class:`plip.PLIPModel`) for an index manifest."""
    preprocess = getattr(model.preprocess, "config", None)
    return {
        "name": str(model.name_or_path or ""),
        "embed_dim": int(model.embed_dim),
        "fingerprint": model_fingerprint(model),
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
    mine = model_fingerprint(model)
    if mine != stored["fingerprint"]:
        raise ModelMismatchError(
            f"{where}: built with model {stored.get('name')!r} (weights {stored['fingerprint'][:12]}, "
            f"{stored.get('dtype')}), but this model is {model.name_or_path or '(unnamed)'!r} (weights {mine[:12]}, "
            f"{str(model.dtype).replace('torch.', '')}); use the model the index was built with"
        )
