"""Reading images from anything a user may hold: paths, PIL images, uint8 arrays."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import ImageLoadError, PlipError

ImageInput = Union[str, os.PathLike, Image.Image, np.ndarray]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm")

#: Default limit on decoded pixels (width x height) of one image: PIL's own warning threshold
#: (~89.5 M pixels, ~270 MB as RGB). Larger images are refused before decoding.
DEFAULT_MAX_PIXELS: int = int(Image.MAX_IMAGE_PIXELS or 89_478_485)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode (L, LA, P, RGBA, CMYK, I;16 ...) to RGB, as the official pipeline does."""
    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # avoids PIL's palette-transparency warning
    if image.mode.startswith("I") or image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        span = float(array.max() - array.min()) or 1.0
        image = Image.fromarray(((array - array.min()) * 255.0 / span).astype(np.uint8))
    return image.convert("RGB")


def load_image(item: Any, where: str = "image", max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Return ``item`` as an RGB PIL image; raise :class:`ImageLoadError` naming it otherwise.

    A file whose header declares more than ``max_pixels`` pixels is refused before it is
    decoded (``None``: only PIL's own decompression-bomb limit applies).
    """
    if isinstance(item, Image.Image):
        return to_rgb(item)
    if isinstance(item, (str, os.PathLike)):
        path = os.fspath(item)
        try:
            with Image.open(path) as handle:
                width, height = handle.size
                if max_pixels is not None and width * height > max_pixels:
                    raise ImageLoadError(
                        f"{where}: refused to decode {path}: {width}x{height} = {width * height} pixels "
                        f"exceeds the limit of {max_pixels} pixels (max_pixels / --max-pixels)"
                    )
                handle.load()
                return to_rgb(handle)
        except FileNotFoundError:
            raise ImageLoadError(f"{where}: file not found: {path}") from None
        except Image.DecompressionBombError as err:
            raise ImageLoadError(f"{where}: refused to decode {path}: {err}") from None
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise ImageLoadError(f"{where}: cannot read image {path}: {err}") from None
    if isinstance(item, np.ndarray):
        return to_rgb(_array_to_image(item, where))
    raise ImageLoadError(
        f"{where}: unsupported type {type(item).__name__} (expected a path, a PIL image or a uint8 array)"
    )


def _array_to_image(array: np.ndarray, where: str) -> Image.Image:
    if array.dtype != np.uint8:
        raise ImageLoadError(f"{where}: arrays must be uint8 (HxWx3, HxWx4 or HxW), got dtype {array.dtype}")
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4)):
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        if array.shape[0] == 0 or array.shape[1] == 0:
            raise ImageLoadError(f"{where}: empty array of shape {array.shape}")
        return Image.fromarray(np.ascontiguousarray(array))
    raise ImageLoadError(f"{where}: arrays must be HxWx3, HxWx4 or HxW, got shape {array.shape}")


def find_images(inputs: list[str]) -> tuple[str, list[str]]:
    """(root, relative paths) of the images named by files and folders, sorted.

    Folders are walked recursively, following symbolic links to folders and files (the
    layout ``plip synth`` writes links its images); a link cycle is walked once. Paths keep
    the names the user sees (links are not resolved).
    """
    paths: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            paths += sorted(_walk_images(p))
        elif p.is_file():
            paths.append(os.path.abspath(p))
        elif p.is_symlink():
            raise PlipError(f"{item}: a broken symbolic link (to {os.readlink(p)})")
        else:
            raise PlipError(f"{item}: no such file or folder")
    if not paths:
        raise PlipError(
            f"no images found in {', '.join(inputs)} (looked for {', '.join(IMAGE_SUFFIXES)}, "
            "recursively, following symbolic links)"
        )
    root = os.path.commonpath(paths) if len(paths) > 1 else os.path.dirname(paths[0])
    if os.path.isfile(root):
        root = os.path.dirname(root)
    return root, [os.path.relpath(p, root) for p in paths]


def _walk_images(folder: Path) -> list[str]:
    found: list[str] = []
    seen: set[str] = set()
    for top, dirs, files in os.walk(os.path.abspath(folder), followlinks=True):
        real = os.path.realpath(top)
        if real in seen:  # a link back to a folder already walked
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        for name in files:
            path = os.path.join(top, name)
            if name.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(path):
                found.append(path)
    return found
