"""Strict state-dict loading with errors that list what is wrong."""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from ..errors import CheckpointError


def _listing(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_state_dict_strict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Copy ``state`` into ``module``; every key must be present, known, and of the right shape."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = [
        f"{key}: checkpoint {tuple(state[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in expected
        if key in state and tuple(state[key].shape) != tuple(expected[key].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {_listing(unexpected)}")
    if wrong_shape:
        problems.append(f"wrong shapes ({len(wrong_shape)}): {_listing(wrong_shape, 6)}")
    if problems:
        raise CheckpointError(f"{source}: does not match the model: " + "; ".join(problems))
    module.load_state_dict(dict(state), strict=True)
