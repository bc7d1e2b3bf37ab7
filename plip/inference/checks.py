"""Finiteness checks: NaN or infinite weights and embeddings are errors, never results.

A NaN weight gives NaN scores in eager mode and, through a traced graph with folded batch
norm, can give identical finite embeddings for different images; both are caught here
(weights when a model is loaded or a graph is built, embeddings after every encoding).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from ..errors import CheckpointError, PlipError

__all__ = ["check_finite_state", "check_finite_rows"]


def check_finite_state(state: Mapping[str, torch.Tensor], where: str) -> None:
    """Raise :class:`~plip.errors.CheckpointError` naming the first floating tensor of
    ``state`` holding NaN or inf (``where`` names the file or model)."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(
                f"{where}: tensor {name!r} holds {bad} non-finite value(s) (NaN or inf) of {tensor.numel()}; "
                "the weights are corrupt"
            )


def check_finite_rows(
    embeddings: torch.Tensor, kind: str, labels: Sequence[str | None] | None,
    positions: Sequence[int] | None = None,
) -> None:
    """Raise :class:`~plip.errors.PlipError` naming the first input whose embedding is not finite.

    ``positions`` maps rows to input indices (default: the row number); ``labels`` gives a
    name per row for the message.
    """
    if embeddings.numel() == 0:
        return
    finite = torch.isfinite(embeddings).all(dim=1)
    if bool(finite.all()):
        return
    rows = (~finite).nonzero().flatten().tolist()
    row = rows[0]
    index = positions[row] if positions is not None else row
    name = f" ({labels[row]})" if labels is not None and labels[row] else ""
    raise PlipError(
        f"the embedding of {kind} {index}{name} is not finite (NaN or inf), as are {len(rows) - 1} other(s): "
        "the model's weights or this input are broken"
    )
