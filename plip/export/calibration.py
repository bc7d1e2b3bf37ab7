"""Images for the int8 calibration and the accuracy gate, in the graph's input convention."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import PlipError
from .conventions import InputConvention, affine_to_model

__all__ = ["calibration_images", "to_convention", "synthetic_images", "CALIBRATION_SEED", "IMAGE_SUFFIXES"]

#: Seed of the synthetic calibration gallery: not the gate's (2026) nor a training seed.
CALIBRATION_SEED = 7
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def to_convention(images: torch.Tensor, convention: InputConvention, mean, std) -> torch.Tensor:
    """The model's preprocessed tensor -> the tensor a consumer with ``convention`` feeds."""
    scale, shift = affine_to_model(convention, mean, std)
    scale_t = torch.tensor(scale).view(1, 3, 1, 1)
    shift_t = torch.tensor(shift).view(1, 3, 1, 1)
    out = (images - shift_t) / scale_t
    return out.flip(1) if convention.channels == "bgr" else out


def _preprocess_all(model: Any, paths: list[str]) -> torch.Tensor:
    return torch.stack([model.preprocess(p, where=p) for p in paths])


def synthetic_images(model: Any, count: int, seed: int = CALIBRATION_SEED) -> torch.Tensor:
    """``count`` preprocessed images of a freshly generated synthetic gallery."""
    from ..data.synthetic import generate_dataset
    from ..data.textreid import load_text_reid

    identities = max(1, -(-count // 4))
    with tempfile.TemporaryDirectory(prefix="plip-calibration-") as tmp:
        generated = generate_dataset(Path(tmp) / "gallery", identities=identities, images_per_id=4, seed=seed,
                                     progress=False, workers=0)
        paths = load_text_reid("synth-pedes", generated.root, "all").gallery().image_paths[:count]
        return _preprocess_all(model, list(paths))


def folder_images(model: Any, folder: str | os.PathLike, count: int) -> torch.Tensor:
    """Up to ``count`` preprocessed images of ``folder`` (recursive, evenly spread, sorted)."""
    root = Path(folder)
    if not root.is_dir():
        raise PlipError(f"calibration folder {root} does not exist")
    paths = sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise PlipError(f"calibration folder {root} has no images ({', '.join(IMAGE_SUFFIXES)})")
    if len(paths) > count:
        paths = [paths[i] for i in np.linspace(0, len(paths) - 1, count).round().astype(int)]
    return _preprocess_all(model, paths)


def calibration_images(model: Any, source: str | os.PathLike | None, count: int,
                       convention: InputConvention) -> np.ndarray:
    """Calibration batch ``(N, 3, H, W)`` float32 in the graph's input convention."""
    if count < 1:
        raise PlipError(f"calibration_size must be >= 1, got {count}")
    images = synthetic_images(model, count) if source is None else folder_images(model, source, count)
    pre = model.config.preprocess
    return to_convention(images, convention, pre.mean, pre.std).numpy().astype(np.float32)
