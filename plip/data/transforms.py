"""Image preprocessing exactly as the official PLIP pipeline does it.

PIL decode -> RGB -> resize to (H, W) with PIL's bicubic filter (torchvision's ``Resize``
on a PIL image) -> tensor in [0, 1] -> normalise with the SYNTH-PEDES statistics. The
published numbers were computed this way; a tensor-side resize differs measurably, so it is
never the default.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from ..models.config import PreprocessConfig
from .images import DEFAULT_MAX_PIXELS, load_image

_PIL_FILTERS = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


class ImagePreprocess:
    """Callable turning an image (path, PIL image or uint8 array) into a ``(3, H, W)`` tensor.

    ``max_pixels`` bounds the decoded size of an image file (see :func:`~plip.data.images.load_image`).
    """

    def __init__(self, config: PreprocessConfig | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
        self.config = config or PreprocessConfig()
        self.max_pixels = max_pixels
        self.size = tuple(self.config.image_size)
        self._filter = _PIL_FILTERS[self.config.interpolation]
        self._scale = (1.0 / (255.0 * np.asarray(self.config.std, dtype=np.float32))).reshape(1, 1, 3)
        self._shift = (np.asarray(self.config.mean, dtype=np.float32) / np.asarray(self.config.std, dtype=np.float32)).reshape(1, 1, 3)

    def resize(self, image: Image.Image) -> Image.Image:
        height, width = self.size
        if image.size == (width, height):
            return image
        return image.resize((width, height), self._filter)

    def to_tensor(self, image: Image.Image) -> torch.Tensor:
        """RGB PIL image -> normalised float tensor (no resize).

        Done in NumPy: per-image tensors are tiny, and torch's intra-op threads only add
        synchronisation cost here (20x slower on a busy 2-core machine).
        """
        array = np.asarray(image, dtype=np.float32)
        normalised = array * self._scale - self._shift  # (x / 255 - mean) / std
        return torch.from_numpy(np.ascontiguousarray(normalised.transpose(2, 0, 1)))

    def __call__(self, image: Any, where: str = "image") -> torch.Tensor:
        return self.to_tensor(self.resize(load_image(image, where, max_pixels=self.max_pixels)))

    def __repr__(self) -> str:
        c = self.config
        return (
            f"ImagePreprocess(size={self.size}, interpolation={c.interpolation!r}, "
            f"mean={tuple(c.mean)}, std={tuple(c.std)})"
        )


def train_transform(
    preprocess: PreprocessConfig,
    *,
    flip: bool = True,
    pad: int = 0,
    random_erasing: float = 0.0,
) -> Callable:
    """PIL image -> augmented, normalised ``(3, H, W)`` tensor: person-shaped training augmentation.

    Plain resize to the model's (H, W) (no aspect-changing crop such as ImageNet's
    RandomResizedCrop, which distorts pedestrians), then the ReID baselines' flip / pad + crop
    / random erasing, then PLIP's normalisation. Use it with timm or your own loop:
    ``train_transform(model.preprocess_config, pad=10, random_erasing=0.5)`` is BoT's recipe.

    Args:
        preprocess: input size, mean, std and interpolation (the backbone's).
        flip: random horizontal flip (p = 0.5).
        pad: zero-pad by this many pixels, then randomly crop back to the input size (0: off).
        random_erasing: probability of erasing a random rectangle (area 2-40 %, aspect
            0.3-3.3, as BoT), filled with 0 after normalisation (the mean colour).
    """
    from torchvision import transforms as T

    interpolation = T.InterpolationMode(preprocess.interpolation)
    size = tuple(preprocess.image_size)
    steps: list[Callable] = [T.Resize(size, interpolation=interpolation)]
    if flip:
        steps.append(T.RandomHorizontalFlip(0.5))
    if pad > 0:
        steps += [T.Pad(pad), T.RandomCrop(size)]
    normalise = ImagePreprocess(preprocess)
    steps.append(normalise.to_tensor)
    if random_erasing > 0:
        steps.append(T.RandomErasing(p=random_erasing, scale=(0.02, 0.4), ratio=(0.3, 3.33), value=0))
    return T.Compose(steps)


def eval_transform(preprocess: PreprocessConfig) -> ImagePreprocess:
    """PLIP's inference preprocessing at ``preprocess.image_size``."""
    return ImagePreprocess(preprocess)
