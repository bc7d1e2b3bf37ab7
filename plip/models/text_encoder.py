"""The PLIP text encoder: ``transformers.BertModel`` built from a config, never downloaded."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
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
