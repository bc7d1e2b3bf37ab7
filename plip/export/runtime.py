"""onnxruntime as an inference runtime of a loaded model.

:class:`OrtRuntime` holds two onnxruntime sessions, one per tower, exported from the model
(float32, exact, un-normalised outputs: ``encode_*`` normalise as usual). The model uses
it through :meth:`plip.PLIPModel.optimize_for_inference` (``runtime="onnxruntime"``) or
``plip.load(..., runtime="onnxruntime")``: the batching, ordering and length-sorted padding
of ``encode_image`` / ``encode_text`` stay the same, only each batch's forward runs here.

onnxruntime is an optional extra: ``pip install 'plip-person[onnx]'``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import PlipError
from ..inference.graphs import InferenceGraphs, fingerprint, register_runtime
from .onnx_io import make_session, require_onnxruntime

__all__ = ["OrtRuntime", "make_session", "require_onnxruntime"]


class OrtRuntime:
    """Two onnxruntime sessions: ``image(batch) -> emb`` and ``text(input_ids, attention_mask) -> emb``.

    Inputs are the model's own: the preprocessed image tensor (``model.preprocess``) and the
    padded token batch (``model.tokenizer.pad``). Outputs are float32 torch tensors, not
    normalised (``output_normalized`` is False in the graphs' metadata).
    """

    def __init__(self, image: str | os.PathLike | bytes | None, text: str | os.PathLike | bytes | None,
                 threads: int | None = None) -> None:
        self._image = make_session(image, threads) if image is not None else None
        self._text = make_session(text, threads) if text is not None else None
        if self._image is not None:
            self._image_input = self._image.get_inputs()[0].name
        if self._text is not None:
            self._text_inputs = [i.name for i in self._text.get_inputs()]

    @classmethod
    def from_model(cls, model: Any, threads: int | None = None, towers: tuple[str, ...] = ("image", "text")) -> "OrtRuntime":
        """Export ``model``'s towers (float32, plain inputs, un-normalised) and open them."""
        require_onnxruntime()
        from .api import export

        with tempfile.TemporaryDirectory(prefix="plip-ort-") as tmp:
            tower = "both" if len(towers) == 2 else towers[0]
            result = export(model, tmp, tower=tower, format="onnx", normalize=False, check=False, log=None)
            image = Path(result.files["image"]).read_bytes() if "image" in result.files else None
            text = Path(result.files["text"]).read_bytes() if "text" in result.files else None
        return cls(image, text, threads=threads)

    @property
    def has_image(self) -> bool:
        return self._image is not None

    @property
    def has_text(self) -> bool:
        return self._text is not None

    def image(self, batch: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(N, D)`` of a preprocessed ``(N, 3, H, W)`` batch."""
        if self._image is None:
            raise PlipError("this runtime has no image graph")
        array = np.ascontiguousarray(batch.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(self._image.run(None, {self._image_input: array})[0])

    def text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(N, D)`` of a padded token batch."""
        if self._text is None:
            raise PlipError("this runtime has no text graph")
        feeds = dict(zip(self._text_inputs, (
            np.ascontiguousarray(input_ids.to("cpu", torch.int64).numpy()),
            np.ascontiguousarray(attention_mask.to("cpu", torch.int64).numpy()),
        )))
        return torch.from_numpy(self._text.run(None, feeds)[0])


@register_runtime("onnxruntime")
def onnxruntime_graphs(model: Any) -> InferenceGraphs:
    """``model.optimize_for_inference(runtime="onnxruntime")``: both towers in onnxruntime (exact)."""
    ort = OrtRuntime.from_model(model)
    return InferenceGraphs(ort.image, tuple(model.config.vision.image_size), ort.text, fingerprint(model))
