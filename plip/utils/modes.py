"""``eval_mode``: run a module in eval mode and give it back in the mode it was in."""

from __future__ import annotations

import contextlib
from typing import Iterator

from torch import nn


@contextlib.contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Put ``modules`` in eval mode for the block; restore each one's training flag after."""
    states = [(module, module.training) for module in modules]
    for module, _ in states:
        module.eval()
    try:
        yield
    finally:
        for module, was_training in states:
            module.train(was_training)
