"""Raw inputs -> batches -> embeddings: the one encoding loop of images and captions.

``model.encode_image``, ``plip encode``, the evaluators and the demo all go through
:func:`encode_image_items` (images) and :func:`encode_texts` (captions), so ordering,
batching, micro-batching, optimised graphs and bad-image handling are the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import ImageLoadError, PlipError
from ..utils.modes import eval_mode
from . import graphs
from .checks import check_finite_rows
from .micro_batch import image_micro_batch

if TYPE_CHECKING:
    from .model import PLIPModel

__all__ = ["ImageEncoding", "ImageBatch", "PreprocessedImages", "collate_images", "iter_image_batches", "encode_image_items", "encode_images", "encode_texts", "embed_image_batch",
           "embed_token_batch"]


@dataclass
class ImageEncoding:
    """Result of :func:`encode_image_items`.

    Attributes:
        embeddings: ``(len(kept), D)`` float32 CPU embeddings, in input order.
        kept: input positions of the rows of ``embeddings``.
        failures: ``(input position, message)`` of every image that could not be read
            (only with ``skip_bad=True``; otherwise the first one raises).
    """

    embeddings: torch.Tensor
    kept: list[int] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)


class PreprocessedImages(torch.utils.data.Dataset):
    """``(index, tensor or None, error)``: a bad image is reported, never raised inside a worker
    (a worker's exception would reach the user as a multi-process traceback)."""

    def __init__(self, items: Sequence[Any], preprocess, labels: Sequence[str] | None) -> None:
        self.items, self.preprocess, self.labels = items, preprocess, labels

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str]:
        where = self.labels[index] if self.labels is not None else f"image {index}"
        try:
            return index, self.preprocess(self.items[index], where=where), ""
        except ImageLoadError as err:
            return index, None, str(err)


@dataclass
class ImageBatch:
    """One batch of :class:`PreprocessedImages` items, collated by :func:`collate_images`."""

    positions: list[int]  # input positions of the rows of ``images``
    images: torch.Tensor | None  # ``(len(positions), 3, H, W)``, None when no image was readable
    failures: list[tuple[int, str]]  # ``(input position, error)`` of the unreadable ones

    def items(self) -> list[tuple[int, torch.Tensor | None, str]]:
        """The batch as ``(position, tensor or None, error)`` in input order."""
        rows = dict(zip(self.positions, self.images if self.images is not None else []))
        errors = dict(self.failures)
        return [(i, rows.get(i), errors.get(i, "")) for i in sorted([*rows, *errors])]


def collate_images(items: list[tuple[int, torch.Tensor | None, str]]) -> ImageBatch:
    """``collate_fn`` of the image loaders: the readable images stacked into one tensor.

    Stacking happens in the DataLoader worker, so a batch crosses to the main process as one
    shared-memory tensor; a list of tensors sends each through its own file descriptor and
    socket connection, which cost `plip encode` about a third of its time with 1 worker
    (plip-tiny-synth, 512 images).
    """
    good = [(i, t) for i, t, _ in items if t is not None]
    images = torch.stack([t for _, t in good]) if good else None
    return ImageBatch([i for i, _ in good], images, [(i, e) for i, t, e in items if t is None])


def _loader(dataset: PreprocessedImages, batch_size: int, num_workers: int) -> Iterator[list]:
    if num_workers > 0:
        for batch in torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, num_workers=num_workers, shuffle=False,
            persistent_workers=False, collate_fn=collate_images,
        ):
            yield batch.items()
        return
    for start in range(0, len(dataset), batch_size):
        yield [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]


def _check_tensor(images: torch.Tensor, expected: tuple[int, int]) -> torch.Tensor:
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != tuple(expected):
        raise PlipError(
            f"a preprocessed image tensor must be (N, 3, {expected[0]}, {expected[1]}), got {tuple(images.shape)}"
        )
    return images


def iter_image_batches(
    images: Any,
    *,
    preprocess: Callable[..., torch.Tensor],
    image_size: Sequence[int],
    batch_size: int,
    num_workers: int = 0,
    labels: Sequence[str] | None = None,
) -> Iterator[list[tuple[int, torch.Tensor | None, str]]]:
    """Batches of ``(input position, preprocessed tensor or None, error message)``, in input order.

    ``images`` are paths, PIL images, uint8 arrays (one item or a list), or an already
    preprocessed ``(N, 3, H, W)`` tensor (checked against ``image_size``). An unreadable image
    gives ``None`` and its one-line message; callers decide whether to raise or skip.
    """
    if batch_size < 1:
        raise PlipError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(images, torch.Tensor):
        images = _check_tensor(images, tuple(image_size))
        for start, chunk in zip(range(0, images.shape[0], batch_size), images.split(batch_size)):
            yield [(start + i, t, "") for i, t in enumerate(chunk)]
        return
    if not isinstance(images, (list, tuple)):
        images = [images]
    yield from _loader(PreprocessedImages(images, preprocess, labels), batch_size, num_workers)


@torch.inference_mode()
def embed_image_batch(model: "PLIPModel", batch: torch.Tensor) -> torch.Tensor:
    """Forward one preprocessed batch; returns float32 embeddings on the model's device.

    On the CPU the batch runs in micro-batches (:func:`~plip.inference.micro_batch.image_micro_batch`);
    results are the same as one forward (eval mode: images do not interact).
    """
    batch = batch.to(device=model.device, dtype=model.dtype, non_blocking=True)
    batch = batch.contiguous(memory_format=torch.channels_last)
    visual = graphs.image_graph(model, batch)
    if visual is None:
        visual = model.visual
    if model.device.type != "cpu":
        return visual(batch).float()
    return torch.cat([visual(part).float() for part in batch.split(image_micro_batch(model))])


def encode_image_items(
    model: "PLIPModel",
    images: Any,
    *,
    batch_size: int = 64,
    normalize: bool = True,
    progress: bool = False,
    num_workers: int = 0,
    skip_bad: bool = False,
    labels: Sequence[str] | None = None,
) -> ImageEncoding:
    """Embed images (paths, PIL images, uint8 arrays, or a preprocessed ``(N, 3, H, W)`` tensor).

    Args:
        skip_bad: report unreadable images in ``failures`` and go on; otherwise the first one
            raises :class:`~plip.errors.ImageLoadError` (one line naming it).
        labels: names used in error messages (default ``"image <index>"``).
    """
    if model.preprocess is None and not isinstance(images, torch.Tensor):
        raise PlipError("this model has no preprocess attached: build it with plip.load or plip.create_model")
    total = (images.shape[0] if images.dim() == 4 else 1) if isinstance(images, torch.Tensor) else (
        len(images) if isinstance(images, (list, tuple)) else 1)
    batches = iter_image_batches(
        images, preprocess=model.preprocess, image_size=model.config.vision.image_size, batch_size=batch_size,
        num_workers=num_workers, labels=labels,
    )
    outputs, kept, failures = [], [], []
    with eval_mode(model), tqdm(total=total, desc="images", unit="img", disable=not progress) as bar:
        for items in batches:
            good = [(i, t) for i, t, _ in items if t is not None]
            for i, t, error in items:
                if t is None:
                    if not skip_bad:
                        raise ImageLoadError(error)
                    failures.append((i, error))
            if good:
                outputs.append(embed_image_batch(model, torch.stack([t for _, t in good])).cpu())
                kept += [i for i, _ in good]
            bar.update(len(items))
    embeddings = torch.cat(outputs) if outputs else torch.empty(0, model.embed_dim)
    check_finite_rows(embeddings, "image", [labels[i] if labels is not None else None for i in kept], kept)
    if normalize:
        embeddings = F.normalize(embeddings, dim=-1)
    return ImageEncoding(embeddings, kept, failures)


def encode_images(model: "PLIPModel", images: Any, **kwargs: Any) -> torch.Tensor:
    """:func:`encode_image_items` without skipping: one row per input, in input order."""
    return encode_image_items(model, images, skip_bad=False, **kwargs).embeddings


@torch.inference_mode()
def embed_token_batch(model: "PLIPModel", input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Forward one tokenised batch; returns float32 embeddings on the model's device."""
    device = model.device
    embed = graphs.text_graph(model) or model.text.embed
    return embed(input_ids.to(device), attention_mask.to(device)).float()


def encode_texts(
    model: "PLIPModel", texts: str | Sequence[str], *, batch_size: int = 256, normalize: bool = True,
    progress: bool = False,
) -> torch.Tensor:
    """Embed captions in input order; batches are length-sorted so padding costs nothing."""
    if batch_size < 1:
        raise PlipError(f"batch_size must be >= 1, got {batch_size}")
    if model.tokenizer is None:
        raise PlipError("this model has no tokenizer attached: build it with plip.load or plip.create_model")
    if isinstance(texts, str):
        texts = [texts]
    token_ids = model.tokenizer.encode(texts)
    if not token_ids:
        return torch.empty(0, model.embed_dim)
    unusable = model.tokenizer.unusable(texts, token_ids)
    if unusable:
        index, reason = unusable[0]
        more = f" ({len(unusable) - 1} more)" if len(unusable) > 1 else ""
        raise PlipError(f"caption at index {index} {reason}: nothing to embed{more}")
    order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
    embeddings = torch.empty(len(token_ids), model.embed_dim)
    with eval_mode(model), tqdm(total=len(order), desc="texts", unit="txt", disable=not progress) as bar:
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = model.tokenizer.pad([token_ids[i] for i in rows])
            out = embed_token_batch(model, batch["input_ids"], batch["attention_mask"])
            embeddings[torch.as_tensor(rows)] = out.cpu()
            bar.update(len(rows))
    check_finite_rows(embeddings, "caption", None)
    return F.normalize(embeddings, dim=-1) if normalize else embeddings
