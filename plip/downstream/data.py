"""Datasets and image transforms for training and evaluating the downstream models.

Training transforms follow the baselines (BoT: resize, horizontal flip, 10-pixel pad +
random crop, random erasing; MGN: resize + flip; Rethink PAR: resize, pad + crop, flip),
with PLIP's preprocessing underneath: PIL bicubic resize and the SYNTH-PEDES mean/std the
backbone was pre-trained with. Evaluation uses exactly :class:`~plip.data.transforms.ImagePreprocess`
at the model's input size. Random transforms draw from torch's global generator, which the
training engine seeds per sample (reproducible, independent of workers and ranks).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data.images import load_image
from ..data.image_reid import ReIDImage
from ..data.transforms import eval_transform, train_transform

__all__ = ["train_transform", "eval_transform", "ReIDImageDataset", "AttributeImageDataset"]


class ReIDImageDataset(Dataset):
    """Images of a ReID split as ``{"images", "pids", "camids"}``.

    Args:
        items: the split's images (:class:`~plip.data.image_reid.ReIDImage`).
        transform: PIL image -> tensor.
        pid_to_label: maps raw person ids to classifier labels (training); ``None`` keeps
            the raw ids (query / gallery).
    """

    def __init__(
        self, items: Sequence[ReIDImage], transform: Callable, pid_to_label: dict[int, int] | None = None
    ) -> None:
        self.items = list(items)
        self.transform = transform
        self.pid_to_label = pid_to_label

    def __len__(self) -> int:
        return len(self.items)

    @property
    def labels(self) -> list[int]:
        """The identity of every image (classifier labels when ``pid_to_label`` is set)."""
        if self.pid_to_label is None:
            return [item.person_id for item in self.items]
        return [self.pid_to_label[item.person_id] for item in self.items]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.items[index]
        image = load_image(item.image_path, where=f"image {index}")
        pid = item.person_id if self.pid_to_label is None else self.pid_to_label[item.person_id]
        return {
            "images": self.transform(image),
            "pids": torch.tensor(pid, dtype=torch.long),
            "camids": torch.tensor(item.camera_id, dtype=torch.long),
        }


class AttributeImageDataset(Dataset):
    """Images with attribute labels as ``{"images", "labels"}`` (labels float, ``(A,)``)."""

    def __init__(self, paths: Sequence, labels: np.ndarray, transform: Callable) -> None:
        if len(paths) != len(labels):
            raise ValueError(f"{len(paths)} images but {len(labels)} label rows")
        self.paths = list(paths)
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.float32)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = load_image(self.paths[index], where=f"image {index}")
        return {"images": self.transform(image), "labels": self.labels[index]}
