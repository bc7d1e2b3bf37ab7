"""One registry of every dataset plip reads, and the path rules all readers share.

Readers register themselves where they are defined, with :func:`register_dataset`
(timm's ``register_model`` style)::

    @register_dataset("market1501", task=IMAGE_REID, aliases=("market",), title="Market-1501")
    def read_market1501(root, *, allow_outside_root=False): ...

:func:`get_dataset` finds a dataset by any spelling of its name or aliases (one
normaliser, :func:`normalize_name`), :func:`list_datasets` lists them per task, and
``plip eval`` picks the evaluation from the dataset's ``task``. Adding a dataset touches
one file: the reader's module (see :data:`registry.READER_MODULES` for the modules read).
"""

from .paths import PathGuard
from .registry import (
    ATTRIBUTES,
    IMAGE_REID,
    TASKS,
    TEXT_RETRIEVAL,
    DatasetSpec,
    find_dataset,
    get_dataset,
    list_datasets,
    normalize_name,
    register_dataset,
)

__all__ = [
    "ATTRIBUTES",
    "IMAGE_REID",
    "TASKS",
    "TEXT_RETRIEVAL",
    "DatasetSpec",
    "PathGuard",
    "find_dataset",
    "get_dataset",
    "list_datasets",
    "normalize_name",
    "register_dataset",
]
