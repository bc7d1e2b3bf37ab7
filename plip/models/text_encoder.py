"""The PLIP text encoder: ``transformers.BertModel`` built from a config, never downloaded."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import TextConfig

if TYPE_CHECKING:
    from transformers import BertConfig


class TextFeatures(NamedTuple):
    """Output of :class:`TextEncoder`.

    Attributes:
        hidden_states: last-layer token states ``(B, L, hidden)``.
        embedding: the global text embedding ``(B, hidden)`` (not normalised): BERT's pooler
            output for ``pooling="pooler"``, the masked mean of ``hidden_states`` for ``"mean"``.
    """

    hidden_states: torch.Tensor
    embedding: torch.Tensor


def bert_config(config: TextConfig) -> BertConfig:
    """The ``transformers.BertConfig`` of a :class:`TextConfig`."""
    from transformers import BertConfig  # first use: transformers' modeling imports scipy (import plip stays light)

    return BertConfig(**config.bert_kwargs(), attn_implementation="sdpa")


class TextEncoder(nn.Module):
    """BERT wrapped the way the official checkpoint names it (``encoder.embeddings...``)."""

    def __init__(self, config: TextConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        from transformers import BertModel

        self.encoder = BertModel(bert_config(config), add_pooling_layer=True)

    @property
    def output_dim(self) -> int:
        return self.config.hidden_size

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each BERT layer's activations in the backward pass (less memory)."""
        if enable:
            self.encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        else:
            self.encoder.gradient_checkpointing_disable()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> TextFeatures:
        if attention_mask is None:
            attention_mask = (input_ids != self.config.pad_token_id).long()
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
        hidden = out.last_hidden_state
        if self.config.pooling == "pooler":
            embedding = out.pooler_output
        else:
            weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
            embedding = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return TextFeatures(hidden_states=hidden, embedding=embedding)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Only the global embedding ``(B, hidden)``: what :meth:`forward` returns as ``embedding``.

        With ``pooling="pooler"`` the embedding reads the last layer's ``[CLS]`` state alone,
        so that layer runs its query, attention output and feed-forward for ``[CLS]`` only
        (keys and values still span every token): the same numbers as ``forward`` for ~1/12
        fewer FLOPs in a 12-layer BERT. This is what inference and export call.
        """
        if attention_mask is None:
            attention_mask = (input_ids != self.config.pad_token_id).long()
        if self.config.pooling != "pooler":
            return self.forward(input_ids, attention_mask).embedding
        bert = self.encoder
        hidden = bert.embeddings(input_ids=input_ids)
        # additive mask (B, 1, 1, L): what BertModel gives its eager and sdpa attention alike
        blocked = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        *layers, last = bert.encoder.layer
        for layer in layers:
            out = layer(hidden, blocked)
            hidden = out[0] if isinstance(out, tuple) else out  # transformers 4 returns a tuple
        return bert.pooler(_cls_only_layer(last, hidden, blocked))


def _cls_only_layer(layer: nn.Module, hidden: torch.Tensor, blocked: torch.Tensor) -> torch.Tensor:
    """``transformers``' ``BertLayer`` on ``hidden`` ``(B, L, H)`` with the ``[CLS]`` query only:
    its output ``(B, 1, H)`` equals ``layer(hidden)[:, :1]``."""
    attention = layer.attention.self
    batch = hidden.shape[0]
    heads, size = attention.num_attention_heads, attention.attention_head_size

    def split(x: torch.Tensor) -> torch.Tensor:
        return x.view(batch, -1, heads, size).transpose(1, 2)

    cls = hidden[:, :1]
    context = F.scaled_dot_product_attention(
        split(attention.query(cls)), split(attention.key(hidden)), split(attention.value(hidden)),
        attn_mask=blocked, dropout_p=attention.dropout.p if attention.training else 0.0,
    )
    attended = layer.attention.output(context.transpose(1, 2).reshape(batch, 1, heads * size), cls)
    return layer.output(layer.intermediate(attended), attended)
