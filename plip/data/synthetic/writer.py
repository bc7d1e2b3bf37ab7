"""Writing a synthetic dataset folder in the SYNTH-PEDES and CUHK-PEDES formats.

Layout of ``generate_dataset(out_dir, ...)``::

    out_dir/
      synthpedes_dataset.json   SYNTH-PEDES annotations (all identities)
      reid_raw.json             CUHK-PEDES annotations with train / val / test splits
      synth_info.json           how the folder was made (seed, counts, splits)
      Part1/<id>/<n>.jpg        the images, ``ids_per_part`` identities per part
      Part2/...
      imgs/Part1 -> ../Part1    CUHK-PEDES readers look under imgs/

Both annotation files use the same relative ``file_path`` (``"Part1/7/1.jpg"``): the
SYNTH-PEDES reader resolves it against ``out_dir`` and the CUHK-PEDES reader against
``out_dir/imgs``, where one relative symlink per part points back to the real folder
(hard links, then copies, where the file system has no symlinks). Images are stored
once.

Identity ids are 1-based and contiguous; the first identities are the training split,
then validation, then test (as in CUHK-PEDES). SYNTH-PEDES entries carry the same
``split`` key as an extra field (the official file has none). Everything is a function
of the seed: image ``n`` of identity ``i`` is drawn from the random stream
``(seed, 1, i, n)`` and its captions from ``(seed, 2, i, n)``, so the output is
byte-identical for any number of worker processes. Files are written atomically (temp
file + rename) and the JSON files last, so an interrupted run leaves no half-written
annotation.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ...errors import ConfigError, DataError
from ...utils.io import atomic_write_bytes
from ...version import __version__
from ..captions import attribute_string, caption_tokens, generate_captions, prompt_caption
from .identity import Identity, sample_identities
from .render import render_image
from .variation import IMAGE_HEIGHT, IMAGE_WIDTH, sample_variation

__all__ = ["SyntheticDataset", "generate_dataset", "split_sizes", "SYNTHPEDES_JSON", "CUHKPEDES_JSON", "INFO_JSON"]

SYNTHPEDES_JSON = "synthpedes_dataset.json"
CUHKPEDES_JSON = "reid_raw.json"
INFO_JSON = "synth_info.json"
MARKER = ".plip_synth"  # written first, so that an interrupted run can be overwritten
IMAGES_DIR = "imgs"
SPLITS = ("train", "val", "test")
_JSON_FILES = (SYNTHPEDES_JSON, CUHKPEDES_JSON, INFO_JSON)
# what the Market-1501 and PA-100K formats (plip.data.synthetic.formats) write besides INFO_JSON
PA100K_ANNOTATION = "annotation.mat"
FORMAT_OUTPUTS = ("bounding_box_train", "query", "bounding_box_test", PA100K_ANNOTATION, "data")


@dataclass(frozen=True)
class SyntheticDataset:
    """Summary of a generated folder."""

    root: Path
    identities: int
    images: int
    captions: int
    split_ids: dict[str, tuple[int, int]]  # split -> (first id, last id), inclusive; (0, -1) if empty

    @property
    def synthpedes_json(self) -> Path:
        return self.root / SYNTHPEDES_JSON

    @property
    def cuhkpedes_json(self) -> Path:
        return self.root / CUHKPEDES_JSON


def split_sizes(identities: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """Numbers of train / val / test identities for the given fractions.

    Val and test get ``fraction * identities`` rounded (half up), at least one when their
    fraction is positive; train gets the rest. With very few identities train keeps at
    least one, taken from val first, then from test.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ConfigError(f"split fractions must be three non-negative numbers summing to 1, got {tuple(fractions)}")
    if fractions[0] == 0:
        raise ConfigError(f"the train fraction must be positive, got {tuple(fractions)}")
    val, test = (max(1, int(f * identities + 0.5)) if f > 0 else 0 for f in fractions[1:])
    while identities - val - test < 1 and val + test > 0:
        if val > 0:
            val -= 1
        else:
            test -= 1
    return identities - val - test, val, test


def _write_json(path: Path, obj: object, indent: int | None = None) -> None:
    atomic_write_bytes(path, (json.dumps(obj, ensure_ascii=False, indent=indent) + "\n").encode("utf-8"))


@dataclass(frozen=True)
class _Task:
    root: str
    identity: Identity
    seed: int
    images_per_id: int
    part: int
    jpeg_quality: int
    captions_per_image: tuple[int, int]


def _render_identity(task: _Task) -> list[tuple[str, list[str]]]:
    """Render, save and caption the images of one identity (runs in worker processes)."""
    ident = task.identity
    desc = ident.description()
    folder = Path(task.root) / f"Part{task.part}" / str(ident.person_id)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for n in range(1, task.images_per_id + 1):
        variation = sample_variation(np.random.default_rng([task.seed, 1, ident.person_id, n]))
        buffer = io.BytesIO()
        render_image(ident, variation).save(buffer, format="JPEG", quality=task.jpeg_quality)
        atomic_write_bytes(folder / f"{n}.jpg", buffer.getvalue())
        rng = np.random.default_rng([task.seed, 2, ident.person_id, n])
        low, high = task.captions_per_image
        captions = generate_captions(desc, rng, int(rng.integers(low, high + 1)))
        out.append((f"Part{task.part}/{ident.person_id}/{n}.jpg", captions))
    return out


def _prepare_folder(root: Path, overwrite: bool) -> None:
    """Create ``root`` or clear a previous generator output in it (of any format)."""
    if root.exists() and not root.is_dir():
        raise DataError(f"output path {root} exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    entries = list(root.iterdir())
    if not entries:
        return
    if not ((root / MARKER).is_file() or (root / INFO_JSON).is_file()):
        raise DataError(f"output folder {root} is not empty and was not made by `plip synth`; choose an empty folder")
    if not overwrite:
        raise DataError(
            f"output folder {root} already holds a synthetic dataset; pass overwrite=True (--overwrite) to replace it"
        )
    # Annotations first: a folder whose images are half deleted must not look valid.
    for name in (*_JSON_FILES, PA100K_ANNOTATION):
        (root / name).unlink(missing_ok=True)
    for entry in entries:
        if entry.name in (IMAGES_DIR, *FORMAT_OUTPUTS) or (entry.name.startswith("Part") and entry.name[4:].isdigit()):
            if entry.is_symlink() or entry.is_file():
                entry.unlink()
            else:
                shutil.rmtree(entry)


def _link_images(root: Path, parts: int) -> str:
    """Make ``root/imgs/PartK`` resolve to ``root/PartK``; returns the method used."""
    images = root / IMAGES_DIR
    images.mkdir(exist_ok=True)
    try:
        for part in range(1, parts + 1):
            link = images / f"Part{part}"
            if not link.exists():
                link.symlink_to(Path("..") / f"Part{part}", target_is_directory=True)
        return "symlink"
    except (OSError, NotImplementedError):
        pass
    method = "hardlink"
    for part in range(1, parts + 1):
        for file in sorted((root / f"Part{part}").rglob("*.jpg")):
            target = images / file.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(file, target)
            except OSError:
                shutil.copyfile(file, target)
                method = "copy"
    return method


def generate_dataset(
    out_dir: str | os.PathLike,
    identities: int = 1000,
    images_per_id: int = 4,
    seed: int = 0,
    *,
    split: Sequence[float] = (0.7, 0.1, 0.2),
    ids_per_part: int = 1000,
    captions_per_image: tuple[int, int] = (2, 3),
    share: float = 0.35,
    jpeg_quality: int = 90,
    workers: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> SyntheticDataset:
    """Render a synthetic person dataset into ``out_dir`` (see the module docstring).

    Args:
        out_dir: output folder; must be empty, missing, or (with ``overwrite``) an
            earlier output of this function.
        identities: number of people (ids 1..identities).
        images_per_id: images per person, each a different camera shot.
        seed: everything (attributes, shots, captions) is a function of it.
        split: fractions of identities for train / val / test (contiguous id ranges).
        ids_per_part: identities per ``PartK`` folder.
        captions_per_image: inclusive range of the number of captions per image.
        share: probability that an identity is a near-copy of a recent one.
        jpeg_quality: JPEG quality of the images.
        workers: worker processes; ``None`` uses up to 8 CPU cores, 0 renders in this
            process. The output does not depend on it.
        progress: show a progress bar on stderr.
        overwrite: replace an earlier output in ``out_dir``.
    """
    if identities < 1 or images_per_id < 1 or ids_per_part < 1:
        raise ConfigError(
            "identities, images_per_id and ids_per_part must be positive, "
            f"got {identities}, {images_per_id}, {ids_per_part}"
        )
    low, high = captions_per_image
    if not 1 <= low <= high <= 5:
        raise ConfigError(f"captions_per_image must be a range within 1..5, got {captions_per_image}")
    if not 1 <= jpeg_quality <= 95:
        raise ConfigError(f"jpeg_quality must be in 1..95, got {jpeg_quality}")
    sizes = split_sizes(identities, split)
    root = Path(out_dir)
    _prepare_folder(root, overwrite)
    (root / MARKER).write_bytes(b"")

    people = sample_identities(identities, seed, share=share)
    tasks = [
        _Task(
            str(root), ident, seed, images_per_id, (ident.person_id - 1) // ids_per_part + 1, jpeg_quality, (low, high)
        )
        for ident in people
    ]
    if workers is None:
        workers = min(os.cpu_count() or 1, 8)
    workers = min(workers, len(tasks))
    bar = tqdm(total=len(tasks), unit="id", desc="plip synth", disable=not progress)
    try:
        if workers <= 1:
            results = []
            for task in tasks:
                results.append(_render_identity(task))
                bar.update()
        else:
            with multiprocessing.Pool(workers) as pool:
                results = []
                for result in pool.imap(_render_identity, tasks, chunksize=4):
                    results.append(result)
                    bar.update()
    finally:
        bar.close()

    bounds = np.cumsum((0,) + sizes)
    split_of = {pid: SPLITS[int(np.searchsorted(bounds, pid, side="left")) - 1] for pid in range(1, identities + 1)}
    synth_entries, cuhk_entries = [], []
    n_captions = 0
    for ident, shots in zip(people, results, strict=True):
        desc = ident.description()
        attributes = [attribute_string(desc)]
        prompt = prompt_caption(desc)
        split_name = split_of[ident.person_id]
        for file_path, captions in shots:
            n_captions += len(captions)
            synth_entries.append(
                {
                    "id": ident.person_id,
                    "file_path": file_path,
                    "attributes": attributes,
                    "captions": captions,
                    "prompt_caption": prompt,
                    "split": split_name,
                }
            )
            cuhk_entries.append(
                {
                    "split": split_name,
                    "captions": captions,
                    "file_path": file_path,
                    "processed_tokens": [caption_tokens(c) for c in captions],
                    "id": ident.person_id,
                }
            )

    parts = (identities - 1) // ids_per_part + 1
    link_method = _link_images(root, parts)
    split_ids = {
        name: (int(bounds[i]) + 1, int(bounds[i + 1])) if sizes[i] else (0, -1) for i, name in enumerate(SPLITS)
    }
    info = {
        "generator": "plip.data.synthetic",
        "plip_version": __version__,
        "seed": seed,
        "identities": identities,
        "images_per_id": images_per_id,
        "images": len(synth_entries),
        "captions": n_captions,
        "image_size": [IMAGE_HEIGHT, IMAGE_WIDTH],
        "ids_per_part": ids_per_part,
        "parts": parts,
        "split_fractions": list(split),
        "split_ids": {k: list(v) for k, v in split_ids.items()},
        "captions_per_image": [low, high],
        "share": share,
        "jpeg_quality": jpeg_quality,
        "imgs_link": link_method,
    }
    _write_json(root / CUHKPEDES_JSON, cuhk_entries)
    _write_json(root / SYNTHPEDES_JSON, synth_entries)
    _write_json(root / INFO_JSON, info, indent=2)
    return SyntheticDataset(root, identities, len(synth_entries), n_captions, split_ids)
