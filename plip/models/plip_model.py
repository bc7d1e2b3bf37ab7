"""The PLIP model: image encoder + text encoder in one embedding space."""

from __future__ import annotations

import os
from typing import Any, Sequence

import torch
from torch import nn

from .config import PLIPConfig
from .modified_resnet import ModifiedResNet
from .text_encoder import TextEncoder


class PLIPModel(nn.Module):
    """PLIP: a Modified ResNet image encoder and a BERT text encoder (no projection heads).

    ``forward`` is the training entry point (un-normalised embeddings, with gradients).
    The ``encode_*`` and ``retrieve`` methods are the inference API: they take raw inputs
    (paths, PIL images, arrays, strings), batch them, and return float32 CPU tensors.
    A model returned by :func:`plip.load` carries ``preprocess`` and ``tokenizer``.
    """

    def __init__(self, config: PLIPConfig, tokenizer: Any | None = None) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.visual = ModifiedResNet(config.vision)
        self.text = TextEncoder(config.text)
        from ..data.transforms import ImagePreprocess
        from ..tokenizer import PLIPTokenizer

        self.preprocess = ImagePreprocess(config.preprocess)
        self.tokenizer = tokenizer or PLIPTokenizer(max_length=config.text.max_length)
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
        from ..encoding import encode_images

        return encode_images(
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
        from ..encoding import encode_texts

        return encode_texts(self, texts, batch_size=batch_size, normalize=normalize, progress=progress)

    def optimize_for_inference(
        self, *, image: bool | str = True, text: str | None = None, runtime: str | None = None
    ) -> "PLIPModel":
        """Build faster CPU inference paths used by :meth:`encode_image` / :meth:`encode_text`.

        ``image=True`` (or ``"trace"``) traces the image encoder into a frozen TorchScript
        graph (batch norm folded, oneDNN-fused; ~1 s to build); ``image="compile"`` compiles
        it with ``torch.compile`` (~15 s, needs a C++ compiler, fastest). Both are exact to
        float32 rounding: about 1.8x and 2x the images/s of the official float32 forward on
        a 2-core CPU. ``text="int8"`` runs the text encoder's linear layers with dynamic int8
        quantisation (approximate: cosine ~0.998 with the float32 embeddings; about 3x the
        texts/s). The graphs are dropped, with a warning, as soon as the weights, dtype or
        device change. ``runtime="onnxruntime"`` runs both towers in onnxruntime instead
        (exact; needs ``plip-person[onnx]``). Returns ``self``. See :mod:`plip.optimize`.
        """
        from ..optimize import optimize_for_inference

        return optimize_for_inference(self, image=image, text=text, runtime=runtime)

    def retrieve(self, query: Any, gallery: torch.Tensor, top_k: int = 10, **kwargs: Any):
        """Top-k gallery entries for a query: text (str or list), images, or embeddings.

        ``gallery`` holds embeddings from :meth:`encode_image` (or :meth:`encode_text`).
        A single string or 1-D embedding gives 1-D results; a list gives ``(Q, k)``.
        """
        from ..retrieval import retrieve

        if isinstance(query, str):
            q = self.encode_text([query])[0]
        elif isinstance(query, torch.Tensor) and query.dim() in (1, 2) and query.shape[-1] == self.embed_dim:
            q = query
        elif isinstance(query, (list, tuple)) and query and all(isinstance(t, str) for t in query):
            q = self.encode_text(list(query))
        else:
            q = self.encode_image(query if isinstance(query, (list, tuple, torch.Tensor)) else [query])
        return retrieve(q, gallery, top_k=top_k, **kwargs)

    # -- persistence ----------------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike, model_card: str | None = None) -> None:
        """Write ``config.json``, ``model.safetensors``, tokenizer files and a model card."""
        from ..hub.pretrained import save_pretrained

        save_pretrained(self, directory, model_card=model_card)
