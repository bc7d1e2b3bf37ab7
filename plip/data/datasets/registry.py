"""The dataset registry: name -> task, reader and aliases, filled by decorators at the readers."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from ...errors import DataError

__all__ = [
    "TEXT_RETRIEVAL",
    "IMAGE_REID",
    "ATTRIBUTES",
    "TASKS",
    "READER_MODULES",
    "DatasetSpec",
    "normalize_name",
    "register_dataset",
    "find_dataset",
    "get_dataset",
    "list_datasets",
    "specs",
]

TEXT_RETRIEVAL = "text_retrieval"
IMAGE_REID = "image_reid"
ATTRIBUTES = "attributes"
TASKS = (TEXT_RETRIEVAL, IMAGE_REID, ATTRIBUTES)

# The modules whose readers register themselves; imported on the first look-up.
READER_MODULES = ("plip.data.textreid", "plip.data.image_reid", "plip.data.attributes")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class DatasetSpec:
    """One registered dataset.

    Attributes:
        name: the canonical name (``"cuhk-pedes"``, ``"market1501"``, ``"pa100k"``).
        task: :data:`TEXT_RETRIEVAL`, :data:`IMAGE_REID` or :data:`ATTRIBUTES`.
        load: ``load(root, **options)`` -> the task's split object; every reader takes
            ``allow_outside_root`` (text readers also ``split``).
        aliases: other accepted names.
        title: the dataset's own spelling (``"CUHK-PEDES"``).
        description: one line (source, size).
    """

    name: str
    task: str
    load: Callable[..., Any]
    aliases: tuple[str, ...] = ()
    title: str = ""
    description: str = ""

    @property
    def keys(self) -> tuple[str, ...]:
        """Every normalised spelling this dataset answers to."""
        return tuple(dict.fromkeys(normalize_name(n) for n in (self.name, self.title, *self.aliases) if n))


_REGISTRY: dict[str, DatasetSpec] = {}  # canonical name -> spec, in registration order
_KEYS: dict[str, str] = {}  # normalised name or alias -> canonical name
_loaded = False


def normalize_name(name: str) -> str:
    """The one spelling rule for dataset names: case, dashes, underscores, dots and spaces
    are ignored (``"CUHK_PEDES"``, ``"cuhk-pedes"`` and ``"cuhkpedes"`` are one name)."""
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


def register_dataset(
    name: str,
    *,
    task: str,
    aliases: tuple[str, ...] = (),
    title: str = "",
    description: str = "",
    load: Callable[..., Any] | None = None,
) -> Callable[[F], F]:
    """Decorator registering a reader (or, with ``load=``, the function it decorates is
    returned unchanged and ``load`` is what the registry calls).

    Raises:
        DataError: unknown task, or a name / alias already taken by another dataset.
    """
    if task not in TASKS:
        raise DataError(f"dataset {name!r}: task must be one of {', '.join(TASKS)}, got {task!r}")

    def decorate(function: F) -> F:
        spec = DatasetSpec(name, task, load or function, tuple(aliases), title or name, description)
        taken = {key: _KEYS[key] for key in spec.keys if key in _KEYS and _KEYS[key] != name}
        if taken:
            key, other = next(iter(taken.items()))
            raise DataError(f"dataset {name!r}: name or alias {key!r} is already registered by {other!r}")
        _REGISTRY[name] = spec
        for key in spec.keys:
            _KEYS[key] = name
        return function

    return decorate


def _load_readers() -> None:
    global _loaded
    if not _loaded:
        for module in READER_MODULES:
            importlib.import_module(module)
        _loaded = True


def find_dataset(name: str, task: str | None = None) -> DatasetSpec | None:
    """The dataset ``name`` means (any spelling, any alias), or ``None``; with ``task``, only
    a dataset of that task."""
    _load_readers()
    canonical = _KEYS.get(normalize_name(name))
    spec = _REGISTRY.get(canonical) if canonical else None
    if spec is None or (task is not None and spec.task != task):
        return None
    return spec


def list_datasets(task: str | None = None) -> list[str]:
    """Canonical names, in registration order (of one task if given)."""
    _load_readers()
    return [n for n, s in _REGISTRY.items() if task is None or s.task == task]


def get_dataset(name: str, task: str | None = None) -> DatasetSpec:
    """Like :func:`find_dataset`, but an unknown name is a :class:`DataError` listing the known ones."""
    spec = find_dataset(name, task)
    if spec is None:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(list_datasets(task))}")
    return spec


def specs(task: str | None = None, *, load_all: bool = True) -> list[DatasetSpec]:
    """The registered specs (of ``task``); ``load_all=False`` lists only those registered so
    far (for a reader module describing its own datasets while it is imported)."""
    if load_all:
        _load_readers()
    return [s for s in _REGISTRY.values() if task is None or s.task == task]
