"""The PLIP model: image tower + text tower in one embedding space, with the raw-input API."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import PlipError
from ..hub.folder import default_model_card, write_folder
from ..models.config import PLIPConfig, PreprocessConfig
from ..models.build import build_vision_tower
from ..models.text_encoder import TextEncoder
from . import batching, graphs
from .retrieval import RetrievalResult, retrieve

if TYPE_CHECKING:
    from ..data.transforms import ImagePreprocess
    from ..tokenizer import PLIPTokenizer


class PLIPModel(nn.Module):
    """PLIP: an image tower (Modified ResNet, or a timm model) and a BERT text encoder.

    ``forward`` is the training entry point (un-normalised embeddings, with gradients). The
    ``encode_*`` and ``retrieve`` methods are the inference API: they take raw inputs (paths,
    PIL images, arrays, strings), batch them, and return float32 CPU tensors. They need
    ``preprocess`` and ``tokenizer``, which the factory attaches (:func:`plip.load`,
    :func:`plip.create_model`); the module itself only holds the towers.

    Attributes:
        visual: the image tower (:class:`~plip.models.ModifiedResNet` or :class:`~plip.models.TimmVisionTower`).
        text: the text tower (:class:`~plip.models.TextEncoder`).
        preprocess: image -> normalised tensor, as the model was trained (attached by the factory).
        tokenizer: the model's tokenizer (attached by the factory).
        inference_graphs: optimised CPU graphs built by :meth:`optimize_for_inference`, or ``None``.
        name_or_path: where the model was loaded from.
    """

    def __init__(self, config: PLIPConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.visual = build_vision_tower(config.vision)
        self.text = TextEncoder(config.text)
        self.preprocess: ImagePreprocess | None = None
        self.tokenizer: PLIPTokenizer | None = None
        self.inference_graphs: graphs.InferenceGraphs | None = None
        self.name_or_path: str | None = None

    # -- properties -----------------------------------------------------------------------
    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def preprocess_config(self) -> PreprocessConfig:
        """What the image tower expects: size (H, W), interpolation, RGB mean/std (``.mean_255`` ... in 0-255)."""
        return self.config.preprocess

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Activation checkpointing in both towers (training with less memory)."""
        self.visual.set_grad_checkpointing(enable)
        self.text.set_grad_checkpointing(enable)

    # -- training forward -------------------------------------------------------------------
    def forward(
        self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Un-normalised ``(image_emb, text_emb)`` of a batch (differentiable)."""
        return self.visual(images), self.text(input_ids, attention_mask).embedding

    # -- inference ----------------------------------------------------------------------------
    def encode_image(
        self,
        images: Any,
        *,
        batch_size: int = 64,
        normalize: bool = True,
        progress: bool = False,
        num_workers: int = 0,
    ) -> torch.Tensor:
        """Embed images: paths, PIL images (any mode), uint8 arrays, or a preprocessed tensor.

        Returns a float32 CPU tensor ``(N, embed_dim)`` in input order, L2-normalised unless
        ``normalize=False``. Lists of any length are processed ``batch_size`` at a time;
        ``num_workers > 0`` decodes images in DataLoader worker processes.
        """
        return batching.encode_images(
            self, images, batch_size=batch_size, normalize=normalize, progress=progress, num_workers=num_workers
        )

    def encode_text(
        self,
        texts: str | Sequence[str],
        *,
        batch_size: int = 256,
        normalize: bool = True,
        progress: bool = False,
    ) -> torch.Tensor:
        """Embed captions. Returns a float32 CPU tensor ``(N, embed_dim)`` in input order.

        Captions are tokenised once, grouped by length and padded to the longest caption of
        each batch; text longer than ``config.text.max_length`` tokens is truncated.
        """
        return batching.encode_texts(self, texts, batch_size=batch_size, normalize=normalize, progress=progress)

    def optimize_for_inference(
        self, *, image: bool | str = True, text: str | None = None, runtime: str | None = None
    ) -> "PLIPModel":
        """Build faster CPU inference paths used by :meth:`encode_image` / :meth:`encode_text`.

        ``image=True`` (or ``"trace"``) traces the image encoder into a frozen TorchScript
        graph (batch norm folded, oneDNN-fused; ~1 s to build); ``image="compile"`` compiles
        it with ``torch.compile`` (~15 s, needs a C++ compiler, fastest). Both are exact to
        float32 rounding. ``text="int8"`` runs the text encoder's linear layers with dynamic
        int8 quantisation (approximate). The graphs are dropped, with a warning, as soon as
        the weights, dtype or device change. ``runtime="onnxruntime"`` runs both towers in
        onnxruntime instead (exact; needs ``plip-person[onnx]``; :mod:`plip.export.runtime`).
        Returns ``self``. See :mod:`plip.inference.graphs` (speed: ``benchmarks/bench_encoding.py``,
        ``benchmarks/bench_export.py``).
        """
        self.inference_graphs = graphs.build_graphs(self, image=image, text=text, runtime=runtime)
        return self

    def retrieve(self, query: Any, gallery: torch.Tensor, top_k: int = 10, **kwargs: Any) -> RetrievalResult:
        """Top-k gallery entries for a query: text (str or list), images, or embeddings.

        ``gallery`` holds embeddings from :meth:`encode_image` (or :meth:`encode_text`), as a
        tensor or a float16/32/64 NumPy array; a NumPy gallery gives NumPy results (see
        :func:`plip.retrieve`). A single string or 1-D embedding gives 1-D results; a list
        gives ``(Q, k)``. A float NumPy query of width :attr:`embed_dim` is an embedding.
        """
        if isinstance(query, str):
            q = self.encode_text([query])[0]
        elif isinstance(query, torch.Tensor) and query.dim() in (1, 2) and query.shape[-1] == self.embed_dim:
            q = query
        elif (isinstance(query, np.ndarray) and query.dtype.kind == "f" and query.ndim in (1, 2)
              and query.shape[-1] == self.embed_dim):
            q = query
        elif isinstance(query, (list, tuple)) and query and all(isinstance(t, str) for t in query):
            q = self.encode_text(list(query))
        else:
            q = self.encode_image(query if isinstance(query, (list, tuple, torch.Tensor)) else [query])
        return retrieve(q, gallery, top_k=top_k, **kwargs)

    # -- persistence ----------------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike, model_card: str | None = None) -> None:
        """Write ``config.json``, ``model.safetensors``, tokenizer files and a model card."""
        if self.tokenizer is None:
            raise PlipError("save_pretrained needs the model's tokenizer (build it with plip.create_model or plip.load)")
        write_folder(
            directory, self.config, self.state_dict(), self.tokenizer,
            model_card=model_card, default_card=lambda: default_model_card(self.config, self.num_parameters()),
        )

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- zero-shot attributes (plip.inference.zero_shot) --------------------------------------
    def classify_attributes(self, images: Any, schema: Any = "pa100k", **kwargs: Any):
        """Zero-shot attribute probabilities from text prompts; see :func:`plip.inference.zero_shot.classify_attributes`."""
        from .zero_shot import classify_attributes

        return classify_attributes(self, images, schema, **kwargs)

    def describe(self, images: Any, **kwargs: Any) -> list[str]:
        """A caption per image from zero-shot attributes; see :func:`plip.inference.zero_shot.describe`."""
        from .zero_shot import describe

        return describe(self, images, **kwargs)
