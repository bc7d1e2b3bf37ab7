"""PLIP models in the real torchreid (PyPI ``torchreid``; skipped when it is not installed).

Oracles: plip's own losses (:class:`~plip.downstream.CrossEntropyLabelSmooth`,
:class:`~plip.downstream.TripletLoss`, :class:`~plip.downstream.MGNLoss`) on the very batch
and outputs torchreid's engines trained on, and ``model.encode_image`` (plip's own
preprocessing) for the features torchreid's data pipeline produces.
"""

from __future__ import annotations

import importlib.util

import warnings

import numpy as np
import pytest
import torch

if importlib.util.find_spec("torchreid") is None:  # skip only when the package is absent, never on a broken install
    pytest.skip("torchreid is not installed (pip install \"plip-person[integrations]\")", allow_module_level=True)
import torchreid  # noqa: E402

import plip  # noqa: E402
import plip.integrations.torchreid as plip_torchreid  # noqa: E402
from plip.data.synthetic.formats import write_market1501  # noqa: E402
from plip.downstream import CrossEntropyLabelSmooth, MGNLoss, MGNOutput, TripletLoss  # noqa: E402
from plip.errors import ConfigError  # noqa: E402

TINY = "plip-tiny-synth"


@pytest.fixture(scope="module")
def market_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("reid")
    write_market1501(root / "market1501", identities=16, images_per_id=4, progress=False)
    return root


@pytest.fixture(scope="module", autouse=True)
def tiny_models():
    plip_torchreid.register("plip_bot_tiny", "bot", backbone=TINY, overwrite=True)
    plip_torchreid.register("plip_mgn_tiny", "mgn", backbone=TINY, image_size=(64, 32), overwrite=True)
    plip_torchreid.register("plip_rn50_tiny", "rn50", backbone=TINY, overwrite=True)


def _datamanager(root, name, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torchreid.data.ImageDataManager(
            root=str(root), sources="market1501", use_gpu=False, workers=0, batch_size_train=16,
            batch_size_test=32, transforms=["random_flip"], **plip_torchreid.datamanager_kwargs(name), **kwargs,
        )  # fmt: skip


def _record(engine, model):
    """Per batch: torchreid's logged loss summary, the pids and the model's raw outputs."""
    outputs, batches = [], []
    model.register_forward_hook(lambda m, i, o: outputs.append(o) if m.training else None)
    forward_backward = engine.forward_backward

    def wrapped(data):
        summary = forward_backward(data)
        batches.append((summary, data["pid"].clone(), outputs.pop()))
        return summary

    engine.forward_backward = wrapped
    results = []
    test = engine.test
    engine.test = lambda *a, **k: results.append(test(*a, **k)) or results[-1]
    return batches, results


def _detach(value):
    return value.detach() if torch.is_tensor(value) else [_detach(v) for v in value]


def test_registered_names_and_contract(tmp_path):
    factory = plip_torchreid.model_factory()
    assert {"plip_bot", "plip_mgn", "plip_rn50"} <= set(factory)
    assert torchreid.models.build_model.__globals__["__model_factory"] is factory
    model = torchreid.models.build_model("plip_bot", num_classes=5, loss="softmax", pretrained=False, use_gpu=False)
    x = torch.randn(2, 3, 64, 32)  # any multiple of 32 (no attention pool): small and fast
    assert model(x).shape == (2, 5)
    model.loss = "triplet"
    logits, feats = model(x)
    assert logits.shape == (2, 5) and feats.shape == (2, 2048)
    assert model.eval()(x).shape == (2, 2048)
    tiny = torchreid.models.build_model("plip_bot_tiny", num_classes=5).eval()
    tiny.save_pretrained(tmp_path / "bot")  # plip's own folder format, plip's state-dict keys
    from plip.downstream import load_model

    x = torch.randn(2, 3, 64, 32)
    torch.testing.assert_close(load_model(tmp_path / "bot")(x), tiny(x))
    with pytest.raises(ConfigError, match="xent"):
        torchreid.models.build_model("plip_bot_tiny", num_classes=5, loss="xent")
    with pytest.raises(ConfigError, match="already has"):
        plip_torchreid.register("resnet50", "bot")


def test_softmax_engine_logs_plip_cross_entropy(market_root, tmp_path):
    dm = _datamanager(market_root, "plip_bot_tiny")
    model = torchreid.models.build_model("plip_bot_tiny", num_classes=dm.num_train_pids, loss="softmax")
    optimizer = torchreid.optim.build_optimizer(model, optim="sgd", lr=0.01)
    scheduler = torchreid.optim.build_lr_scheduler(optimizer, lr_scheduler="single_step", stepsize=20)
    engine = torchreid.engine.ImageSoftmaxEngine(dm, model, optimizer=optimizer, scheduler=scheduler, use_gpu=False,
                                                 label_smooth=True)  # fmt: skip
    batches, results = _record(engine, model)
    engine.run(save_dir=str(tmp_path), max_epoch=1, print_freq=1000, ranks=[1, 5])
    assert len(batches) == len(dm.train_loader) >= 3
    ce = CrossEntropyLabelSmooth(0.1)
    for summary, pids, logits in batches:
        assert torch.is_tensor(logits)  # logits only: no DeepSupervision average over features
        assert summary["loss"] == pytest.approx(ce(logits.detach(), pids).item(), rel=1e-5)
    assert len(results) == 1 and 0.0 <= results[0] <= 1.0  # torchreid's evaluation ran (rank-1)


def test_triplet_engine_bot_and_mgn(market_root, tmp_path):
    for name in ("plip_bot_tiny", "plip_mgn_tiny"):
        dm = _datamanager(market_root, name, train_sampler="RandomIdentitySampler", num_instances=4)
        model = torchreid.models.build_model(name, num_classes=dm.num_train_pids, loss="triplet")
        optimizer = torchreid.optim.build_optimizer(model, optim="adam", lr=3e-4)
        scheduler = torchreid.optim.build_lr_scheduler(optimizer, lr_scheduler="single_step", stepsize=20)
        engine = torchreid.engine.ImageTripletEngine(
            dm, model, optimizer=optimizer, scheduler=scheduler, margin=0.3, weight_t=1.0, weight_x=1.0, use_gpu=False, label_smooth=True
        )
        batches, results = _record(engine, model)
        engine.run(save_dir=str(tmp_path / name), max_epoch=1, print_freq=1000, ranks=[1, 5])
        assert batches and len(results) == 1 and 0.0 <= results[0] <= 1.0
        for summary, pids, (logits, feats) in batches:
            logits, feats = _detach(logits), _detach(feats)
            if name == "plip_bot_tiny":
                expected_x = CrossEntropyLabelSmooth(0.1)(logits, pids).item()
                expected_t = TripletLoss(0.3)(feats, pids).item()
            else:
                terms = MGNLoss(margin=0.3, epsilon=0.1)(MGNOutput(tuple(feats), tuple(logits), None), pids)
                expected_x, expected_t = terms["id"].item(), terms["triplet"].item()
            assert summary["loss_x"] == pytest.approx(expected_x, rel=1e-5)
            assert summary["loss_t"] == pytest.approx(expected_t, rel=1e-5, abs=1e-6)


def test_datamanager_normalisation_matches_plip(market_root):
    """torchreid's pipeline with datamanager_kwargs gives plip's embeddings; its defaults do not."""
    model = torchreid.models.build_model("plip_rn50_tiny", num_classes=3).eval()
    reference = plip.load(TINY)
    cosines = {}
    for label, kwargs in (("plip", {}), ("imagenet", dict(norm_mean=[0.485, 0.456, 0.406], norm_std=[0.229, 0.224, 0.225]))):
        dm_kwargs = plip_torchreid.datamanager_kwargs("plip_rn50_tiny") | kwargs
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dm = torchreid.data.ImageDataManager(root=str(market_root), sources="market1501", use_gpu=False,
                                                 workers=0, batch_size_test=64, **dm_kwargs)  # fmt: skip
        data = next(iter(dm.test_loader["market1501"]["gallery"]))  # 9 shots of 3 people + 3 distractors
        with torch.no_grad():
            feats = torch.nn.functional.normalize(model(data["img"]), dim=1)
        ref = reference.encode_image(list(data["impath"]))
        cosines[label] = (feats * ref).sum(1).numpy()
    # the rest is torchreid's bilinear resize against plip's bicubic one
    assert cosines["plip"].mean() > 0.99 and cosines["plip"].min() > 0.95, cosines["plip"]
    assert cosines["imagenet"].mean() < 0.9, cosines["imagenet"]
    assert np.isfinite(cosines["imagenet"]).all()


def test_moved_private_factory_is_a_clear_error(monkeypatch):
    """If a torchreid release renames its private registry, plip says so instead of failing later."""
    from plip.errors import PlipError

    monkeypatch.delattr(torchreid.models, "__model_factory")
    with pytest.raises(PlipError, match=r"torchreid .* has no dict torchreid.models.__model_factory"):
        plip_torchreid.model_factory()
