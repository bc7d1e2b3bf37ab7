"""Synthetic people in the layouts of Market-1501 (image ReID) and PA-100K (attributes).

Both draw the same identities as :func:`~.writer.generate_dataset` for a seed (image ``n``
of person ``i`` uses the random stream ``(seed, 1, i, n)``), so the three formats of one
seed show the same people. Output is byte-identical for a given seed.

``write_market1501(out_dir, ...)``::

    out_dir/bounding_box_train/0001_c3s2_000125_00.jpg   training identities
    out_dir/query/0081_c1s4_010325_00.jpg                 test identities, first shot(s)
    out_dir/bounding_box_test/0081_c5s1_010350_00.jpg     test identities, other shots,
                             0000_c2s3_020100_00.jpg      + distractors (background, no person)
                             -1_c4s6_020125_00.jpg        + junk (a body part)
    out_dir/synth_info.json

Names follow Market-1501 (``PPPP_cCsS_FFFFFF_00.jpg``: person, camera 1..6, sequence
1..6, frame); images are 128x64 as in the release. A person's shots are spread over
distinct cameras, so every query has a cross-camera match. As in the real set, person
``0000`` (distractors) and ``-1`` (junk) appear in the gallery only; readers (plip's,
torchreid's, fast-reid's) drop junk and keep distractors in the gallery.

``write_pa100k(out_dir, ...)``::

    out_dir/annotation.mat     train/val/test_images_name, train/val/test_label, attributes
    out_dir/data/000001.jpg    256x128 images
    out_dir/synth_info.json

Labels are PA-100K's 26 attributes (:data:`plip.data.attribute_names.PA100K_ATTRIBUTES`)
of what was drawn: gender, viewpoint (per image), cap as ``Hat``, bags, sleeves, coat,
lower garment. Attributes the renderer never draws (age other than adult, glasses, shoulder
bag, held objects, patterns and logos, boots) are 0 for everyone; ``Age18-60`` is 1.
Splits are by person with the ``split`` fractions.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ...errors import ConfigError
from ...version import __version__
from ..attribute_names import PA100K_ATTRIBUTES
from .identity import Identity, sample_identities
from .render import render_background, render_image
from .variation import IMAGE_HEIGHT, IMAGE_WIDTH, Variation, sample_variation
from ...utils.io import atomic_write_bytes
from .writer import INFO_JSON, MARKER, PA100K_ANNOTATION, _prepare_folder, _write_json, split_sizes

__all__ = ["MarketDataset", "PA100KDataset", "write_market1501", "write_pa100k", "pa100k_labels", "SYNTH_FORMATS"]

MARKET_SIZE = (128, 64)  # (H, W) of the Market-1501 crops
MARKET_MAX_PID = 1501  # torchreid asserts 0 <= pid <= 1501 for Market-1501
MARKET_CAMERAS = 6
SYNTH_FORMATS = ("synthpedes", "market1501", "pa100k")


@dataclass(frozen=True)
class MarketDataset:
    """Summary of a Market-1501-format folder."""

    root: Path
    train_ids: int
    test_ids: int
    counts: dict[str, int]  # images per folder, and distractors / junk in the gallery


@dataclass(frozen=True)
class PA100KDataset:
    """Summary of a PA-100K-format folder."""

    root: Path
    images: int
    split_images: dict[str, int]


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _shot(ident: Identity, seed: int, n: int) -> tuple[Variation, Image.Image]:
    variation = sample_variation(np.random.default_rng([seed, 1, ident.person_id, n]))
    return variation, render_image(ident, variation)


def _check_common(identities: int, images_per_id: int, jpeg_quality: int) -> None:
    if identities < 1 or images_per_id < 1:
        raise ConfigError(f"identities and images_per_id must be positive, got {identities}, {images_per_id}")
    if not 1 <= jpeg_quality <= 95:
        raise ConfigError(f"jpeg_quality must be in 1..95, got {jpeg_quality}")


def write_market1501(
    out_dir: str | os.PathLike,
    identities: int = 100,
    images_per_id: int = 4,
    seed: int = 0,
    *,
    split: Sequence[float] = (0.7, 0.1, 0.2),
    share: float = 0.35,
    jpeg_quality: int = 90,
    progress: bool = True,
    overwrite: bool = False,
) -> MarketDataset:
    """Render synthetic people as a Market-1501 folder (see the module docstring).

    Args:
        identities: people (ids 1..identities, at most 1501 as in Market-1501).
        images_per_id: shots per person (>= 2: a test person needs a query and a gallery shot).
        split: train / val / test fractions of the people; val joins train (Market-1501
            has no validation split), test people make the query and the gallery.
        share, jpeg_quality, progress, overwrite: as in :func:`~.writer.generate_dataset`.
    """
    _check_common(identities, images_per_id, jpeg_quality)
    if images_per_id < 2:
        raise ConfigError(f"market1501 needs images_per_id >= 2 (a query and a gallery shot), got {images_per_id}")
    if identities > MARKET_MAX_PID:
        raise ConfigError(f"market1501 person ids go up to {MARKET_MAX_PID}, got identities={identities}")
    train, val, test = split_sizes(identities, split)
    if test < 1:
        raise ConfigError(f"market1501 needs test identities for query and gallery; split {tuple(split)} gives none")
    n_train = train + val
    root = Path(out_dir)
    _prepare_folder(root, overwrite)
    (root / MARKER).write_bytes(b"")
    folders = {name: root / name for name in ("bounding_box_train", "query", "bounding_box_test")}
    for folder in folders.values():
        folder.mkdir()
    counts = dict.fromkeys(("bounding_box_train", "query", "bounding_box_test", "distractors", "junk"), 0)
    size = (MARKET_SIZE[1], MARKET_SIZE[0])
    frame = 0

    def save(folder: str, pid: str, camera: int, sequence: int, image: Image.Image) -> None:
        nonlocal frame
        frame += 25  # one detection every 25 frames, like a sampled video stream
        name = f"{pid}_c{camera}s{sequence}_{frame:06d}_00.jpg"
        atomic_write_bytes(folders[folder] / name, _jpeg(image.resize(size, Image.Resampling.BOX), jpeg_quality))
        counts[folder] += 1

    people = sample_identities(identities, seed, share=share)
    n_query = max(1, images_per_id // 3)
    for ident in tqdm(people, unit="id", desc="plip synth market1501", disable=not progress):
        rng = np.random.default_rng([seed, 3, ident.person_id])
        cameras = rng.permutation(MARKET_CAMERAS) + 1  # shots cycle over distinct cameras
        pid = f"{ident.person_id:04d}"
        test_person = ident.person_id > n_train
        for n in range(1, images_per_id + 1):
            _, image = _shot(ident, seed, n)
            camera, sequence = int(cameras[(n - 1) % MARKET_CAMERAS]), int(rng.integers(1, 7))
            folder = "bounding_box_train" if not test_person else ("query" if n <= n_query else "bounding_box_test")
            save(folder, pid, camera, sequence, image)
        if test_person:
            # one distractor (background only) and one junk crop (the lower body) per test person
            variation = sample_variation(np.random.default_rng([seed, 4, ident.person_id]))
            save("bounding_box_test", "0000", int(rng.integers(1, 7)), int(rng.integers(1, 7)),
                 render_background(variation))  # fmt: skip
            _, image = _shot(ident, seed, images_per_id + 1)
            top = int(rng.uniform(0.45, 0.6) * IMAGE_HEIGHT)
            save("bounding_box_test", "-1", int(rng.integers(1, 7)), int(rng.integers(1, 7)),
                 image.crop((0, top, IMAGE_WIDTH, IMAGE_HEIGHT)))  # fmt: skip
            counts["distractors"] += 1
            counts["junk"] += 1
    info = {
        "generator": "plip.data.synthetic", "format": "market1501", "plip_version": __version__, "seed": seed,
        "identities": identities, "images_per_id": images_per_id, "image_size": list(MARKET_SIZE),
        "train_ids": [1, n_train], "test_ids": [n_train + 1, identities], "counts": counts, "share": share,
        "split_fractions": list(split), "jpeg_quality": jpeg_quality,
    }  # fmt: skip
    _write_json(root / INFO_JSON, info, indent=2)
    return MarketDataset(root, n_train, identities - n_train, counts)


def pa100k_labels(ident: Identity, variation: Variation) -> np.ndarray:
    """The 26 PA-100K labels (0/1, in :data:`PA100K_ATTRIBUTES` order) of one rendered image."""
    on = {
        "Female": ident.gender == "female",
        "Age18-60": True,
        "Front": variation.view == "front",
        "Side": variation.view == "side",
        "Back": variation.view == "back",
        "Hat": ident.cap_colour is not None,
        "HandBag": ident.bag_kind == "handbag",
        "Backpack": ident.bag_kind == "backpack",
        "ShortSleeve": ident.sleeve in ("short", "none"),
        "LongSleeve": ident.sleeve == "long",
        "LongCoat": ident.upper_kind == "coat",
        "Trousers": ident.lower_kind == "trousers",
        "Shorts": ident.lower_kind == "shorts",
        "Skirt&Dress": ident.lower_kind in ("skirt", "dress"),
    }
    return np.array([int(on.get(name, False)) for name in PA100K_ATTRIBUTES], dtype=np.uint8)


def _mat_cells(names: list[str]) -> np.ndarray:
    cells = np.empty((len(names), 1), dtype=object)
    for i, name in enumerate(names):
        cells[i, 0] = name
    return cells


def write_pa100k(
    out_dir: str | os.PathLike,
    identities: int = 100,
    images_per_id: int = 4,
    seed: int = 0,
    *,
    split: Sequence[float] = (0.8, 0.1, 0.1),
    share: float = 0.35,
    jpeg_quality: int = 90,
    progress: bool = True,
    overwrite: bool = False,
) -> PA100KDataset:
    """Render synthetic people as a PA-100K folder (see the module docstring).

    Args:
        split: train / val / test fractions of the people (PA-100K: 8:1:1 of its images).
        identities, images_per_id, seed, share, jpeg_quality, progress, overwrite: as in
            :func:`~.writer.generate_dataset`.
    """
    from scipy.io import savemat

    _check_common(identities, images_per_id, jpeg_quality)
    sizes = split_sizes(identities, split)
    bounds = np.cumsum((0,) + sizes)
    root = Path(out_dir)
    _prepare_folder(root, overwrite)
    (root / MARKER).write_bytes(b"")
    (root / "data").mkdir()
    names: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    labels: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    index = 0
    people = sample_identities(identities, seed, share=share)
    for ident in tqdm(people, unit="id", desc="plip synth pa100k", disable=not progress):
        split_name = ("train", "val", "test")[int(np.searchsorted(bounds, ident.person_id, side="left")) - 1]
        for n in range(1, images_per_id + 1):
            variation, image = _shot(ident, seed, n)
            index += 1
            name = f"{index:06d}.jpg"
            atomic_write_bytes(root / "data" / name, _jpeg(image, jpeg_quality))
            names[split_name].append(name)
            labels[split_name].append(pa100k_labels(ident, variation))
    width = len(PA100K_ATTRIBUTES)
    mat = {"attributes": _mat_cells(list(PA100K_ATTRIBUTES))}
    for split_name in names:
        mat[f"{split_name}_images_name"] = _mat_cells(names[split_name])
        rows = labels[split_name]
        mat[f"{split_name}_label"] = np.stack(rows) if rows else np.zeros((0, width), dtype=np.uint8)
    buffer = io.BytesIO()
    savemat(buffer, mat)
    atomic_write_bytes(root / PA100K_ANNOTATION, buffer.getvalue())
    split_images = {k: len(v) for k, v in names.items()}
    info = {
        "generator": "plip.data.synthetic", "format": "pa100k", "plip_version": __version__, "seed": seed,
        "identities": identities, "images_per_id": images_per_id, "images": index,
        "image_size": [IMAGE_HEIGHT, IMAGE_WIDTH], "split_fractions": list(split), "split_images": split_images,
        "share": share, "jpeg_quality": jpeg_quality,
    }  # fmt: skip
    _write_json(root / INFO_JSON, info, indent=2)
    return PA100KDataset(root, index, split_images)
