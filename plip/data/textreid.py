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

__all__ = [
    "PersonSample",
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


def _join(base: Path, relative: str) -> str:
    return os.path.abspath(os.path.join(base, relative))


# --------------------------------------------------------------------------- readers


def _read_pedes(path: Path, image_root: Path, split: str, splits: Sequence[str], image_field: str) -> _Read:
    """CUHK-PEDES / ICFG-PEDES / RSTPReid: a list of entries with split, id, path, captions."""
    samples, index = [], []
    for i, raw in _select_split(_entries(_load_json(path), path), path, split, splits):
        entry = _Entry(raw, i, path)
        samples.append(
            PersonSample(
                image_path=_join(image_root, entry.path_str(image_field)),
                person_id=entry.person_id("id"),
                captions=entry.captions("captions"),
            )
        )
        index.append(i)
    return samples, index, split


def _read_cuhk(path: Path, image_root: Path, split: str) -> _Read:
    return _read_pedes(path, image_root, split, ("train", "val", "test"), "file_path")


def _read_icfg(path: Path, image_root: Path, split: str) -> _Read:
    return _read_pedes(path, image_root, split, ("train", "test"), "file_path")


def _read_rstp(path: Path, image_root: Path, split: str) -> _Read:
    return _read_pedes(path, image_root, split, ("train", "val", "test"), "img_path")


def _read_synth(
    path: Path, image_root: Path, split: str, caption_fields: Sequence[str] = ("captions",)
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
        samples.append(PersonSample(_join(image_root, entry.path_str("file_path")), entry.person_id("id"), captions))
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


def _read_generic(path: Path, image_root: Path, split: str) -> _Read:
    """Users' own data: rows of (image path, person id, caption or captions[, split]).

    Image paths are relative to the annotation file's folder (or absolute). Rows naming
    the same image are merged, their captions concatenated in file order. Without a
    ``split`` column the whole file is one split and ``split`` is ignored.
    """
    rows = _generic_rows(path)
    has_split = any(isinstance(r, dict) and "split" in r for r in rows)
    selected = _select_split(rows, path, split, ()) if has_split else list(enumerate(rows))
    merged: dict[str, tuple[int, int, list[str]]] = {}
    for i, raw in selected:
        entry = _Entry(raw, i, path)
        image = _join(image_root, entry.path_str(*_GENERIC_IMAGE))
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


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("cuhk-pedes", "CUHK-PEDES", "reid_raw.json", "imgs", ("train", "val", "test"), _read_cuhk,
                    "Li et al., CVPR 2017: 13,003 identities, 40,206 images, 80,440 captions."),
        DatasetInfo("icfg-pedes", "ICFG-PEDES", "ICFG_PEDES.json", "imgs", ("train", "test"), _read_icfg,
                    "Ding et al., 2021: 4,102 identities, 54,522 images, one caption each."),
        DatasetInfo("rstpreid", "RSTPReid", "data_captions.json", "imgs", ("train", "val", "test"), _read_rstp,
                    "Zhu et al., ACM MM 2021: 4,101 identities, 20,505 images, 2 captions each."),
        DatasetInfo("synth-pedes", "SYNTH-PEDES", "synthpedes_dataset.json", ".", ("train",), _read_synth,
                    "Zuo et al., NeurIPS 2024: 312,321 identities, 4.8M images, 12.1M captions."),
        DatasetInfo("generic", "generic", None, ".", (), _read_generic,
                    "Your own data: a JSON/JSONL/CSV of image path, person id, caption(s) [, split]."),
    )
}


def _canonical(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


_ALIASES = {_canonical(n): n for n in DATASETS} | {"cuhk": "cuhk-pedes", "icfg": "icfg-pedes", "rstp": "rstpreid", "synth": "synth-pedes"}


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry for ``name`` (case, dashes and underscores ignored)."""
    key = _ALIASES.get(_canonical(name))
    if key is None:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[key]


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


def load_text_reid(name: str, root: str | os.PathLike, split: str = "test", **options: Any) -> TextReIDSplit:
    """Read one split of a text-based person retrieval dataset.

    Args:
        name: a key of :data:`DATASETS` (``cuhk-pedes``, ``icfg-pedes``, ``rstpreid``,
            ``synth-pedes``, ``generic``).
        root: the dataset folder, or its annotation file.
        split: ``train``, ``val`` or ``test`` (the dataset's splits).
        options: reader options (``caption_fields`` for SYNTH-PEDES).

    Raises:
        DataError: missing or malformed annotation file (naming entry and field), unknown
            split, or one image listed with two person ids. Image files are not opened;
            call :meth:`TextReIDSplit.check_files` to verify they exist.
    """
    info = dataset_info(name)
    path = _annotation_path(info, Path(root).expanduser())
    image_root = path.parent / info.image_dir
    try:
        samples, index, split_name = info.reader(path, image_root, split, **options)
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
    _check_duplicates(samples, index, path)
    return TextReIDSplit(info.title, split_name, str(path.parent.resolve()), str(path.resolve()), samples)
