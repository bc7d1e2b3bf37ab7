"""Readers for the image re-identification benchmarks Market-1501, DukeMTMC-reID and MSMT17.

Each reader returns an :class:`ImageReIDSplit` whose items are
``ReIDImage(image_path, person_id, camera_id)`` with the person id as the dataset
numbers it and a 0-based camera index, plus the map that relabels training ids to
``0..num_train_ids-1`` for a classifier.

Standard protocol, as torchreid and fast-reid apply it:

- Market-1501 names images ``0002_c1s1_000451_03.jpg`` (person 0002, camera 1).
  Person id ``-1`` marks *junk* images (bad detections, or parts of a body): they are
  left out of every split. Person id ``0000`` marks *distractors* (background
  detections): they stay in the gallery, where they can only ever be wrong matches,
  and are left out of training, where they are not a person.
- DukeMTMC-reID names images ``0001_c2_f0046182.jpg``; the same rules apply (its
  release has no junk images; its distractor identities have ordinary ids).
- MSMT17 lists images in ``list_train.txt``, ``list_val.txt``, ``list_query.txt`` and
  ``list_gallery.txt``, one ``relative/path.jpg person_id`` per line; the camera is the
  third ``_``-separated field of the file name, 1-based
  (``0000_000_01_0303morning_0008_0.jpg`` is camera index 0), as torchreid reads it.

Every image, whether found in a folder or named by a list file, must resolve (symlinks
included) inside the dataset folder; otherwise :class:`~plip.errors.DataError` names the
list file or folder, the entry and the path (``allow_outside_root=True`` permits it). The
readers register themselves in :mod:`plip.data.datasets` (task ``image_reid``).

What was left out is counted in :attr:`ImageReIDSplit.excluded`, never dropped silently.
A file name that does not follow the dataset's pattern raises :class:`~plip.errors.DataError`
naming the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import DataError
from .datasets.paths import PathGuard
from .datasets.registry import IMAGE_REID, find_dataset, register_dataset, specs

__all__ = [
    "ReIDImage",
    "ImageReIDSplit",
    "read_market1501",
    "read_dukemtmc",
    "read_msmt17",
    "read_image_reid",
    "image_reid_key",
    "IMAGE_REID_DATASETS",
]

JUNK_PID = -1
DISTRACTOR_PID = 0


class ReIDImage(NamedTuple):
    """One image of a re-identification split."""

    image_path: Path
    person_id: int
    camera_id: int  # 0-based camera index


@dataclass(frozen=True)
class ImageReIDSplit:
    """Train, query and gallery lists of an image ReID benchmark.

    Attributes:
        train, query, gallery: the images, sorted by path for folder datasets and in
            list-file order for MSMT17.
        train_pid_to_label: raw training person id -> contiguous label ``0..n-1``
            (sorted by raw id), for an identity classifier.
        excluded: what the standard protocol left out, e.g. ``{"junk": 2798}``.
        name: the dataset's name.
    """

    train: list[ReIDImage]
    query: list[ReIDImage]
    gallery: list[ReIDImage]
    train_pid_to_label: dict[int, int]
    excluded: dict[str, int] = field(default_factory=dict)
    name: str = ""

    @property
    def num_train_ids(self) -> int:
        return len(self.train_pid_to_label)

    @property
    def num_cameras(self) -> int:
        cams = {item.camera_id for part in (self.train, self.query, self.gallery) for item in part}
        return len(cams)

    def train_labels(self) -> list[int]:
        """The classifier label of every training image, in :attr:`train` order."""
        return [self.train_pid_to_label[item.person_id] for item in self.train]

    def summary(self) -> str:
        """A one-line description: images and identities per split."""

        def ids(items: list[ReIDImage]) -> int:
            return len({item.person_id for item in items})

        return (
            f"{self.name}: train {len(self.train)} images / {ids(self.train)} ids, "
            f"query {len(self.query)} / {ids(self.query)}, "
            f"gallery {len(self.gallery)} / {ids(self.gallery)}, "
            f"{self.num_cameras} cameras" + (f", excluded {self.excluded}" if self.excluded else "")
        )


def relabel_map(items: list[ReIDImage]) -> dict[int, int]:
    """Map each person id of ``items`` to ``0..n-1`` in increasing id order."""
    return {pid: label for label, pid in enumerate(sorted({item.person_id for item in items}))}


# --------------------------------------------------------------------------- folders


@dataclass(frozen=True)
class _FolderFormat:
    name: str
    pattern: re.Pattern[str]
    example: str
    num_cameras: int
    subfolder: str  # the folder name the release unpacks to


_MARKET = _FolderFormat(
    name="market1501",
    pattern=re.compile(r"^(-1|\d+)_c(\d+)s\d+_\d+_\d+\.jpg$"),
    example="0002_c1s1_000451_03.jpg",
    num_cameras=6,
    subfolder="Market-1501-v15.09.15",
)
_DUKE = _FolderFormat(
    name="dukemtmc",
    pattern=re.compile(r"^(-1|\d+)_c(\d+)_f\d+\.jpg$"),
    example="0001_c2_f0046182.jpg",
    num_cameras=8,
    subfolder="DukeMTMC-reID",
)
_FOLDERS = ("bounding_box_train", "query", "bounding_box_test")


def _find_folder_root(root: Path, fmt: _FolderFormat) -> Path:
    """Accept the dataset folder itself or a parent holding the release folder."""
    root = Path(root).expanduser()
    for candidate in (root, root / fmt.subfolder):
        if all((candidate / sub).is_dir() for sub in _FOLDERS):
            return candidate
    missing = [sub for sub in _FOLDERS if not (root / sub).is_dir()]
    raise DataError(
        f"{root} is not a {fmt.name} folder: missing {', '.join(missing)} "
        f"(expected {', '.join(_FOLDERS)} directly in it or under {fmt.subfolder}/)"
    )


def _parse_name(path: Path, fmt: _FolderFormat) -> tuple[int, int]:
    match = fmt.pattern.match(path.name)
    if match is None:
        raise DataError(
            f"{path}: file name does not follow the {fmt.name} pattern "
            f"(person_camera..., e.g. {fmt.example})"
        )
    pid, cam = int(match.group(1)), int(match.group(2))
    if not 1 <= cam <= fmt.num_cameras:
        raise DataError(f"{path}: camera {cam} is outside 1..{fmt.num_cameras} for {fmt.name}")
    return pid, cam - 1


def _read_folder(
    folder: Path, fmt: _FolderFormat, keep_distractors: bool, excluded: dict[str, int], split: str,
    guard: PathGuard,
) -> list[ReIDImage]:
    items = []
    guard.check(folder, f"folder {folder.name}/")
    # Only .jpg files are images; the Market-1501 release also ships Thumbs.db files.
    for path in sorted(folder.glob("*.jpg")):
        guard.check(path, f"image {folder.name}/{path.name}")
        pid, cam = _parse_name(path, fmt)
        if pid == JUNK_PID:
            excluded[f"{split}_junk"] = excluded.get(f"{split}_junk", 0) + 1
            continue
        if pid == DISTRACTOR_PID and not keep_distractors:
            excluded[f"{split}_distractors"] = excluded.get(f"{split}_distractors", 0) + 1
            continue
        items.append(ReIDImage(path, pid, cam))
    if not items:
        raise DataError(f"{folder}: no {fmt.name} images (*.jpg) found")
    return items


def _read_folder_dataset(root: str | Path, fmt: _FolderFormat, allow_outside_root: bool) -> ImageReIDSplit:
    base = _find_folder_root(Path(root), fmt)
    guard = PathGuard(base, base, allow_outside_root)
    excluded: dict[str, int] = {}
    train = _read_folder(base / "bounding_box_train", fmt, False, excluded, "train", guard)
    query = _read_folder(base / "query", fmt, False, excluded, "query", guard)
    gallery = _read_folder(base / "bounding_box_test", fmt, True, excluded, "gallery", guard)
    return ImageReIDSplit(train, query, gallery, relabel_map(train), excluded, fmt.name)


@register_dataset("market1501", task=IMAGE_REID, aliases=("market",), title="Market-1501",
                  description="Zheng et al., ICCV 2015: 1,501 identities, 32,668 images, 6 cameras.")
def read_market1501(root: str | Path, *, allow_outside_root: bool = False) -> ImageReIDSplit:
    """Read Market-1501 from ``root`` (holding ``bounding_box_train``, ``query`` and
    ``bounding_box_test``, directly or under ``Market-1501-v15.09.15/``).

    Junk images (person ``-1``) are excluded everywhere; distractors (person ``0000``)
    are kept in the gallery and excluded from train and query. ``allow_outside_root``
    accepts images (symlinks) resolving outside ``root``.
    """
    return _read_folder_dataset(root, _MARKET, allow_outside_root)


@register_dataset("dukemtmc", task=IMAGE_REID, aliases=("duke", "dukemtmc-reid"), title="DukeMTMC-reID",
                  description="Zheng et al., ICCV 2017: 1,812 identities, 36,411 images, 8 cameras.")
def read_dukemtmc(root: str | Path, *, allow_outside_root: bool = False) -> ImageReIDSplit:
    """Read DukeMTMC-reID from ``root`` (the same three folders, directly or under
    ``DukeMTMC-reID/``). Names look like ``0001_c2_f0046182.jpg``; 8 cameras."""
    return _read_folder_dataset(root, _DUKE, allow_outside_root)


# --------------------------------------------------------------------------- MSMT17

# Release folder -> (train image folder, test image folder), as torchreid lists them.
_MSMT_VERSIONS = {
    "MSMT17_V1": ("train", "test"),
    "MSMT17_V2": ("mask_train_v2", "mask_test_v2"),
    "MSMT17": ("train", "test"),
}
_MSMT_CAMERAS = 15


def _find_msmt_root(root: Path) -> tuple[Path, Path, Path]:
    root = Path(root).expanduser()
    candidates = [root] + [root / name for name in _MSMT_VERSIONS]
    for base in candidates:
        if not (base / "list_train.txt").is_file():
            continue
        for train_dir, test_dir in _MSMT_VERSIONS.values():
            if (base / train_dir).is_dir() and (base / test_dir).is_dir():
                return base, base / train_dir, base / test_dir
        raise DataError(
            f"{base}: has list_train.txt but no image folders "
            f"(expected train/ and test/, or mask_train_v2/ and mask_test_v2/)"
        )
    raise DataError(
        f"{root} is not an MSMT17 folder: no list_train.txt in it or in "
        f"{', '.join(_MSMT_VERSIONS)}/"
    )


def _read_msmt_list(list_path: Path, image_dir: Path, guard: PathGuard) -> list[ReIDImage]:
    if not list_path.is_file():
        raise DataError(f"{list_path}: MSMT17 list file not found")
    guard = PathGuard(guard.root, list_path, guard.allow_outside_root)  # errors name this list
    items = []
    with open(list_path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            fields = line.split()
            where = f"{list_path}, line {line_no}"
            if len(fields) != 2:
                raise DataError(
                    f"{where}: expected 'relative/path.jpg person_id', got {line.strip()!r}"
                )
            rel_path, pid_text = fields
            try:
                pid = int(pid_text)
            except ValueError:
                raise DataError(f"{where}: person id {pid_text!r} is not an integer") from None
            name = Path(rel_path).name
            parts = name.split("_")
            if len(parts) < 4 or not parts[2].isdigit():
                raise DataError(
                    f"{where}: file name {name!r} does not follow the MSMT17 pattern "
                    f"(e.g. 0000_000_01_0303morning_0008_0.jpg, camera in the third field)"
                )
            cam = int(parts[2])
            if not 1 <= cam <= _MSMT_CAMERAS:
                raise DataError(f"{where}: camera {cam} is outside 1..{_MSMT_CAMERAS} for MSMT17")
            guard.check(image_dir / rel_path, f"line {line_no}", shown=rel_path)
            items.append(ReIDImage(image_dir / rel_path, pid, cam - 1))
    if not items:
        raise DataError(f"{list_path}: no images listed")
    return items


@register_dataset("msmt17", task=IMAGE_REID, aliases=("msmt",), title="MSMT17",
                  description="Wei et al., CVPR 2018: 4,101 identities, 126,441 images, 15 cameras.")
def read_msmt17(root: str | Path, *, include_val: bool = False, allow_outside_root: bool = False) -> ImageReIDSplit:
    """Read MSMT17 (V1 or V2) from ``root`` (holding the ``list_*.txt`` files, directly or
    under ``MSMT17_V1/`` / ``MSMT17_V2/``).

    Args:
        include_val: add ``list_val.txt`` to training. Off by default: published
            results train on ``list_train.txt`` alone (torchreid's note).
        allow_outside_root: accept listed paths resolving outside the dataset folder.
    """
    base, train_dir, test_dir = _find_msmt_root(Path(root))
    guard = PathGuard(base, base / "list_train.txt", allow_outside_root)
    train = _read_msmt_list(base / "list_train.txt", train_dir, guard)
    if include_val:
        train = train + _read_msmt_list(base / "list_val.txt", train_dir, guard)
    query = _read_msmt_list(base / "list_query.txt", test_dir, guard)
    gallery = _read_msmt_list(base / "list_gallery.txt", test_dir, guard)
    return ImageReIDSplit(train, query, gallery, relabel_map(train), {}, "msmt17")


# name -> reader, in registration order (kept for callers of the old table)
IMAGE_REID_DATASETS = {spec.name: spec.load for spec in specs(IMAGE_REID, load_all=False)}


def image_reid_key(name: str) -> str | None:
    """The :data:`IMAGE_REID_DATASETS` key that ``name`` means (any spelling
    :func:`~plip.data.datasets.normalize_name` accepts, or an alias such as ``market``), or ``None``."""
    spec = find_dataset(name, IMAGE_REID)
    return spec.name if spec is not None else None


def read_image_reid(name: str, root: str | Path, **options: Any) -> ImageReIDSplit:
    """Read the image ReID dataset ``name`` (one of :data:`IMAGE_REID_DATASETS`); ``options``
    go to its reader (``allow_outside_root``, ``include_val`` for MSMT17)."""
    key = image_reid_key(name)
    if key is None:
        raise DataError(
            f"unknown image ReID dataset {name!r}; choose one of {', '.join(IMAGE_REID_DATASETS)}"
        )
    return IMAGE_REID_DATASETS[key](root, **options)
