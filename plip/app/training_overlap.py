"""Warn when a model is evaluated on persons it was trained on.

A model folder may carry ``training_data.json`` (the embedded ``plip-tiny-synth`` does):
the synthetic generator, its seed and the person ids used for training and validation.
The generator draws person ``i`` of seed ``s`` from its own random stream, so a gallery
generated with the same seed holds the same persons under the same ids, whatever its size:
evaluating on them inflates the metrics (R@1 95 instead of 82 in one case).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..data.synthetic import INFO_JSON
from ..hub.registry import MODELS, embedded_folder

TRAINING_DATA = "training_data.json"


def _model_folder(model: Any) -> Path | None:
    name = getattr(model, "name_or_path", None)
    if not name:
        return None
    if name in MODELS and MODELS[name].embedded:
        return embedded_folder(name)
    path = Path(str(name))
    return path if path.is_dir() else None


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def training_overlap(model: Any, split: Any) -> str | None:
    """A one-line warning when ``split`` (a :class:`~plip.data.textreid.TextReIDSplit`) holds
    persons ``model`` was trained or validated on, else ``None``."""
    folder = _model_folder(model)
    record = _read(folder / TRAINING_DATA) if folder is not None else None
    info = _read(Path(split.annotation_file).parent / INFO_JSON)
    if not record or not info or info.get("generator") != record.get("generator"):
        return None
    if info.get("seed") != record.get("seed"):
        return None
    ids = {int(sample.person_id) for sample in split.samples}
    seen = set()
    for key in ("train_ids", "val_ids"):
        low, high = record.get(key) or (0, -1)
        seen |= {i for i in ids if low <= i <= high}
    if not seen:
        return None
    name = getattr(model, "name_or_path", "the model")
    return (
        f"{len(seen)} of the {len(ids)} persons of this split were in {name}'s training or validation data "
        f"(generated with the same seed {record['seed']}: {record.get('command', '')}), so the metrics are "
        "inflated; generate the gallery with another seed (plip demo uses 2026)"
    )
