"""Training data for text-image tasks: (image, caption, identity) samples of a text-ReID split.

Randomness (flip, caption choice, attribute masking) uses the global generators, which the
engine seeds per sample from (seed, epoch, position): runs resume and scale across ranks and
workers reproducibly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import torch
from torch.utils.data import Dataset

from ..errors import DataError

CaptionMode = Literal["random", "pairs"]


@dataclass(frozen=True)
class _Item:
    image_path: str
    label: int
    captions: tuple[tuple[int, ...], ...]  # token ids, tokenised once


def relabel(person_ids: Sequence[int]) -> dict[int, int]:
    """Person ids -> contiguous labels ``0..C-1`` (sorted by id)."""
    return {pid: label for label, pid in enumerate(sorted(set(person_ids)))}


class CaptionedImages(Dataset):
    """Samples ``{"image", "input_ids", "label"}`` (+ ``"masked_ids"``, ``"target_mask"``).

    Args:
        samples: objects with ``image_path``, ``person_id`` and ``captions`` (a text-ReID split).
        preprocess: image -> normalised tensor (the model's ``preprocess``).
        tokenizer: a :class:`plip.tokenizer.PLIPTokenizer`.
        mode: ``"random"``: one sample per image, a random caption each time (pre-training);
            ``"pairs"``: one sample per (image, caption) pair (CMPM/C fine-tuning).
        flip_prob: probability of a horizontal flip (the paper's only augmentation).
        masker: an :class:`~plip.training.masking.AttributeMasker`; when given, each sample
            also carries a masked copy of its caption, at ``mask_schedule(epoch)`` of its
            attribute phrases.
    """

    def __init__(
        self,
        samples: Sequence[Any],
        preprocess,
        tokenizer,
        *,
        mode: CaptionMode = "random",
        flip_prob: float = 0.5,
        masker=None,
        mask_schedule=None,
        max_samples: int | None = None,
    ) -> None:
        if mode not in ("random", "pairs"):
            raise DataError(f"caption mode must be 'random' or 'pairs', got {mode!r}")
        samples = list(samples)[:max_samples] if max_samples else list(samples)
        if not samples:
            raise DataError("the training split has no samples")
        label_of = relabel([s.person_id for s in samples])
        flat = [c for s in samples for c in s.captions]
        token_ids = iter(tokenizer.encode(flat))
        items = []
        for index, sample in enumerate(samples):
            if not sample.captions:
                raise DataError(f"training sample {index} ({sample.image_path}) has no caption")
            captions = tuple(tuple(next(token_ids)) for _ in sample.captions)
            if mode == "random":
                items.append(_Item(sample.image_path, label_of[sample.person_id], captions))
            else:
                items += [_Item(sample.image_path, label_of[sample.person_id], (c,)) for c in captions]
        self.items = items
        self.labels = [item.label for item in items]
        self.num_classes = len(label_of)
        self.person_ids = sorted(label_of)
        self.preprocess = preprocess
        self.flip_prob = flip_prob
        self.masker = masker
        self.mask_schedule = mask_schedule
        self.mask_ratio = mask_schedule(0) if mask_schedule else 0.0

    def set_epoch(self, epoch: int) -> None:
        """Called by the engine before each epoch: the IAP mask ratio follows the schedule."""
        if self.mask_schedule is not None:
            self.mask_ratio = float(self.mask_schedule(epoch))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        image = self.preprocess(item.image_path, where=item.image_path)
        if self.flip_prob > 0 and random.random() < self.flip_prob:
            image = image.flip(-1)
        caption = item.captions[random.randrange(len(item.captions))] if len(item.captions) > 1 else item.captions[0]
        sample = {"image": image, "input_ids": torch.tensor(caption, dtype=torch.long), "label": item.label}
        if self.masker is not None:
            masked, target = self.masker(sample["input_ids"].unsqueeze(0), None, self.mask_ratio)
            sample["masked_ids"], sample["target_mask"] = masked[0], target[0]
        return sample


class CollateCaptioned:
    """Stack images, pad captions (and masked copies) to the longest in the batch."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad = pad_token_id

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        lengths = [len(s["input_ids"]) for s in samples]
        width = max(lengths)
        input_ids = torch.full((len(samples), width), self.pad, dtype=torch.long)
        attention = torch.zeros((len(samples), width), dtype=torch.long)
        for row, (sample, n) in enumerate(zip(samples, lengths)):
            input_ids[row, :n] = sample["input_ids"]
            attention[row, :n] = 1
        batch = {
            "images": torch.stack([s["image"] for s in samples]),
            "input_ids": input_ids,
            "attention_mask": attention,
            "labels": torch.tensor([s["label"] for s in samples], dtype=torch.long),
        }
        if "masked_ids" in samples[0]:
            masked = input_ids.clone()
            target = torch.zeros_like(input_ids, dtype=torch.bool)
            for row, (sample, n) in enumerate(zip(samples, lengths)):
                masked[row, :n] = sample["masked_ids"]
                target[row, :n] = sample["target_mask"]
            batch["masked_ids"], batch["target_mask"] = masked, target
        return batch
