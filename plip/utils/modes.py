"""``eval_mode``: run a module in eval mode and give it back in the mode it was in."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator


@contextlib.contextmanager
def eval_mode(*modules: Any) -> Iterator[None]:
    """Put ``modules`` in eval mode for the block; restore each one's training flag after.

    Objects without ``eval`` / ``train`` (duck-typed encoders) are left alone.
    """
    states = [(m, bool(getattr(m, "training", False))) for m in modules if hasattr(m, "eval") and hasattr(m, "train")]
    for module, _ in states:
        module.eval()
    try:
        yield
    finally:
        for module, was_training in states:
            module.train(was_training)
