"""One conformance suite over every registry (as timm's ``tests/test_models.py``).

Adding an entry to a registry adds it here with no edit:

- :data:`plip.models.ARCHITECTURES`: forward shapes, ``save_pretrained`` / ``plip.load`` bit-exact,
  batch-size invariance, official-key round trip (the official checkpoint layout is
  ``ImgEncoder_state_dict`` / ``TxtEncoder_state_dict``; DESIGN.md);
- :data:`plip.hub.MODELS` entries buildable offline (embedded in the package);
- :data:`plip.downstream.DOWNSTREAM_MODELS`: train/eval forward, save/load reproduces outputs;
- every ``timm.list_models("plip_*")`` against timm's model contract (forward, backward,
  ``num_features`` / ``head_hidden_size``, ``reset_classifier``, ``features_only``,
  ``forward_intermediates``, default cfg keys).

References: the model's own forward (invariance, round trips) and timm's documented contract.
"""

from __future__ import annotations

import pytest
import torch

import plip
from plip.downstream import DOWNSTREAM_MODELS, load_model
from plip.hub import MODELS
from plip.models import ARCHITECTURES, build_config

CAPTIONS = ["a man in a black shirt and pink shorts", "a woman", "a person carrying a large red backpack"]


def _images(n: int, size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, *size, generator=torch.Generator().manual_seed(seed))


# -- architectures ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_architecture(name, tmp_path):
    torch.manual_seed(0)
    config = build_config(name)
    model = plip.create_model(config).eval()
    size = tuple(config.vision.image_size)
    x = _images(3, size)
    with torch.no_grad():
        emb = model.visual(x)
        assert emb.shape == (3, config.embed_dim)
        assert model.visual.forward_features(x).shape[1] == model.visual.num_features
        assert model.visual.head_hidden_size == config.embed_dim
        # batch-size invariance (eval mode: no sample sees another)
        torch.testing.assert_close(model.visual(x[:1]), emb[:1], rtol=1e-4, atol=1e-5)
    text = model.encode_text(CAPTIONS, normalize=False)
    assert text.shape == (3, config.embed_dim)
    # encode_text runs TextEncoder.embed (last layer for [CLS] only): the full forward is the reference
    tokens = model.tokenizer(CAPTIONS)
    with torch.no_grad():
        full = model.text(tokens["input_ids"], tokens["attention_mask"]).embedding
    torch.testing.assert_close(text, full, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(model.encode_text(CAPTIONS[:1], normalize=False), text[:1], rtol=1e-4, atol=1e-5)

    model.save_pretrained(tmp_path / "folder")
    loaded = plip.load(tmp_path / "folder")
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert loaded.config == config

    official = tmp_path / "official.pth.tar"
    torch.save({"ImgEncoder_state_dict": model.visual.state_dict(),
                "TxtEncoder_state_dict": model.text.state_dict()}, official)
    again = plip.load(official, config=config)
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


def test_every_tower_kind_is_built_and_covered():
    """Each ``vision.kind`` has a registered tower, and some architecture above exercises it."""
    from plip.models import VISION_KINDS, VISION_TOWERS, build_vision_tower

    build_vision_tower(build_config("tiny").vision)  # imports every tower module
    assert set(VISION_TOWERS) == set(VISION_KINDS)
    assert {build_config(name).vision.kind for name in ARCHITECTURES} == set(VISION_KINDS)
    for name in ("tiny", "swin-micro"):  # one small architecture per kind
        vision = build_config(name).vision
        assert type(build_vision_tower(vision)) is VISION_TOWERS[vision.kind]


# -- registry models -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MODELS))
def test_registry_model(name, tmp_path):
    entry = MODELS[name]
    if not entry.embedded:
        pytest.skip(f"{name} comes from the Hub ({entry.source}), unreachable in tests")
    model = plip.load(name)
    assert model.name_or_path == name and not model.training
    size = tuple(model.config.vision.image_size)
    images = (_images(2, size) * 0.5).clamp(-2, 2)
    emb = model.encode_image(images)
    txt = model.encode_text(CAPTIONS)
    assert emb.shape == (2, model.embed_dim) and txt.shape == (3, model.embed_dim)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))
    model.save_pretrained(tmp_path / name)
    again = plip.load(tmp_path / name)
    torch.testing.assert_close(again.encode_text(CAPTIONS), txt, rtol=0, atol=0)


# -- downstream model types ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(DOWNSTREAM_MODELS))
def test_downstream_model_type(kind, tmp_path):
    cls = DOWNSTREAM_MODELS[kind]
    kwargs = dict(cls.tiny_example_kwargs())
    size = tuple(kwargs.pop("input_size"))
    torch.manual_seed(0)
    model = cls(pretrained=False, **kwargs)
    assert model.model_type == kind and model.load_report is None
    x = _images(4, size)
    model.train()
    out = model(x)
    loss = sum(t.float().pow(2).mean() for t in (out if isinstance(out, tuple) else [out])
               for t in (t if isinstance(t, (tuple, list)) else [t]))
    loss.backward()
    model.eval()
    with torch.no_grad():
        reference = model(x)
    model.save_pretrained(tmp_path / kind)
    loaded = load_model(tmp_path / kind)
    assert type(loaded) is cls and not loaded.training
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), reference, rtol=0, atol=0)
    assert loaded.preprocess_config == model.preprocess_config


# -- timm ----------------------------------------------------------------------------------------------
def _timm_models() -> list[str]:
    import timm

    import plip.timm  # noqa: F401  (registers)

    return timm.list_models("plip_*")


@pytest.mark.parametrize("name", _timm_models())
def test_timm_model_contract(name):
    import timm

    model = timm.create_model(name)
    cfg = model.pretrained_cfg
    for key in ("input_size", "interpolation", "mean", "std", "crop_pct", "first_conv", "classifier"):
        assert key in cfg, key
    size = cfg["input_size"][1:]
    x = _images(2, size)
    features = model.forward_features(x)
    assert features.shape[1] == model.num_features
    pooled = model.forward_head(features, pre_logits=True)
    assert pooled.shape == (2, model.head_hidden_size)
    assert model(x).shape == (2, model.head_hidden_size)  # num_classes=0: no classifier
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)

    model.reset_classifier(7)
    assert model(x).shape == (2, 7) and model.get_classifier().out_features == 7
    final, inter = model.forward_intermediates(x)
    torch.testing.assert_close(final, model.forward_features(x))
    assert [t.shape[1] for t in inter] == [info["num_chs"] for info in model.feature_info]
    assert [size[0] // t.shape[2] for t in inter] == [info["reduction"] for info in model.feature_info]

    model.set_grad_checkpointing(True)
    model.train()
    loss = model(x).sum()
    loss.backward()

    net = timm.create_model(name, features_only=True, out_indices=(1, 3))
    maps = net(x)
    assert [m.shape[1] for m in maps] == net.feature_info.channels()
