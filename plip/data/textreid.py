"""Readers for text-based person retrieval datasets.

Each reader turns an annotation file, as its authors distribute it, into a
:class:`TextReIDSplit`: a list of :class:`PersonSample` (absolute image path, person id,
captions) for one split, plus the gallery / query views that evaluation needs.

======================  ===========================  ===============  =====================
name                    annotation file (in ROOT)    images           splits
======================  ===========================  ===============  =====================
``cuhk-pedes``          ``reid_raw.json``            ``ROOT/imgs/``   train / val / test
``icfg-pedes``          ``ICFG_PEDES.json``          ``ROOT/imgs/``   train / test
``rstpreid``            ``data_captions.json``       ``ROOT/imgs/``   train / val / test
``synth-pedes``         ``synthpedes_dataset.json``  ``ROOT/``        train (the whole set)
``generic``             a JSON / JSONL / CSV file    next to it       optional column
======================  ===========================  ===============  =====================

``ROOT`` may also be the annotation file itself (e.g. the ``CUHK-PEDES-test.json`` that the
official PLIP ``dataset_split.py`` writes; its entries keep their ``split`` field).

Person ids are kept exactly as the files give them. CUHK-PEDES and ICFG-PEDES number
identities from 1 (``id`` 1 … 13003 and 1 … 4102), RSTPReid uses its own numbering and
SYNTH-PEDES ids are as released; evaluation only compares ids for equality. Training code
that needs 0-based class indices uses :meth:`TextReIDSplit.label_map`.

Registration: each reader is registered where it is defined (:func:`_text_dataset`, which
records its :class:`DatasetInfo` in :data:`DATASETS` and registers it in
:mod:`plip.data.datasets` under the ``text_retrieval`` task); adding a dataset is one
decorated reader in this file.

Paths: every image path an annotation names must resolve (symlinks included) inside the
dataset root, the annotation file's folder; otherwise :class:`~plip.errors.DataError` names
the file, the entry and the path (``allow_outside_root=True`` permits it).

Captions: an empty or whitespace-only caption is not a query. It is skipped, counted and
listed in :attr:`TextReIDSplit.skipped_captions` (its image stays in the gallery).

Validation: a malformed entry of the requested split raises :class:`~plip.errors.DataError`
naming the file, the entry index and the field; entries of other splits are only checked
for their ``split`` field. Missing images are reported by :meth:`TextReIDSplit.check_files`
(count and the first few paths) without opening any image.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import DataError
from .datasets.paths import PathGuard
from .datasets.registry import TEXT_RETRIEVAL, find_dataset, register_dataset

__all__ = [
    "PersonSample",
    "SkippedCaption",
    "TextReIDSplit",
    "Gallery",
    "Queries",
    "DatasetInfo",
    "DATASETS",
    "load_text_reid",
    "dataset_info",
]


@dataclass(frozen=True)
class PersonSample:
    """One image of a person and its captions."""

    image_path: str  # absolute
    person_id: int
    captions: tuple[str, ...]


@dataclass(frozen=True)
class SkippedCaption:
    """A caption that is not a query (empty or whitespace-only), and where it was."""

    entry: int  # index of the annotation entry (for merged generic rows: the image's first row)
    caption: int  # index among that sample's captions, as the file lists them
    image_path: str
    text: str
    reason: str = "empty"


@dataclass(frozen=True)
class Gallery:
    """The unique images of a split, in file order."""

    image_paths: list[str]
    person_ids: np.ndarray  # int64, one per image

    def __len__(self) -> int:
        return len(self.image_paths)


@dataclass(frozen=True)
class Queries:
    """One query per caption, in file order (entry by entry, caption by caption)."""

    captions: list[str]
    person_ids: np.ndarray  # int64, one per caption
    image_index: np.ndarray  # int64, index in the gallery of the image the caption describes

    def __len__(self) -> int:
        return len(self.captions)


@dataclass
class TextReIDSplit:
    """One split of a text-based person retrieval dataset."""

    dataset: str
    split: str
    root: str
    annotation_file: str
    samples: list[PersonSample] = field(repr=False)
    skipped_captions: tuple[SkippedCaption, ...] = field(default=(), repr=False)

    @property
    def num_skipped_captions(self) -> int:
        """Captions of this split left out of the queries (see :attr:`skipped_captions`)."""
        return len(self.skipped_captions)

    @property
    def num_images(self) -> int:
        return len(self.gallery())

    @property
    def num_captions(self) -> int:
        return sum(len(s.captions) for s in self.samples)

    @property
    def num_identities(self) -> int:
        return len({s.person_id for s in self.samples})

    def gallery(self) -> Gallery:
        """The unique images (an image listed twice appears once, at its first entry)."""
        seen: dict[str, int] = {}
        for sample in self.samples:
            seen.setdefault(sample.image_path, sample.person_id)
        return Gallery(list(seen), np.fromiter(seen.values(), dtype=np.int64, count=len(seen)))

    def queries(self) -> Queries:
        """Every caption as a query, with its person id and its image's gallery index."""
        index = {path: i for i, path in enumerate(dict.fromkeys(s.image_path for s in self.samples))}
        captions: list[str] = []
        ids: list[int] = []
        image_index: list[int] = []
        for sample in self.samples:
            for caption in sample.captions:
                captions.append(caption)
                ids.append(sample.person_id)
                image_index.append(index[sample.image_path])
        return Queries(captions, np.asarray(ids, dtype=np.int64), np.asarray(image_index, dtype=np.int64))

    def label_map(self) -> dict[int, int]:
        """Person id -> 0-based class index, in increasing id order (for training)."""
        return {pid: i for i, pid in enumerate(sorted({s.person_id for s in self.samples}))}

    def missing_images(self) -> list[str]:
        """Image paths of this split that do not exist, in file order (one listing per folder)."""
        listings: dict[str, set[str] | None] = {}
        missing = []
        for path in dict.fromkeys(s.image_path for s in self.samples):
            folder, name = os.path.split(path)
            if folder not in listings:
                try:
                    listings[folder] = set(os.listdir(folder))
                except OSError:
                    listings[folder] = None
            entries = listings[folder]
            if entries is None or name not in entries:
                missing.append(path)
        return missing

    def check_files(self, max_listed: int = 5) -> None:
        """Raise :class:`DataError` if any image is missing (count + the first few paths)."""
        missing = self.missing_images()
        if missing:
            total = len(dict.fromkeys(s.image_path for s in self.samples))
            shown = ", ".join(missing[:max_listed])
            more = f" and {len(missing) - max_listed} more" if len(missing) > max_listed else ""
            raise DataError(
                f"{len(missing)} of {total} images of {self.dataset} ({self.split}) are missing "
                f"(annotation file {self.annotation_file}): {shown}{more}"
            )

    def summary(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "split": self.split,
            "images": self.num_images,
            "captions": self.num_captions,
            "identities": self.num_identities,
            "skipped_captions": self.num_skipped_captions,
        }


# --------------------------------------------------------------------------- parsing helpers

# What a reader returns: the samples, the file entry index of each, and the split's name.
_Read = tuple[list[PersonSample], list[int], str]


def _load_json(path: Path) -> Any:
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err})") from None


def _entries(data: Any, path: Path) -> list:
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of entries, found {type(data).__name__}")
    return data


class _Entry:
    """Typed access to the fields of one annotation entry, with errors naming file and index."""

    def __init__(self, entry: Any, index: int, path: Path):
        if not isinstance(entry, dict):
            raise DataError(f"{path}: entry {index} is a {type(entry).__name__}, expected an object")
        self.entry, self.index, self.path = entry, index, path

    def _fail(self, name: str, why: str) -> DataError:
        return DataError(f"{self.path}: entry {self.index}, field {name!r}: {why}")

    def get(self, *names: str) -> tuple[str, Any]:
        """(name, value) of the first of ``names`` present in the entry."""
        for name in names:
            if name in self.entry:
                return name, self.entry[name]
        raise self._fail(names[0], "missing" if len(names) == 1 else f"missing (also looked for {', '.join(map(repr, names[1:]))})")

    def person_id(self, *names: str) -> int:
        name, value = self.get(*names)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise self._fail(name, f"expected an integer person id, got {value!r}")
        return int(value)

    def path_str(self, *names: str) -> str:
        name, value = self.get(*names)
        if not isinstance(value, str) or not value.strip():
            raise self._fail(name, f"expected a non-empty image path, got {value!r}")
        return value

    def image(self, guard: PathGuard, base: Path, *names: str) -> str:
        """The absolute image path of field ``names`` under ``base``, checked to stay in the root."""
        name, _ = self.get(*names)
        return guard.join(base, self.path_str(*names), f"entry {self.index}, field {name!r}")

    def text(self, *names: str) -> str:
        name, value = self.get(*names)
        if not isinstance(value, str):
            raise self._fail(name, f"expected a string, got {type(value).__name__}")
        return value

    def captions(self, name: str, allow_single: bool = False) -> tuple[str, ...]:
        _, value = self.get(name)
        if allow_single and isinstance(value, str):
            return (value,)
        if not isinstance(value, list):
            raise self._fail(name, f"expected a list of captions, got {type(value).__name__}")
        for i, caption in enumerate(value):
            if not isinstance(caption, str):
                raise self._fail(name, f"caption {i} is a {type(caption).__name__}, expected a string")
        return tuple(value)


def _select_split(entries: list, path: Path, split: str, splits: Sequence[str], key: str = "split") -> list[tuple[int, dict]]:
    found: set[str] = set()
    chosen = []
    for i, raw in enumerate(entries):
        entry = _Entry(raw, i, path)
        value = entry.text(key)
        found.add(value)
        if value == split:
            chosen.append((i, raw))
    if not chosen:
        known = sorted(found) or list(splits)
        raise DataError(f"{path}: no entries of split {split!r}; the file has splits {', '.join(map(repr, known))}")
    return chosen


def _check_duplicates(samples: list[PersonSample], entry_index: list[int], path: Path) -> None:
    first: dict[str, tuple[int, int]] = {}
    for sample, index in zip(samples, entry_index):
        seen = first.setdefault(sample.image_path, (index, sample.person_id))
        if seen[1] != sample.person_id:
            raise DataError(
                f"{path}: entries {seen[0]} and {index} list image {sample.image_path} "
                f"with different person ids ({seen[1]} and {sample.person_id})"
            )


def _drop_blank_captions(samples: list[PersonSample], entry_index: list[int]) -> tuple[list[PersonSample], tuple[SkippedCaption, ...]]:
    """Samples without their empty / whitespace-only captions, and the list of those."""
    skipped: list[SkippedCaption] = []
    kept: list[PersonSample] = []
    for sample, entry in zip(samples, entry_index):
        blank = [i for i, caption in enumerate(sample.captions) if not caption.strip()]
        if not blank:
            kept.append(sample)
            continue
        skipped.extend(SkippedCaption(entry, i, sample.image_path, sample.captions[i]) for i in blank)
        captions = tuple(c for i, c in enumerate(sample.captions) if i not in set(blank))
        kept.append(PersonSample(sample.image_path, sample.person_id, captions))
    return kept, tuple(skipped)


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class DatasetInfo:
    """How a dataset is laid out on disk and read."""

    name: str
    title: str
    annotation: str | None  # file name inside ROOT (None: generic, given by the user)
    image_dir: str  # image folder relative to the annotation file's folder
    splits: tuple[str, ...]
    reader: Callable[..., _Read]
    description: str


DATASETS: dict[str, DatasetInfo] = {}


def _text_dataset(
    name: str, title: str, annotation: str | None, image_dir: str, splits: tuple[str, ...],
    description: str, aliases: tuple[str, ...] = (),
) -> Callable[[Callable[..., _Read]], Callable[..., _Read]]:
    """Register a reader ``(annotation_path, image_root, split, guard, **options) -> _Read``."""

    def load(root: str | os.PathLike, split: str = "test", **options: Any) -> TextReIDSplit:
        return load_text_reid(name, root, split, **options)

    def decorate(reader: Callable[..., _Read]) -> Callable[..., _Read]:
        DATASETS[name] = DatasetInfo(name, title, annotation, image_dir, splits, reader, description)
        register_dataset(name, task=TEXT_RETRIEVAL, aliases=aliases, title=title, description=description, load=load)(reader)
        return reader

    return decorate


# --------------------------------------------------------------------------- readers


def _read_pedes(path: Path, image_root: Path, split: str, splits: Sequence[str], image_field: str, guard: PathGuard) -> _Read:
    """CUHK-PEDES / ICFG-PEDES / RSTPReid: a list of entries with split, id, path, captions."""
    samples, index = [], []
    for i, raw in _select_split(_entries(_load_json(path), path), path, split, splits):
        entry = _Entry(raw, i, path)
        samples.append(
            PersonSample(
                image_path=entry.image(guard, image_root, image_field),
                person_id=entry.person_id("id"),
                captions=entry.captions("captions"),
            )
        )
        index.append(i)
    return samples, index, split


@_text_dataset("cuhk-pedes", "CUHK-PEDES", "reid_raw.json", "imgs", ("train", "val", "test"),
               "Li et al., CVPR 2017: 13,003 identities, 40,206 images, 80,440 captions.", aliases=("cuhk",))
def _read_cuhk(path: Path, image_root: Path, split: str, guard: PathGuard) -> _Read:
    return _read_pedes(path, image_root, split, ("train", "val", "test"), "file_path", guard)


@_text_dataset("icfg-pedes", "ICFG-PEDES", "ICFG_PEDES.json", "imgs", ("train", "test"),
               "Ding et al., 2021: 4,102 identities, 54,522 images, one caption each.", aliases=("icfg",))
def _read_icfg(path: Path, image_root: Path, split: str, guard: PathGuard) -> _Read:
    return _read_pedes(path, image_root, split, ("train", "test"), "file_path", guard)


@_text_dataset("rstpreid", "RSTPReid", "data_captions.json", "imgs", ("train", "val", "test"),
               "Zhu et al., ACM MM 2021: 4,101 identities, 20,505 images, 2 captions each.", aliases=("rstp",))
def _read_rstp(path: Path, image_root: Path, split: str, guard: PathGuard) -> _Read:
    return _read_pedes(path, image_root, split, ("train", "val", "test"), "img_path", guard)


@_text_dataset("synth-pedes", "SYNTH-PEDES", "synthpedes_dataset.json", ".", ("train",),
               "Zuo et al., NeurIPS 2024: 312,321 identities, 4.8M images, 12.1M captions.", aliases=("synth",))
def _read_synth(
    path: Path, image_root: Path, split: str, guard: PathGuard, caption_fields: Sequence[str] = ("captions",)
) -> _Read:
    """SYNTH-PEDES: the release has no split field (all entries are training data);
    ``file_path`` starts with ``PartN/``. Files that give every entry a ``split`` (such as
    ``plip synth`` output) are split by it; ``split="all"`` takes every entry either way.
    ``caption_fields`` picks ``captions`` and/or ``prompt_caption``."""
    entries = _entries(_load_json(path), path)
    has_splits = bool(entries) and all(isinstance(e, dict) and "split" in e for e in entries)
    if not has_splits and split not in ("train", "all"):
        raise DataError(f"{path}: SYNTH-PEDES has a single split, 'train' (asked for {split!r})")
    if has_splits and split != "all":
        available = sorted({str(e["split"]) for e in entries})
        if split not in available:
            raise DataError(f"{path}: no entry has split {split!r} (splits: {', '.join(available)})")
    unknown = set(caption_fields) - {"captions", "prompt_caption"}
    if unknown or not caption_fields:
        raise DataError(f"caption_fields must be 'captions' and/or 'prompt_caption', got {tuple(caption_fields)}")
    samples, index = [], []
    for i, raw in enumerate(entries):
        if has_splits and split != "all" and raw["split"] != split:
            continue
        entry = _Entry(raw, i, path)
        captions: tuple[str, ...] = ()
        for name in caption_fields:
            captions += entry.captions(name, allow_single=name == "prompt_caption")
        samples.append(PersonSample(entry.image(guard, image_root, "file_path"), entry.person_id("id"), captions))
        index.append(i)
    return samples, index, split if has_splits else "train"


_GENERIC_IMAGE = ("image", "image_path", "file_path", "img_path", "path")
_GENERIC_ID = ("person_id", "id", "pid")
_GENERIC_FILES = ("annotations.json", "annotations.jsonl", "annotations.csv")


def _generic_rows(path: Path) -> list:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _entries(_load_json(path), path)
    if suffix == ".jsonl":
        rows = []
        with open(path, "r", encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as err:
                        raise DataError(f"{path}: line {line_no} is not valid JSON ({err.msg})") from None
        return rows
    if suffix in (".csv", ".tsv"):
        with open(path, "r", encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ","))
    raise DataError(f"{path}: generic annotations must be .json, .jsonl, .csv or .tsv")


@_text_dataset("generic", "generic", None, ".", (),
               "Your own data: a JSON/JSONL/CSV of image path, person id, caption(s) [, split].")
def _read_generic(path: Path, image_root: Path, split: str, guard: PathGuard) -> _Read:
    """Users' own data: rows of (image path, person id, caption or captions[, split]).

    Image paths are relative to the annotation file's folder (absolute ones must lie inside
    it too, unless ``allow_outside_root=True``). Rows naming
    the same image are merged, their captions concatenated in file order. Without a
    ``split`` column the whole file is one split and ``split`` is ignored.
    """
    rows = _generic_rows(path)
    has_split = any(isinstance(r, dict) and "split" in r for r in rows)
    selected = _select_split(rows, path, split, ()) if has_split else list(enumerate(rows))
    merged: dict[str, tuple[int, int, list[str]]] = {}
    for i, raw in selected:
        entry = _Entry(raw, i, path)
        image = entry.image(guard, image_root, *_GENERIC_IMAGE)
        pid = entry.person_id(*_GENERIC_ID)
        if "captions" in raw:
            captions = list(entry.captions("captions", allow_single=True))
        else:
            captions = [entry.text("caption")]
        if image in merged:
            first, first_pid, existing = merged[image]
            if first_pid != pid:
                raise DataError(
                    f"{path}: entries {first} and {i} list image {image} with different person ids ({first_pid} and {pid})"
                )
            existing.extend(captions)
        else:
            merged[image] = (i, pid, captions)
    samples = [PersonSample(image, pid, tuple(caps)) for image, (_, pid, caps) in merged.items()]
    return samples, [first for first, _, _ in merged.values()], split if has_split else "all"


def dataset_info(name: str) -> DatasetInfo:
    """The entry of text dataset ``name`` (any spelling :func:`~plip.data.datasets.normalize_name`
    accepts, or an alias such as ``cuhk``)."""
    spec = find_dataset(name, TEXT_RETRIEVAL)
    if spec is None:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[spec.name]


def _annotation_path(info: DatasetInfo, root: Path) -> Path:
    if root.is_file():
        return root
    if not root.exists():
        raise DataError(f"{info.title} root {root} does not exist")
    if info.annotation is None:
        for name in _GENERIC_FILES:
            if (root / name).is_file():
                return root / name
        raise DataError(f"{root}: no {' / '.join(_GENERIC_FILES)}; pass the annotation file itself as root")
    for candidate in (root / info.annotation, root / info.title / info.annotation):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"{info.title} annotation file {root / info.annotation} not found "
        f"(expected ROOT/{info.annotation} with images under ROOT/{info.image_dir}/)"
    )


def load_text_reid(
    name: str, root: str | os.PathLike, split: str = "test", *, allow_outside_root: bool = False, **options: Any
) -> TextReIDSplit:
    """Read one split of a text-based person retrieval dataset.

    Args:
        name: a key of :data:`DATASETS` (``cuhk-pedes``, ``icfg-pedes``, ``rstpreid``,
            ``synth-pedes``, ``generic``).
        root: the dataset folder, or its annotation file.
        split: ``train``, ``val`` or ``test`` (the dataset's splits).
        allow_outside_root: accept image paths that resolve outside the dataset root (the
            annotation file's folder); by default they are a :class:`DataError`.
        options: reader options (``caption_fields`` for SYNTH-PEDES).

    Empty / whitespace-only captions are skipped and listed in
    :attr:`TextReIDSplit.skipped_captions`.

    Raises:
        DataError: missing or malformed annotation file (naming entry and field), unknown
            split, an image path outside the root, or one image listed with two person ids. Image files are not opened;
            call :meth:`TextReIDSplit.check_files` to verify they exist.
    """
    info = dataset_info(name)
    path = _annotation_path(info, Path(root).expanduser())
    image_root = path.parent / info.image_dir
    guard = PathGuard(path.parent, path, allow_outside_root)
    try:
        samples, index, split_name = info.reader(path, image_root, split, guard=guard, **options)
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
    _check_duplicates(samples, index, path)
    samples, skipped = _drop_blank_captions(samples, index)
    return TextReIDSplit(info.title, split_name, str(path.parent.resolve()), str(path.resolve()), samples, skipped)
