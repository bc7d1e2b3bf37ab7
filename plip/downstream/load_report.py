"""What a backbone loaded from a checkpoint (shared by both backbone kinds)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["BackboneLoadReport"]


@dataclass
class BackboneLoadReport:
    """What happened to a checkpoint loaded into a :class:`PLIPBackbone`.

    Loading is strict: a missing, unknown or wrongly shaped backbone tensor raises
    :class:`~plip.errors.CheckpointError`, so ``missing_keys`` and ``unexpected_keys`` of a
    backbone that exists are always empty. After loading, parts the backbone does not use are
    dropped (``dropped_keys``: the attention pool unless ``attn_pool=True``) and the positional
    embedding may be resized (``resized``: ``key: old shape -> new shape``).
    """

    source: str
    loaded_keys: list[str] = field(default_factory=list)
    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)
    dropped_keys: list[str] = field(default_factory=list)
    resized: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        parts = [f"{len(self.loaded_keys)} tensors loaded from {self.source}"]
        if self.dropped_keys:
            parts.append(f"{len(self.dropped_keys)} unused (pooling head) dropped")
        parts.extend(f"resized {item}" for item in self.resized)
        return "; ".join(parts)
