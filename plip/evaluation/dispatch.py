"""Which evaluation a ``(model, dataset)`` pair gets, for ``plip eval``.

The dataset name picks the task, as the dataset registry (:mod:`plip.data.datasets`) records
it at the reader's definition: a text-based person search benchmark (CUHK-PEDES, ...),
an image ReID benchmark (Market-1501, DukeMTMC-reID, MSMT17) or an attribute benchmark
(PA-100K, PETA, RAP). The model reference must be of a kind that task can evaluate: a PLIP
model (registry name, hub id, PLIP folder, official checkpoint) for text retrieval, a BoT or
MGN folder (``plip train bot|mgn``) for image ReID, an attribute-recognizer folder
(``plip train par``) for attributes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..data.datasets.registry import ATTRIBUTES, IMAGE_REID, TASKS, TEXT_RETRIEVAL, find_dataset, list_datasets
from ..errors import ConfigError, DataError

__all__ = ["TEXT_RETRIEVAL", "IMAGE_REID", "ATTRIBUTES", "TASK_TITLES", "dataset_task", "model_kind", "check_model_fits"]

TASK_TITLES = {TEXT_RETRIEVAL: "text-based person retrieval", IMAGE_REID: "image ReID", ATTRIBUTES: "attribute recognition"}

# Model kinds (a downstream folder's ``model_type``, or "plip") each task can evaluate.
_KINDS_FOR_TASK = {TEXT_RETRIEVAL: ("plip",), IMAGE_REID: ("bot", "mgn"), ATTRIBUTES: ("attribute_recognizer",)}
_KIND_LABELS = {"plip": "PLIP", "bot": "BoT", "mgn": "MGN", "attribute_recognizer": "attribute-recognizer"}
_TASK_HINTS = {
    TEXT_RETRIEVAL: "needs a PLIP model",
    IMAGE_REID: "needs a BoT or MGN folder from `plip train bot|mgn`",
    ATTRIBUTES: "needs a folder from `plip train par`",
}


def _dataset_names() -> dict[str, tuple[str, ...]]:
    return {task: tuple(list_datasets(task)) for task in TASKS}


def dataset_task(name: str) -> tuple[str, str]:
    """``(task, canonical dataset name)`` of dataset ``name`` (from the dataset registry);
    :class:`DataError` if unknown."""
    spec = find_dataset(name)
    if spec is None:
        known = "; ".join(f"{TASK_TITLES[t]}: {', '.join(names)}" for t, names in _dataset_names().items())
        raise DataError(f"unknown dataset {name!r}; known: {known}")
    return spec.task, spec.name


def model_kind(model: str | os.PathLike) -> str:
    """``"bot"``, ``"mgn"`` or ``"attribute_recognizer"`` for a downstream model folder (its
    ``config.json`` ``model_type``), else ``"plip"`` (anything :func:`plip.load` takes)."""
    config = Path(model) / "config.json"
    if not config.is_file():
        return "plip"
    try:
        kind = json.loads(config.read_text(encoding="utf-8")).get("model_type", "plip")
    except (json.JSONDecodeError, AttributeError, OSError):
        return "plip"  # let the loader report what is wrong with the file
    return kind if isinstance(kind, str) else "plip"


def check_model_fits(model: str | os.PathLike, task: str, dataset: str) -> str:
    """The model's kind, after checking that ``task`` can evaluate it; a one-line
    :class:`ConfigError` naming both the model and the dataset otherwise."""
    kind = model_kind(model)
    if kind in _KINDS_FOR_TASK[task]:
        return kind
    fitting = next((t for t, kinds in _KINDS_FOR_TASK.items() if kind in kinds), None)
    if fitting is None:
        raise ConfigError(f"--model {model}: model_type {kind!r} cannot be evaluated on --dataset {dataset} ({TASK_TITLES[task]})")
    raise ConfigError(
        f"--model {model} (a {_KIND_LABELS.get(kind, kind)} model, for {TASK_TITLES[fitting]}) cannot be evaluated on "
        f"--dataset {dataset} ({TASK_TITLES[task]}, {_TASK_HINTS[task]}); its datasets: {', '.join(_dataset_names()[fitting])}"
    )
