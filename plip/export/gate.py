"""The accuracy gate of an int8 export: it keeps a quantised graph only if it is close to float32.

Two checks on a labelled gallery the calibration did not see (default: the demo's
synthetic gallery, 100 identities x 4 images, seed 2026, all captions):

* the smallest cosine similarity between the int8 and float32 embeddings of every image
  (image tower) or caption (text tower) must be >= ``min_cosine`` (default 0.99);
* text-to-image R@1 with the int8 tower may drop at most ``max_r1_drop`` points (default 1)
  below R@1 with the float32 tower (the other tower is the PyTorch float32 one).

The figures (min / mean cosine, R@1 and mAP of both) are returned and printed either way.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import PlipError

__all__ = ["GateData", "QuantizationRefused", "default_gate_data", "gate_data_from_split", "run_gate",
           "GATE_SEED", "GATE_IDENTITIES"]

GATE_SEED = 2026  # plip.demo.DEFAULT_SEED: persons no training run of this project saw
GATE_IDENTITIES = 100
GATE_IMAGES_PER_ID = 4


class QuantizationRefused(PlipError):
    """The int8 graph is too far from float32; nothing was written."""


@dataclass
class GateData:
    """A labelled gallery, decoded: preprocessed images and captions with person ids."""

    images: torch.Tensor
    image_ids: np.ndarray
    captions: list[str]
    caption_ids: np.ndarray
    description: str


def gate_data_from_split(model: Any, split: Any, description: str | None = None) -> GateData:
    """Decode a :class:`plip.data.textreid.TextReIDSplit` with the model's preprocessing."""
    gallery, queries = split.gallery(), split.queries()
    images = torch.stack([model.preprocess(p, where=p) for p in gallery.image_paths])
    return GateData(images, np.asarray(gallery.person_ids), list(queries.captions), np.asarray(queries.person_ids),
                    description or f"{split.dataset} {split.split} ({len(gallery)} images, {len(queries)} captions)")


def default_gate_data(model: Any, identities: int = GATE_IDENTITIES, seed: int = GATE_SEED) -> GateData:
    """The demo's synthetic gallery (generated in a temporary folder)."""
    from ..data.synthetic import generate_dataset
    from ..data.textreid import load_text_reid

    with tempfile.TemporaryDirectory(prefix="plip-gate-") as tmp:
        generated = generate_dataset(Path(tmp) / "gallery", identities=identities, images_per_id=GATE_IMAGES_PER_ID,
                                     seed=seed, progress=False, workers=0)
        split = load_text_reid("synth-pedes", generated.root, "all")
        return gate_data_from_split(
            model, split, f"synthetic gallery, seed {seed}, {identities} identities x {GATE_IMAGES_PER_ID} images")


def _batched(run: Callable[..., np.ndarray], arrays: list[np.ndarray]) -> torch.Tensor:
    return torch.cat([torch.from_numpy(np.asarray(run(*a), dtype=np.float32)) for a in arrays])


def _r1_map(text_emb: torch.Tensor, image_emb: torch.Tensor, data: GateData) -> tuple[float, float]:
    from ..evaluation.retrieval_metrics import retrieval_metrics_from_embeddings

    metrics = retrieval_metrics_from_embeddings(
        text_emb, image_emb, data.caption_ids, data.image_ids, ks=(1,), normalize=True).as_dict()
    return float(metrics["R@1"]), float(metrics["mAP"])


def run_gate(tower: str, model: Any, fp32: Callable[..., np.ndarray], int8: Callable[..., np.ndarray],
             data: GateData, to_input: Callable[[torch.Tensor], np.ndarray] | None,
             min_cosine: float, max_r1_drop: float, say: Callable[[str], None]) -> dict[str, Any]:
    """Compare the int8 graph ``int8`` with the float32 graph ``fp32`` on ``data``.

    ``to_input`` turns preprocessed images into the image graph's input convention.

    Raises:
        QuantizationRefused: a threshold is not met (the figures are in the message).
    """
    if tower == "image":
        inputs = [(to_input(chunk),) for chunk in data.images.split(16)]
        other = model.encode_text(data.captions)
    else:
        ids = model.tokenizer.encode(data.captions)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        inputs, rows = [], []
        for start in range(0, len(order), 64):
            part = order[start:start + 64]
            batch = model.tokenizer.pad([ids[i] for i in part])
            inputs.append((batch["input_ids"].numpy(), batch["attention_mask"].numpy()))
            rows.extend(part)
        inverse = torch.as_tensor(np.argsort(rows))
        other = model.encode_image(data.images)
    emb_fp32, emb_int8 = _batched(fp32, inputs), _batched(int8, inputs)
    if tower == "text":
        emb_fp32, emb_int8 = emb_fp32[inverse], emb_int8[inverse]
    if not bool(torch.isfinite(emb_int8).all()):
        cosine = torch.full((emb_int8.shape[0],), float("nan"))
    else:
        cosine = F.cosine_similarity(emb_int8, emb_fp32, dim=-1)
    pair = (lambda e: (other, e)) if tower == "image" else (lambda e: (e, other))
    r1_fp32, map_fp32 = _r1_map(*pair(emb_fp32), data)
    if bool(torch.isfinite(emb_int8).all()):
        r1_int8, map_int8 = _r1_map(*pair(emb_int8), data)
    else:
        r1_int8 = map_int8 = float("nan")
    figures = {
        "tower": tower, "evaluated_on": data.description, "count": int(cosine.numel()),
        "min_cosine": float(cosine.min()), "mean_cosine": float(cosine.mean()),
        "r1_fp32": r1_fp32, "r1_int8": r1_int8, "map_fp32": map_fp32, "map_int8": map_int8,
        "min_cosine_threshold": float(min_cosine), "max_r1_drop": float(max_r1_drop),
    }
    line = (f"int8 {tower} gate on {data.description}: cosine to float32 min {figures['min_cosine']:.4f} "
            f"mean {figures['mean_cosine']:.4f} (threshold {min_cosine}); R@1 {r1_fp32:.2f} -> {r1_int8:.2f} "
            f"(max drop {max_r1_drop}); mAP {map_fp32:.2f} -> {map_int8:.2f}")
    say(line)
    failures = []
    if not figures["min_cosine"] >= min_cosine:
        failures.append(f"min cosine {figures['min_cosine']:.4f} < {min_cosine}")
    if not r1_fp32 - r1_int8 <= max_r1_drop:
        failures.append(f"R@1 drops {r1_fp32 - r1_int8:.2f} points > {max_r1_drop}")
    figures["passed"] = not failures
    if failures:
        raise QuantizationRefused(f"int8 {tower} export refused ({'; '.join(failures)}); nothing written. {line}")
    return figures
