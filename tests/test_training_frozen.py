"""Frozen text layers cost no backward compute in PLIP pre-training.

Reference: reverse-mode autodiff (the chain rule as torch.autograd applies it). For
``y = f(x; W)`` the backward pass needs ``W`` only to propagate ``dL/dy`` to ``x``, and
writes ``dL/dW`` only when ``W`` requires grad. So a frozen layer is free exactly when its
input does not require grad either: it then has no node in the loss's autograd graph (no
``AccumulateGrad`` for its parameters, no node that saved its weights) and its output has
no history. The paper freezes BERT's embeddings and layers 0-7; the token ids are
integers, so the frozen prefix of BERT must drop out of the graph entirely.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from plip.models import PLIPConfig
from plip.training import load_config
from helpers.autograd_graph import backward_parameter_use, frozen_parameter_names
from plip.training.tasks.pretrain import PretrainConfig, PretrainTask

LAYERS, FROZEN = 3, 2  # a 3-layer tiny BERT with its first 2 layers frozen (the paper: 8 of 12)
BERT = "model.text.encoder"


@pytest.fixture(scope="module")
def config_json(tmp_path_factory):
    base = PLIPConfig.tiny()
    config = dataclasses.replace(base, text=dataclasses.replace(base.text, num_hidden_layers=LAYERS))
    path = tmp_path_factory.mktemp("cfg") / "config.json"
    config.save(path)
    return path


def build(config_json, freeze_layers: int, freeze_embeddings: bool) -> nn.Module:
    cfg = load_config(PretrainConfig, None, [
        f"model.name={config_json}", "data.image_size=[64,32]", "model.fpn_channels=16",
        f"model.freeze_text_layers={freeze_layers}", f"model.freeze_text_embeddings={str(freeze_embeddings).lower()}",
    ])
    torch.manual_seed(0)
    return PretrainTask().build_model(cfg)


def batch() -> dict[str, torch.Tensor]:
    """A collated pre-training batch (what CollateCaptioned yields): 2 identities x 2 images."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, 2000, (4, 10), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102
    target = torch.zeros_like(ids, dtype=torch.bool)
    target[:, 2:4] = True
    masked = ids.masked_fill(target, 103)
    return {"images": torch.randn(4, 3, 64, 32, generator=g), "input_ids": ids,
            "attention_mask": torch.ones_like(ids), "labels": torch.tensor([0, 0, 1, 1]),
            "masked_ids": masked, "target_mask": target}


def frozen_prefix(model: nn.Module) -> dict[str, nn.Module]:
    bert = model.model.text.encoder
    return {"embeddings": bert.embeddings, **{f"layer.{i}": bert.encoder.layer[i] for i in range(FROZEN)}}


def prefix_parameter_names(model: nn.Module) -> set[str]:
    names = {id(m): n for n, m in model.named_modules()}
    return {f"{names[id(m)]}.{p}" for m in frozen_prefix(model).values() for p, _ in m.named_parameters()}


def record_history(model: nn.Module) -> list[tuple[str, bool]]:
    """Hooks the frozen prefix; the list fills with (module, output has autograd history)."""
    calls: list[tuple[str, bool]] = []
    for name, module in frozen_prefix(model).items():
        module.register_forward_hook(lambda mod, args, out, name=name: calls.append(
            (name, (out if isinstance(out, torch.Tensor) else out[0]).requires_grad)))
    return calls


def test_paper_freezing_keeps_the_frozen_prefix_out_of_the_graph(config_json):
    model = build(config_json, FROZEN, True)
    prefix = prefix_parameter_names(model)
    assert prefix and prefix == frozen_parameter_names(model)

    calls = record_history(model)
    out = model(batch())
    assert {"ivlc", "tic", "iap"} <= set(out)  # the full pre-training objective
    use = backward_parameter_use(out["loss"], model)
    # each frozen module ran for the complete and the masked caption, never recording history
    assert len(calls) == 2 * len(frozen_prefix(model)) and not any(tracked for _, tracked in calls)
    assert not use.accumulated & prefix and not use.saved & prefix

    out["loss"].backward()
    params = dict(model.named_parameters())
    assert all(params[n].grad is None for n in prefix)
    trained = [n for n in params if n.startswith(f"{BERT}.encoder.layer.{FROZEN}.")]
    assert trained and all(params[n].grad is not None for n in trained)


def test_the_check_finds_the_same_layers_when_they_are_trainable(config_json):
    """Control: everything trainable, the same parameters receive gradients."""
    model = build(config_json, 0, False)
    use = backward_parameter_use(model(batch())["loss"], model)
    assert prefix_parameter_names(model) <= use.accumulated


def test_frozen_layers_behind_trainable_embeddings_still_cost_backward(config_json):
    """Control: layers 0-1 frozen but the embeddings trained. The gradient must flow through
    the frozen layers to reach the embeddings, so their weights are read (saved) by the
    backward pass, yet they receive no gradient: the check tells the two apart."""
    model = build(config_json, FROZEN, False)
    calls = record_history(model)
    use = backward_parameter_use(model(batch())["loss"], model)
    assert calls and all(tracked for _, tracked in calls)
    frozen_weights = {n for n in frozen_parameter_names(model) if n.endswith("dense.weight")}
    assert frozen_weights and frozen_weights <= use.saved
    assert not use.accumulated & frozen_parameter_names(model)


def test_backward_parameter_use_on_a_two_layer_chain():
    """Hand-checked case: y = W2 (W1 x) with W1 frozen. With x constant, W1 is untouched;
    with x requiring grad, dL/dx = W1^T W2^T dL/dy reads W1 (saved) but writes no dL/dW1."""
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    net[0].requires_grad_(False)
    x = torch.randn(5, 3)
    use = backward_parameter_use(net(x).sum(), net)
    assert use.accumulated == {"1.weight", "1.bias"} and use.saved == set()
    use = backward_parameter_use(net(x.requires_grad_()).sum(), net)
    assert use.accumulated == {"1.weight", "1.bias"} and "0.weight" in use.saved
    with pytest.raises(ValueError, match="grad_fn"):
        backward_parameter_use(net(torch.randn(5, 3)).detach().sum(), net)
