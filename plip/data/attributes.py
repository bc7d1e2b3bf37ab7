"""Readers for the pedestrian attribute benchmarks PA-100K, PETA, RAPv1 and RAPv2.

Two sources are understood:

- the annotation files the datasets are distributed with, read with
  :func:`scipy.io.loadmat` the way the Rethinking-of-PAR / strong-baseline
  preprocessing scripts read them (``dataset/pedes_attr/preprocess/format_*.py`` in
  valencebond/Rethinking_of_PAR):

  - PA-100K: ``root/annotation.mat``, images in ``root/data/``;
  - PETA: ``root/PETA.mat``, images ``root/images/00001.png``...;
  - RAPv1 and RAPv2: ``root/RAP_annotation/RAP_annotation.mat``, images in
    ``root/RAP_dataset/``.

- the pickled partition files those scripts write (``dataset_all.pkl``,
  ``dataset.pkl``, ``dataset_zs_run0.pkl``), read by :func:`read_partition_pickle`
  without unpickling arbitrary objects (:mod:`plip.data.safe_pickle`).

Every reader returns an :class:`AttributeDataset` holding the evaluated attributes
(PA-100K 26, PETA 35, RAPv1 51, RAPv2 54; names in
:mod:`plip.data.attribute_names`), labels in {0, 1} and the split indices. As
Rethinking-of-PAR does, a label 2 (RAP's "uncertain") is read as 0.

Every image name must resolve (symlinks included) inside the dataset root (for a pickle,
inside its image folder); otherwise :class:`~plip.errors.DataError` names the annotation
file, the image index and the path (``allow_outside_root=True`` permits it). The readers
register themselves in :mod:`plip.data.datasets` (task ``attributes``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .datasets.paths import PathGuard
from .datasets.registry import ATTRIBUTES, find_dataset, register_dataset, specs
from .safe_pickle import load_data_pickle

__all__ = [
    "AttributeDataset",
    "read_pa100k",
    "read_peta",
    "read_rapv1",
    "read_rapv2",
    "read_partition_pickle",
    "read_attribute_dataset",
    "attribute_dataset_key",
    "ATTRIBUTE_DATASETS",
]


@dataclass(frozen=True)
class AttributeDataset:
    """Images, binary attribute labels and splits of an attribute benchmark.

    Attributes:
        name: ``"pa100k"``, ``"peta"``, ``"rapv1"`` or ``"rapv2"`` (or the pickle's
            ``description``).
        image_root: folder the image names are relative to.
        image_names: one name per image.
        labels: (num_images, num_attributes) uint8 array of 0/1.
        attribute_names: one name per label column.
        partitions: split name (``train``, ``val``, ``trainval``, ``test``; RAPv1 has
            only ``trainval`` and ``test``) -> int64 indices into ``image_names``.
    """

    name: str
    image_root: Path
    image_names: list[str]
    labels: np.ndarray
    attribute_names: list[str]
    partitions: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        num_images = len(self.image_names)
        if self.labels.ndim != 2 or self.labels.shape[0] != num_images:
            raise DataError(
                f"{self.name}: labels have shape {self.labels.shape}, expected ({num_images}, A)"
            )
        if self.labels.shape[1] != len(self.attribute_names):
            raise DataError(
                f"{self.name}: {self.labels.shape[1]} label columns but "
                f"{len(self.attribute_names)} attribute names"
            )
        for split, indices in self.partitions.items():
            if indices.size and (indices.min() < 0 or indices.max() >= num_images):
                raise DataError(
                    f"{self.name}: split {split!r} has image indices outside 0..{num_images - 1}"
                )

    @property
    def num_attributes(self) -> int:
        return len(self.attribute_names)

    def split(self, split: str) -> tuple[list[Path], np.ndarray]:
        """Image paths and (n, A) labels of one split."""
        if split not in self.partitions:
            raise DataError(
                f"{self.name} has no split {split!r}; it has {', '.join(self.partitions)}"
            )
        indices = self.partitions[split]
        paths = [self.image_root / self.image_names[i] for i in indices]
        return paths, self.labels[indices]

    def select(self, names: Sequence[str]) -> AttributeDataset:
        """The same dataset with label columns ``names``, in that order (e.g. to put a
        pickle's grouped order back into the order of :mod:`~plip.data.attribute_names`)."""
        index = {name: i for i, name in enumerate(self.attribute_names)}
        missing = [name for name in names if name not in index]
        if missing:
            raise DataError(f"{self.name} has no attribute(s) {', '.join(map(repr, missing))}")
        columns = [index[name] for name in names]
        return AttributeDataset(
            self.name, self.image_root, self.image_names, self.labels[:, columns],
            list(names), self.partitions,
        )  # fmt: skip

    def positive_ratio(self, split: str = "trainval") -> np.ndarray:
        """Fraction of positive labels per attribute on ``split`` (weights of the
        weighted BCE loss of the strong baseline)."""
        _, labels = self.split(split)
        return labels.astype(np.float64).mean(axis=0)


# --------------------------------------------------------------------------- .mat helpers


def _loadmat(path: Path) -> dict[str, Any]:
    from scipy.io import loadmat

    if not path.is_file():
        raise DataError(f"{path}: annotation file not found")
    try:
        return loadmat(str(path))
    except (ValueError, TypeError, OSError, NotImplementedError) as error:
        # Covers non-MAT files and MATLAB v7.3 (HDF5) files, which scipy cannot read.
        raise DataError(f"{path}: cannot read as a MATLAB file ({error})") from None


def _key(data: dict[str, Any], key: str, path: Path) -> Any:
    if key not in data:
        found = ", ".join(k for k in data if not k.startswith("__"))
        raise DataError(f"{path}: no variable {key!r} (found: {found or 'none'})")
    return data[key]


def _record(value: Any, what: str, path: Path) -> np.void:
    """The single record of a 1x1 MATLAB struct (possibly wrapped in 1x1 cells)."""
    array = np.asarray(value)
    while array.dtype == object and array.size == 1:
        array = np.asarray(array.reshape(-1)[0])
    if array.dtype.names is None or array.size != 1:
        raise DataError(f"{path}: {what} is not a 1x1 MATLAB struct (shape {array.shape})")
    return array.reshape(-1)[0]


def _field(record: np.void, names: Sequence[str], position: int, what: str, path: Path) -> Any:
    """A struct field by name, else by the position the reference scripts index it at."""
    fields = record.dtype.names or ()
    for name in names:
        if name in fields:
            return record[name]
    if position < len(fields):
        return record[position]
    raise DataError(
        f"{path}: {what} has no field {' or '.join(names)} (fields: {', '.join(fields)})"
    )


def _cells(value: Any) -> list[Any]:
    """The elements of a MATLAB cell array, flattened in MATLAB's order of listing."""
    array = np.asarray(value)
    if array.dtype != object:
        raise DataError(f"expected a cell array, got a {array.dtype} array")
    return list(array.reshape(-1, order="F"))


def _strings(value: Any, what: str, path: Path) -> list[str]:
    try:
        cells = _cells(value)
    except DataError:
        raise DataError(f"{path}: {what} is not a cell array of strings") from None
    out = []
    for i, cell in enumerate(cells):
        item = np.asarray(cell).reshape(-1)
        if item.size == 0:
            raise DataError(f"{path}: {what}[{i}] is empty")
        if item.dtype.kind != "U":
            raise DataError(f"{path}: {what}[{i}] is not a string ({item.dtype})")
        out.append(str(item[0]))
    return out


def _indices(value: Any, num_images: int, what: str, path: Path) -> np.ndarray:
    """1-based MATLAB image indices -> 0-based int64 indices, checked against num_images."""
    array = np.asarray(value)
    if array.dtype == object or array.dtype.kind not in "iuf":
        raise DataError(f"{path}: {what} is not a numeric index vector")
    flat = array.reshape(-1)
    indices = flat.astype(np.int64)
    if flat.dtype.kind == "f" and not np.array_equal(indices, flat):
        raise DataError(f"{path}: {what} holds non-integer image indices")
    indices = indices - 1
    if indices.size and (indices.min() < 0 or indices.max() >= num_images):
        raise DataError(
            f"{path}: {what} has image indices outside 1..{num_images} "
            f"(min {indices.min() + 1}, max {indices.max() + 1})"
        )
    return indices


def _binary_labels(value: Any, what: str, path: Path) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 2 or array.dtype.kind not in "iuf":
        raise DataError(f"{path}: {what} is not a numeric (images x attributes) matrix")
    labels = array.copy()
    labels[labels == 2] = 0  # RAP's "uncertain", read as negative like Rethinking-of-PAR
    bad = np.argwhere((labels != 0) & (labels != 1))
    if bad.size:
        row, col = bad[0]
        raise DataError(
            f"{path}: {what}[{row}, {col}] = {array[row, col].item()!r}; labels must be 0, 1 or 2"
        )
    return labels.astype(np.uint8)


def _pick_partition(partitions: list[Any], index: int, path: Path) -> Any:
    if not 0 <= index < len(partitions):
        raise DataError(
            f"{path}: partition {index} requested but the file has {len(partitions)} "
            f"(0..{len(partitions) - 1})"
        )
    return partitions[index]


def _check_names(names: list[str], expected_count: int, what: str, path: Path) -> None:
    if len(names) < expected_count:
        raise DataError(
            f"{path}: {what} has {len(names)} names, expected at least {expected_count}"
        )


def _checked(dataset: AttributeDataset, root: Path, annotation: Path, allow_outside_root: bool) -> AttributeDataset:
    """``dataset`` after checking that every image path resolves inside ``root``."""
    guard = PathGuard(root, annotation, allow_outside_root)
    if not guard.allow_outside_root:
        for i, name in enumerate(dataset.image_names):
            guard.check(dataset.image_root / name, f"image {i}", shown=name)
    return dataset


# --------------------------------------------------------------------------- .mat readers


@register_dataset("pa100k", task=ATTRIBUTES, aliases=("pa-100k",), title="PA-100K",
                  description="Liu et al., ICCV 2017: 100,000 images, 26 attributes.")
def read_pa100k(
    root: str | Path, *, annotation: str | Path | None = None, allow_outside_root: bool = False
) -> AttributeDataset:
    """Read PA-100K: ``root/annotation.mat`` (variables ``train_images_name``,
    ``val_images_name``, ``test_images_name``, ``train_label``, ``val_label``,
    ``test_label``, ``attributes``) and images in ``root/data``.

    Splits: ``train``, ``val``, ``test`` as released, ``trainval`` = train + val.
    """
    root = Path(root).expanduser()
    path = Path(annotation) if annotation is not None else root / "annotation.mat"
    data = _loadmat(path)
    names: list[str] = []
    labels = []
    partitions: dict[str, np.ndarray] = {}
    for split in ("train", "val", "test"):
        split_names = _strings(
            _key(data, f"{split}_images_name", path), f"{split}_images_name", path
        )
        split_labels = _binary_labels(_key(data, f"{split}_label", path), f"{split}_label", path)
        if split_labels.shape[0] != len(split_names):
            raise DataError(
                f"{path}: {split}_label has {split_labels.shape[0]} rows but "
                f"{split}_images_name has {len(split_names)} names"
            )
        partitions[split] = np.arange(len(names), len(names) + len(split_names), dtype=np.int64)
        names += split_names
        labels.append(split_labels)
    partitions["trainval"] = np.concatenate([partitions["train"], partitions["val"]])
    attribute_names = _strings(_key(data, "attributes", path), "attributes", path)
    label_matrix = np.concatenate(labels, axis=0)
    if label_matrix.shape[1] != len(attribute_names):
        raise DataError(
            f"{path}: labels have {label_matrix.shape[1]} columns but attributes has "
            f"{len(attribute_names)} names"
        )
    dataset = AttributeDataset("pa100k", root / "data", names, label_matrix, attribute_names, partitions)
    return _checked(dataset, root, path, allow_outside_root)


_PETA_META_COLUMNS = 4  # image index, global person id, source dataset, person id in source
_PETA_EVALUATED = 35


@register_dataset("peta", task=ATTRIBUTES, title="PETA",
                  description="Deng et al., ACM MM 2014: 19,000 images, 35 evaluated attributes.")
def read_peta(
    root: str | Path, *, partition: int = 0, annotation: str | Path | None = None,
    allow_outside_root: bool = False,
) -> AttributeDataset:
    """Read PETA: ``root/PETA.mat`` (struct ``peta`` with the (19000, 4 + 105) ``data``
    matrix, the 105 ``attribute`` names and 5 random ``partition`` entries of 1-based
    train/val/test indices) and images ``root/images/00001.png``….

    Only the 35 evaluated attributes (the first 35) are kept. ``partition`` picks one
    of the 5 random splits (Rethinking-of-PAR uses 0).
    """
    root = Path(root).expanduser()
    path = Path(annotation) if annotation is not None else root / "PETA.mat"
    record = _record(_key(_loadmat(path), "peta", path), "peta", path)
    matrix = np.asarray(_field(record, ("data",), 0, "peta", path))
    if matrix.ndim != 2 or matrix.shape[1] < _PETA_META_COLUMNS + _PETA_EVALUATED:
        raise DataError(f"{path}: peta.data has shape {matrix.shape}, expected (images, 4 + 105)")
    all_names = _strings(_field(record, ("attribute",), 1, "peta", path), "peta.attribute", path)
    _check_names(all_names, _PETA_EVALUATED, "peta.attribute", path)
    labels = _binary_labels(matrix[:, _PETA_META_COLUMNS:], "peta.data", path)[:, :_PETA_EVALUATED]
    num_images = matrix.shape[0]
    cells = _cells(_field(record, ("partition_attribute", "partition"), 3, "peta", path))
    split = _record(_pick_partition(cells, partition, path), f"peta partition {partition}", path)
    partitions = {
        name: _indices(_field(split, (f"{name}_index", name), i, "partition", path),
                       num_images, f"peta partition {partition} {name}", path)
        for i, name in enumerate(("train", "val", "test"))
    }  # fmt: skip
    partitions["trainval"] = np.concatenate([partitions["train"], partitions["val"]])
    image_names = [f"{i + 1:05d}.png" for i in range(num_images)]
    dataset = AttributeDataset("peta", root / "images", image_names, labels, all_names[:_PETA_EVALUATED], partitions)
    return _checked(dataset, root, path, allow_outside_root)


_RAPV1_EVALUATED = 51


def _rap_annotation(root: str | Path, annotation: str | Path | None) -> tuple[Path, Path, Any]:
    """(root, annotation path, ``RAP_annotation`` struct) shared by the RAP v1 and v2 readers."""
    root = Path(root).expanduser()
    path = Path(annotation) if annotation is not None else root / "RAP_annotation" / "RAP_annotation.mat"
    return root, path, _record(_key(_loadmat(path), "RAP_annotation", path), "RAP_annotation", path)


@register_dataset("rapv1", task=ATTRIBUTES, aliases=("rap", "rap1"), title="RAPv1",
                  description="Li et al., 2016: 41,585 images, 51 evaluated attributes.")
def read_rapv1(
    root: str | Path, *, partition: int = 0, annotation: str | Path | None = None,
    allow_outside_root: bool = False,
) -> AttributeDataset:
    """Read RAPv1: ``root/RAP_annotation/RAP_annotation.mat`` (struct ``RAP_annotation``
    with fields ``partion``, ``label`` (41585 x 92), ``attribute_chinese``,
    ``attribute_eng``, ``position``, ``imagesname``, ``attribute_exp``) and images in
    ``root/RAP_dataset``.

    The 51 evaluated attributes are the first 51 of ``attribute_eng``. ``partition``
    picks one of the 5 random ``trainval``/``test`` splits.
    """
    root, path, record = _rap_annotation(root, annotation)
    image_names = _strings(_field(record, ("imagesname",), 5, "RAP_annotation", path),
                           "RAP_annotation.imagesname", path)  # fmt: skip
    all_names = _strings(_field(record, ("attribute_eng",), 3, "RAP_annotation", path),
                         "RAP_annotation.attribute_eng", path)  # fmt: skip
    _check_names(all_names, _RAPV1_EVALUATED, "RAP_annotation.attribute_eng", path)
    labels = _binary_labels(_field(record, ("label", "data"), 1, "RAP_annotation", path),
                            "RAP_annotation.label", path)  # fmt: skip
    if labels.shape[0] != len(image_names) or labels.shape[1] < _RAPV1_EVALUATED:
        raise DataError(
            f"{path}: RAP_annotation.label has shape {labels.shape}, expected "
            f"({len(image_names)}, >= {_RAPV1_EVALUATED})"
        )
    cells = _cells(_field(record, ("partion", "partition"), 0, "RAP_annotation", path))
    split = _record(_pick_partition(cells, partition, path), f"RAP partition {partition}", path)
    partitions = {
        name: _indices(_field(split, (name, f"{name}_index"), i, "partition", path),
                       len(image_names), f"RAP partition {partition} {name}", path)
        for i, name in enumerate(("trainval", "test"))
    }  # fmt: skip
    dataset = AttributeDataset(
        "rapv1", root / "RAP_dataset", image_names, labels[:, :_RAPV1_EVALUATED],
        all_names[:_RAPV1_EVALUATED], partitions,
    )  # fmt: skip
    return _checked(dataset, root, path, allow_outside_root)


@register_dataset("rapv2", task=ATTRIBUTES, aliases=("rap2",), title="RAPv2",
                  description="Li et al., TIP 2019: 84,928 images, 54 evaluated attributes.")
def read_rapv2(
    root: str | Path, *, partition: int = 0, annotation: str | Path | None = None,
    allow_outside_root: bool = False,
) -> AttributeDataset:
    """Read RAPv2: ``root/RAP_annotation/RAP_annotation.mat`` (struct ``RAP_annotation``
    with fields ``name``, ``data`` (84928 x 152), ``attribute``, ``selected_attribute``
    (the 54 evaluated, 1-based) and ``partition_attribute`` (5 structs of
    ``train_index``, ``val_index``, ``test_index``)) and images in ``root/RAP_dataset``.
    """
    root, path, record = _rap_annotation(root, annotation)
    image_names = _strings(_field(record, ("name",), 0, "RAP_annotation", path),
                           "RAP_annotation.name", path)  # fmt: skip
    labels = _binary_labels(_field(record, ("data",), 1, "RAP_annotation", path),
                            "RAP_annotation.data", path)  # fmt: skip
    all_names = _strings(_field(record, ("attribute",), 2, "RAP_annotation", path),
                         "RAP_annotation.attribute", path)  # fmt: skip
    if labels.shape != (len(image_names), len(all_names)):
        raise DataError(
            f"{path}: RAP_annotation.data has shape {labels.shape}, expected "
            f"({len(image_names)}, {len(all_names)})"
        )
    selected = _indices(_field(record, ("selected_attribute",), 3, "RAP_annotation", path),
                        len(all_names), "RAP_annotation.selected_attribute", path)  # fmt: skip
    cells = _cells(_field(record, ("partition_attribute",), 4, "RAP_annotation", path))
    split = _record(_pick_partition(cells, partition, path), f"RAPv2 partition {partition}", path)
    partitions = {
        name: _indices(_field(split, (f"{name}_index",), i, "partition", path),
                       len(image_names), f"RAPv2 partition {partition} {name}", path)
        for i, name in enumerate(("train", "val", "test"))
    }  # fmt: skip
    partitions["trainval"] = np.concatenate([partitions["train"], partitions["val"]])
    dataset = AttributeDataset(
        "rapv2", root / "RAP_dataset", image_names, labels[:, selected],
        [all_names[i] for i in selected], partitions,
    )  # fmt: skip
    return _checked(dataset, root, path, allow_outside_root)


# --------------------------------------------------------------------------- pickles

_DESCRIPTION_NAMES = {"pa100k": "pa100k", "peta": "peta", "rap": "rapv1", "rap2": "rapv2"}


def _as_index_array(value: Any, what: str, path: Path) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype == object or array.dtype.kind not in "iu" or array.ndim != 1:
        raise DataError(f"{path}: {what} is not a vector of integer indices")
    return array.astype(np.int64)


def _resolve_image_root(stored: Any, pickle_path: Path, image_root: str | Path | None) -> Path:
    if image_root is not None:
        return Path(image_root).expanduser()
    if not isinstance(stored, str):
        raise DataError(f"{pickle_path}: 'root' is missing or not a string; pass image_root")
    stored_path = Path(stored)
    if stored_path.is_dir():
        return stored_path
    # The pickles store the author's absolute path; look beside the pickle instead.
    return pickle_path.parent / stored_path.name


def read_partition_pickle(
    path: str | Path,
    *,
    image_root: str | Path | None = None,
    partition: int = 0,
    labels: str = "eval",
    allow_outside_root: bool = False,
) -> AttributeDataset:
    """Read a Rethinking-of-PAR partition pickle (``dataset_all.pkl`` and the like).

    The file is an EasyDict with ``image_name``, ``label``, ``attr_name``, ``root``,
    ``partition`` (split -> indices, or a list of 5 such arrays for PETA/RAP) and
    usually ``label_idx.eval`` (the evaluated columns, in Rethinking's grouped order).
    It is loaded with an allow-list unpickler: nothing in it can run code.

    Args:
        image_root: image folder; default: the pickle's ``root`` if it exists, else the
            folder of that name beside the pickle.
        partition: which of several random splits to use (as Rethinking-of-PAR: 0).
        labels: ``"eval"`` keeps the ``label_idx.eval`` columns (all columns if the file
            has no ``label_idx``, as in the zero-shot splits); ``"all"`` keeps every column.
        allow_outside_root: accept image names resolving outside the image folder.
    """
    path = Path(path).expanduser()
    data = load_data_pickle(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a dict/EasyDict, got {type(data).__name__}")
    for key in ("image_name", "label", "attr_name", "partition"):
        if key not in data:
            raise DataError(f"{path}: missing key {key!r} (found: {', '.join(map(str, data))})")
    image_names = [str(name) for name in data["image_name"]]
    attr_names = [str(name) for name in data["attr_name"]]
    label_matrix = _binary_labels(data["label"], "label", path)
    if label_matrix.shape != (len(image_names), len(attr_names)):
        raise DataError(
            f"{path}: label has shape {label_matrix.shape}, expected "
            f"({len(image_names)}, {len(attr_names)}) from image_name and attr_name"
        )
    if labels not in ("eval", "all"):
        raise DataError(f"labels must be 'eval' or 'all', got {labels!r}")
    columns = list(range(len(attr_names)))
    label_idx = data.get("label_idx")
    if labels == "eval" and isinstance(label_idx, dict) and "eval" in label_idx:
        columns = [int(i) for i in _as_index_array(label_idx["eval"], "label_idx.eval", path)]
        if any(not 0 <= i < len(attr_names) for i in columns):
            raise DataError(f"{path}: label_idx.eval has columns outside 0..{len(attr_names) - 1}")
    raw_partitions = data["partition"]
    if not isinstance(raw_partitions, dict):
        raise DataError(f"{path}: 'partition' is not a dict of splits")
    partitions = {}
    for split, value in raw_partitions.items():
        if isinstance(value, list):
            if not value:  # Rethinking leaves unused splits as empty lists
                continue
            value = _pick_partition(value, partition, path)
        partitions[str(split)] = _as_index_array(value, f"partition.{split}", path)
    description = str(data.get("description", path.stem))
    folder = _resolve_image_root(data.get("root"), path, image_root)
    dataset = AttributeDataset(
        _DESCRIPTION_NAMES.get(description, description), folder,
        image_names, label_matrix[:, columns], [attr_names[i] for i in columns], partitions,
    )  # fmt: skip
    return _checked(dataset, folder, path, allow_outside_root)


# name -> reader, in registration order (kept for callers of the old table)
ATTRIBUTE_DATASETS = {spec.name: spec.load for spec in specs(ATTRIBUTES, load_all=False)}


def attribute_dataset_key(name: str) -> str | None:
    """The :data:`ATTRIBUTE_DATASETS` key that ``name`` means (any spelling
    :func:`~plip.data.datasets.normalize_name` accepts, or ``rap`` / ``rap2``), or ``None``."""
    spec = find_dataset(name, ATTRIBUTES)
    return spec.name if spec is not None else None


def read_attribute_dataset(name: str, root: str | Path, **kwargs: Any) -> AttributeDataset:
    """Read attribute dataset ``name`` (pa100k, peta, rapv1, rapv2) from ``root``; a
    ``.pkl`` path for ``root`` is read with :func:`read_partition_pickle` instead."""
    if str(root).endswith(".pkl"):
        return read_partition_pickle(root, **kwargs)
    key = attribute_dataset_key(name)
    if key is None:
        raise DataError(
            f"unknown attribute dataset {name!r}; choose one of {', '.join(ATTRIBUTE_DATASETS)}"
        )
    return ATTRIBUTE_DATASETS[key](root, **kwargs)
