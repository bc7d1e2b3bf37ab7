"""Which parameters a backward pass will touch: a check that frozen layers cost nothing.

A frozen parameter (``requires_grad=False``) gets no gradient, but its layer can still cost
backward compute: when the layer's *input* requires grad (a trainable layer or an input
that requires grad upstream), autograd records the layer to propagate the gradient
through it, reading its weights. :func:`backward_parameter_use` walks the autograd graph
of a loss (before ``backward``) and reports, by parameter name, which parameters would
receive a gradient and which are read by some gradient formula; a frozen layer that is
truly free appears in neither set.

    use = backward_parameter_use(loss, model)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert not (use.accumulated | use.saved) & frozen
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

__all__ = ["BackwardUse", "backward_parameter_use", "frozen_parameter_names"]


@dataclass(frozen=True)
class BackwardUse:
    """What the backward pass of a loss would do with a model's parameters.

    Attributes:
        accumulated: names of parameters that would receive a ``.grad``.
        saved: names of parameters whose data a gradient formula has saved (e.g. a weight
            kept to propagate the gradient to the layer's input).
        nodes: number of backward nodes reachable from the loss (the work ``backward`` does).
        node_kinds: node count per backward-function name (``"MmBackward0"`` ...).
    """

    accumulated: frozenset[str]
    saved: frozenset[str]
    nodes: int
    node_kinds: dict[str, int]

    @property
    def touched(self) -> frozenset[str]:
        """Parameters the backward pass reads or writes."""
        return self.accumulated | self.saved


def _saved_tensors(node) -> list[Tensor]:
    """The tensors a backward node keeps for its gradient formula (``_saved_*`` attributes)."""
    found: list[Tensor] = []
    for attr in dir(node):
        if not attr.startswith("_saved_"):
            continue
        try:
            value = getattr(node, attr)
        except RuntimeError:  # already freed by a previous backward
            continue
        values = value if isinstance(value, (tuple, list)) else (value,)
        found += [v for v in values if isinstance(v, Tensor)]
    if hasattr(node, "saved_tensors"):  # custom autograd.Function nodes
        try:
            found += [t for t in node.saved_tensors if isinstance(t, Tensor)]
        except RuntimeError:
            pass
    return found


def _storage_key(t: Tensor) -> tuple[str, int]:
    return (str(t.device), t.untyped_storage().data_ptr())


def backward_parameter_use(loss: Tensor, model: nn.Module) -> BackwardUse:
    """Walk ``loss``'s autograd graph and find the parameters of ``model`` it involves.

    Call it after the forward and before ``backward`` (backward frees the saved tensors).
    A parameter counts as *saved* when a saved tensor shares its storage (a transposed
    weight view included).

    Args:
        loss: a tensor with a ``grad_fn`` (the training loss).
        model: the module whose ``named_parameters()`` are looked up.

    Raises:
        ValueError: ``loss`` is not part of an autograd graph.
    """
    if loss.grad_fn is None:
        raise ValueError("the loss has no grad_fn: nothing requires grad")
    by_id = {id(p): name for name, p in model.named_parameters()}
    by_storage: dict[tuple[str, int], list[str]] = {}
    for name, p in model.named_parameters():
        if p.numel():
            by_storage.setdefault(_storage_key(p), []).append(name)
    accumulated: set[str] = set()
    saved: set[str] = set()
    kinds: dict[str, int] = {}
    seen: set[int] = set()
    stack = [loss.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        kind = type(node).__name__
        kinds[kind] = kinds.get(kind, 0) + 1
        variable = getattr(node, "variable", None)  # AccumulateGrad
        if isinstance(variable, Tensor) and id(variable) in by_id:
            accumulated.add(by_id[id(variable)])
        for t in _saved_tensors(node):
            if t.numel():
                saved.update(by_storage.get(_storage_key(t), ()))
        stack.extend(next_node for next_node, _ in node.next_functions)
    return BackwardUse(frozenset(accumulated), frozenset(saved), len(seen), kinds)


def frozen_parameter_names(model: nn.Module) -> frozenset[str]:
    """Names of ``model``'s parameters with ``requires_grad=False``."""
    return frozenset(n for n, p in model.named_parameters() if not p.requires_grad)
