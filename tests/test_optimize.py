"""Opt-in inference graphs (plip.inference.graphs) and CPU micro-batching.

Reference: the eager model's own forward on the same weights and inputs. The exact paths
(frozen TorchScript graph, torch.compile) must match it to float32 rounding; int8 text is
checked by cosine similarity to the float32 embeddings.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

import plip.inference.micro_batch as micro_batch
from plip.inference import graphs
from plip.errors import PlipError
from plip import PLIPModel, create_model
from plip.models import PLIPConfig

CAPTIONS = [
    "a man in a red coat",
    "a woman with long black hair, a white blouse, blue jeans and a brown leather handbag",
    "",
    "the pedestrian wears a grey hoodie",
]


@pytest.fixture()
def model() -> PLIPModel:
    torch.manual_seed(0)
    m = create_model(PLIPConfig.tiny()).eval()
    # non-trivial batch-norm statistics, so that folding them into the convolutions matters
    for module in m.visual.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return m


def images(n: int, model: PLIPModel) -> torch.Tensor:
    return torch.rand(n, 3, *model.config.vision.image_size, generator=torch.Generator().manual_seed(n))


def eager_embeddings(model: PLIPModel, batch: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return F.normalize(model.visual(batch), dim=-1)


def test_traced_image_graph_equals_eager(model):
    batch = images(7, model)
    reference = eager_embeddings(model, batch)
    model.optimize_for_inference()
    assert graphs.is_optimized(model)
    for n in (1, 2, 7):  # batch sizes other than the traced one
        torch.testing.assert_close(model.encode_image(batch[:n], batch_size=3), reference[:n], atol=1e-5, rtol=0)
    assert graphs.image_graph(model, torch.zeros(1, 3, 32, 32)) is None  # another size: eager


def test_micro_batches_equal_one_forward(model, monkeypatch):
    batch = images(9, model)
    reference = eager_embeddings(model, batch)
    per_image = 4 * model.config.vision.width * (64 // 4) * (32 // 4) * 4
    monkeypatch.setattr(micro_batch, "_CPU_ACTIVATION_BYTES", 2 * per_image)
    assert micro_batch.image_micro_batch(model) == 2
    torch.testing.assert_close(model.encode_image(batch, batch_size=9), reference, atol=1e-6, rtol=0)
    monkeypatch.setattr(micro_batch, "_CPU_ACTIVATION_BYTES", 1)
    assert micro_batch.image_micro_batch(model) == 1


def test_full_size_micro_batch_stays_under_mmap_threshold():
    """plip-rn50's largest activation (256 x 64 x 32 floats = 2 MiB per image) -> 8 images."""
    assert micro_batch.micro_batch_for(PLIPConfig.rn50().vision, torch.float32) == 8
    assert micro_batch.micro_batch_for(PLIPConfig.rn50().vision, torch.bfloat16) == 16


def test_graphs_are_dropped_when_weights_change(model):
    batch = images(4, model)
    model.optimize_for_inference()
    with torch.no_grad():
        model.visual.attnpool.c_proj.weight.mul_(-1.0)  # an in-place update, as an optimiser step does
    with pytest.warns(UserWarning, match="weights, dtype or device changed"):
        got = model.encode_image(batch)
    torch.testing.assert_close(got, eager_embeddings(model, batch), atol=1e-6, rtol=0)
    assert not graphs.is_optimized(model)

    model.optimize_for_inference()
    other = create_model(PLIPConfig.tiny()).eval()
    model.load_state_dict(other.state_dict())
    with pytest.warns(UserWarning, match="changed"):
        got = model.encode_image(batch)
    torch.testing.assert_close(got, eager_embeddings(other, batch), atol=1e-6, rtol=0)


def test_graphs_do_not_touch_the_weights_or_saving(model, tmp_path):
    keys = set(model.state_dict())
    model.optimize_for_inference(text="int8")
    assert set(model.state_dict()) == keys
    model.save_pretrained(tmp_path / "m")
    from plip import load

    reloaded = load(str(tmp_path / "m"))
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, reloaded.state_dict()[name]), name


def test_int8_text_is_close_to_float32():
    """On the trained embedded model (distinct captions get distinct embeddings)."""
    from plip import load

    trained = load("plip-tiny-synth")
    captions = [c for c in CAPTIONS if c] + ["a child in a yellow raincoat with green boots", "an old man with a cane"]
    reference = trained.encode_text(captions)
    trained.optimize_for_inference(image=False, text="int8")
    assert graphs.image_graph(trained, torch.zeros(1, 3, *trained.config.vision.image_size)) is None
    quantized = trained.encode_text(captions)
    cosine = (reference * quantized).sum(-1)
    assert cosine.min() > 0.99, cosine
    assert not torch.equal(reference, quantized)  # the quantised layers really ran
    # input order kept: each caption is closest to its own float32 embedding
    assert torch.equal((quantized @ reference.T).argmax(1), torch.arange(len(captions)))


def test_bad_requests_are_named(model):
    with pytest.raises(PlipError, match="text must be None or 'int8'"):
        model.optimize_for_inference(text="int4")
    with pytest.raises(PlipError, match="image must be"):
        model.optimize_for_inference(image="fast")
    with pytest.raises(PlipError, match="CPU float32"):
        model.to(torch.float64).optimize_for_inference()


def test_no_warnings_from_tracing(model):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.optimize_for_inference()


@pytest.mark.slow
def test_compiled_image_encoder_equals_eager(model):
    """torch.compile (inductor, frozen weights) for one micro-batch shape, short batches padded."""
    batch = images(5, model)
    reference = eager_embeddings(model, batch)
    model.optimize_for_inference(image="compile")
    torch.testing.assert_close(model.encode_image(batch), reference, atol=1e-5, rtol=0)
    torch.testing.assert_close(model.encode_image(batch[:1]), reference[:1], atol=1e-5, rtol=0)
    big = images(40, model)  # more than one compiled micro-batch
    torch.testing.assert_close(model.encode_image(big, batch_size=40), eager_embeddings(model, big), atol=1e-5, rtol=0)
