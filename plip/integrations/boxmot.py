"""PLIP as boxmot's appearance (ReID) model.

>>> from boxmot import BotSort
>>> from plip.integrations.boxmot import PLIPReID
>>> tracker = BotSort(reid_model=PLIPReID("plip-rn50"))
>>> tracks = tracker.update(detections, frame_bgr)        # (N, 6) x1, y1, x2, y2, conf, cls

boxmot calls ``reid_model.get_features(xyxy, bgr_image)`` with the frame as OpenCV gives it
(BGR, uint8, H x W x 3) and the detection boxes in pixels. :class:`PLIPReID` crops every box
(clipped to the frame), converts to RGB and applies the model's *own* preprocessing (PLIP
mean/std, bicubic resize), so the embeddings are exactly what ``model.encode_image`` gives
for the same crops. Nothing here imports boxmot: any tracker with this contract works.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..errors import ConfigError, PlipError

__all__ = ["PLIPReID", "crop_boxes"]


def crop_boxes(xyxy: Any, bgr_image: np.ndarray) -> list[Image.Image]:
    """RGB PIL crops of ``xyxy`` (``(N, 4+)`` pixels, extra columns ignored) from a BGR frame.

    Boxes are rounded outwards and clipped to the frame; a box with no area inside the frame
    becomes the nearest 1-pixel crop, so every box gets an embedding.
    """
    image = np.asarray(bgr_image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise PlipError(f"expected a BGR uint8 image of shape (H, W, 3), got {image.dtype} {image.shape}")
    boxes = np.asarray(xyxy, dtype=np.float64)
    if boxes.size == 0:
        return []
    if boxes.ndim != 2 or boxes.shape[1] < 4:
        raise PlipError(f"expected boxes of shape (N, 4) as x1, y1, x2, y2, got {boxes.shape}")
    if not np.isfinite(boxes[:, :4]).all():
        raise PlipError("boxes contain NaN or infinite coordinates")
    height, width = image.shape[:2]
    rgb = image[:, :, ::-1]
    crops = []
    for x1, y1, x2, y2 in boxes[:, :4]:
        left = int(np.clip(np.floor(min(x1, x2)), 0, width - 1))
        top = int(np.clip(np.floor(min(y1, y2)), 0, height - 1))
        right = int(np.clip(np.ceil(max(x1, x2)), left + 1, width))
        bottom = int(np.clip(np.ceil(max(y1, y2)), top + 1, height))
        crops.append(Image.fromarray(np.ascontiguousarray(rgb[top:bottom, left:right])))
    return crops


@contextlib.contextmanager
def _eval_mode(module: nn.Module):
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


class PLIPReID:
    """boxmot-compatible appearance model over a PLIP encoder.

    Args:
        model: a :class:`~plip.PLIPModel` or anything :func:`plip.load` accepts (uses the
            768-d PLIP embedding), or a plip ReID module with a ``preprocess_config`` (a
            :class:`~plip.downstream.BoT` / :class:`~plip.downstream.MGN`, a
            :class:`~plip.downstream.PLIPBackbone` with ``attn_pool=True``) returning
            ``(B, D)`` features in eval mode.
        batch_size: crops per forward pass.
        device: where to run (default: where the model's parameters are).

    ``get_features`` returns float32 ``(N, D)``, L2-normalised rows, in box order; no boxes
    give ``(0, D)``. The model runs in eval mode under ``torch.inference_mode`` and is put
    back in the mode it was in.
    """

    def __init__(self, model: Any = "plip-rn50", *, batch_size: int = 32, device: str | torch.device | None = None) -> None:
        from .. import PLIPModel, load
        from ..data.transforms import ImagePreprocess

        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size!r}")
        if not isinstance(model, nn.Module):
            model = load(model)
        if isinstance(model, PLIPModel):
            self.module: nn.Module = model.visual
            self.preprocess = model.preprocess
            self.embed_dim = model.embed_dim
        else:
            config = getattr(model, "preprocess_config", None) or getattr(
                getattr(model, "backbone", None), "preprocess_config", None
            )  # BoT keeps it on its backbone
            if config is None:
                raise ConfigError(
                    f"PLIPReID needs a PLIPModel or a plip module with preprocess_config, got {type(model).__name__}"
                )
            self.module = model
            self.preprocess = ImagePreprocess(config)
            self.embed_dim = None
        self.batch_size = batch_size
        params = next(self.module.parameters(), None)
        self.device = torch.device(device) if device is not None else (params.device if params is not None else torch.device("cpu"))
        self.module.to(self.device)
        if self.embed_dim is None:
            self.embed_dim = self._probe_dim()

    def _probe_dim(self) -> int:
        height, width = self.preprocess.size
        with _eval_mode(self.module), torch.inference_mode():
            out = self.module(torch.zeros(1, 3, height, width, device=self.device))
        if not torch.is_tensor(out) or out.dim() != 2:
            raise ConfigError(f"PLIPReID: the model must return (B, D) features in eval mode, got {type(out).__name__}")
        return int(out.shape[1])

    def get_features(self, xyxy: Any, bgr_image: np.ndarray) -> np.ndarray:
        """L2-normalised float32 ``(N, D)`` embeddings of the ``N`` boxes of a BGR frame."""
        crops = crop_boxes(xyxy, bgr_image)
        if not crops:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        out = []
        with _eval_mode(self.module), torch.inference_mode():
            for start in range(0, len(crops), self.batch_size):
                batch = torch.stack([self.preprocess(c) for c in crops[start : start + self.batch_size]])
                feats = self.module(batch.to(self.device)).float()
                out.append(torch.nn.functional.normalize(feats, dim=1).cpu())
        return torch.cat(out).numpy()

    def __call__(self, xyxy: Any, bgr_image: np.ndarray) -> np.ndarray:
        return self.get_features(xyxy, bgr_image)
