"""Batched, order-preserving encoding of images and captions for inference."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import optimize
from .errors import PlipError

if TYPE_CHECKING:
    from .models.config import VisionConfig
    from .models.plip_model import PLIPModel

class _PreprocessDataset(torch.utils.data.Dataset):
    def __init__(self, items: Sequence[Any], preprocess) -> None:
        self.items = items
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.preprocess(self.items[index], where=f"image {index}")

def _image_batches(model: "PLIPModel", images: Any, batch_size: int, num_workers: int) -> Iterator[torch.Tensor]:
    if isinstance(images, torch.Tensor):
        if images.dim() == 3:
            images = images.unsqueeze(0)
        expected = tuple(model.config.vision.image_size)
        if images.dim() != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != expected:
            raise PlipError(
                f"a preprocessed image tensor must be (N, 3, {expected[0]}, {expected[1]}), got {tuple(images.shape)}"
            )
        yield from images.split(batch_size)
        return
    if not isinstance(images, (list, tuple)):
        images = [images]
    dataset = _PreprocessDataset(images, model.preprocess)
    if num_workers > 0:
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, num_workers=num_workers, shuffle=False,
            persistent_workers=False, collate_fn=torch.stack,
        )
        yield from loader
    else:
        for start in range(0, len(dataset), batch_size):
            yield torch.stack([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])

# Largest activation of one CPU forward. glibc serves bigger blocks with mmap and gives them
# back on free (its adaptive threshold stops at 32 MiB), so every forward would page-fault
# fresh zeroed memory again: at batch 32 that alone costs plip-rn50 ~40% of its speed on
# CPU. Below the threshold, freed activations are reused. (benchmarks/bench_encoding.py)
_CPU_ACTIVATION_BYTES = 16 * 2**20


def image_micro_batch(model: "PLIPModel") -> int:
    """Images per forward on the CPU for ``model`` (see :func:`micro_batch_for`)."""
    return micro_batch_for(model.config.vision, model.dtype)


def micro_batch_for(vision: "VisionConfig", dtype: torch.dtype) -> int:
    """As many images as keep the largest activation (the first stage's output, ``4 * width``
    channels at 1/4 resolution) within 16 MiB."""
    height, width = vision.image_size
    per_image = 4 * vision.width * (height // 4) * (width // 4) * torch.finfo(dtype).bits // 8
    return max(1, _CPU_ACTIVATION_BYTES // per_image)


@torch.inference_mode()
def embed_image_batch(model: "PLIPModel", batch: torch.Tensor) -> torch.Tensor:
    """Forward one preprocessed batch; returns float32 embeddings on the model's device.

    On the CPU the batch runs in micro-batches (:func:`image_micro_batch`); results are the
    same as one forward (eval mode: images do not interact).
    """
    batch = batch.to(device=model.device, dtype=model.dtype, non_blocking=True)
    batch = batch.contiguous(memory_format=torch.channels_last)
    visual = optimize.image_graph(model, batch)
    if visual is None:
        visual = model.visual
    if model.device.type != "cpu":
        return visual(batch).float()
    return torch.cat([visual(part).float() for part in batch.split(image_micro_batch(model))])

def encode_images(
    model: "PLIPModel", images: Any, *, batch_size: int, normalize: bool, progress: bool, num_workers: int
) -> torch.Tensor:
    if batch_size < 1:
        raise PlipError(f"batch_size must be >= 1, got {batch_size}")
    total = len(images) if hasattr(images, "__len__") else None
    if isinstance(images, torch.Tensor):
        total = images.shape[0] if images.dim() == 4 else 1
    if total == 0:
        return torch.empty(0, model.embed_dim)
    was_training = model.training
    model.eval()
    outputs = []
    try:
        with tqdm(total=total, desc="images", unit="img", disable=not progress) as bar:
            for batch in _image_batches(model, images, batch_size, num_workers):
                outputs.append(embed_image_batch(model, batch).cpu())
                bar.update(batch.shape[0])
    finally:
        model.train(was_training)
    embeddings = torch.cat(outputs)
    return F.normalize(embeddings, dim=-1) if normalize else embeddings

@torch.inference_mode()
def embed_token_batch(model: "PLIPModel", input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Forward one tokenised batch; returns float32 embeddings on the model's device."""
    device = model.device
    text = optimize.text_module(model)
    if text is None:
        text = model.text
    features = text(input_ids.to(device), attention_mask.to(device))
    # a runtime's text graph (plip.export.runtime.OrtRuntime.text) returns the embedding itself
    return (features if isinstance(features, torch.Tensor) else features.embedding).float()

def encode_texts(
    model: "PLIPModel", texts: str | Sequence[str], *, batch_size: int, normalize: bool, progress: bool
) -> torch.Tensor:
    if batch_size < 1:
        raise PlipError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(texts, str):
        texts = [texts]
    token_ids = model.tokenizer.encode(texts)
    if not token_ids:
        return torch.empty(0, model.embed_dim)
    # Length-sorted batches waste no compute on padding; results go back to input order.
    order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
    embeddings = torch.empty(len(token_ids), model.embed_dim)
    was_training = model.training
    model.eval()
    try:
        with tqdm(total=len(order), desc="texts", unit="txt", disable=not progress) as bar:
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                batch = model.tokenizer.pad([token_ids[i] for i in rows])
                out = embed_token_batch(model, batch["input_ids"], batch["attention_mask"])
                embeddings[torch.as_tensor(rows)] = out.cpu()
                bar.update(len(rows))
    finally:
        model.train(was_training)
    return F.normalize(embeddings, dim=-1) if normalize else embeddings
