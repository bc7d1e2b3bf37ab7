"""PLIP in the real fast-reid (PyPI ``fastreid`` 1.4, installed with ``--no-deps``; skipped without it).

fast-reid 1.4's trainer, data and evaluation packages do not import on Python >= 3.10 /
torch 2 (``collections.Mapping``, ``torch._six``), so these tests drive its modeling
package directly: ``build_model`` from the shipped configs, forward / backward / eval.
Oracles: plip's own losses (:class:`~plip.downstream.CrossEntropyLabelSmooth`,
:class:`~plip.downstream.TripletLoss`, :class:`~plip.downstream.MGNLoss`) on the same
outputs, and plip's ReID metrics on the eval features of ``plip synth --format market1501``.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from PIL import Image

if importlib.util.find_spec("fastreid") is None:  # skip only when the package is absent, never on a broken install
    pytest.skip("fastreid is not installed (pip install fastreid==1.4.0 --no-deps)", allow_module_level=True)

from fastreid.config import get_cfg  # noqa: E402
from fastreid.modeling import build_model  # noqa: E402
from fastreid.utils.events import EventStorage  # noqa: E402

import plip.integrations.fastreid as plip_fastreid  # noqa: E402
from plip.data.image_reid import read_market1501  # noqa: E402
from plip.data.synthetic.formats import write_market1501  # noqa: E402
from plip.downstream import CrossEntropyLabelSmooth, MGNLoss, TripletLoss  # noqa: E402
from plip.errors import ConfigError  # noqa: E402
from plip.evaluation.reid_metrics import compute_rank_metrics  # noqa: E402

TINY_WIDTH = 512  # layer4 channels of plip-tiny-synth


def _cfg(name: str, **overrides):
    cfg = get_cfg()
    cfg.merge_from_file(plip_fastreid.config_path(name))
    opts = {"MODEL.DEVICE": "cpu", "MODEL.BACKBONE.PRETRAIN_PATH": "plip-tiny-synth", "MODEL.BACKBONE.FEAT_DIM": TINY_WIDTH,
            "MODEL.HEADS.NUM_CLASSES": 6, "INPUT.SIZE_TRAIN": [64, 32], "INPUT.SIZE_TEST": [64, 32], **overrides}  # fmt: skip
    cfg.merge_from_list([v for kv in opts.items() for v in kv])
    return cfg


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (8, 3, 64, 32), generator=g).float()
    return {"images": images, "targets": torch.arange(4).repeat_interleave(2)}


def test_shipped_configs_values():
    for name in plip_fastreid.CONFIGS:
        cfg = get_cfg()
        cfg.merge_from_file(plip_fastreid.config_path(name))
        assert cfg.MODEL.BACKBONE.NAME == "build_plip_backbone" and cfg.MODEL.BACKBONE.FEAT_DIM == 2048
        np.testing.assert_allclose(cfg.MODEL.PIXEL_MEAN, [255 * v for v in (0.357, 0.323, 0.328)], atol=1e-3)
        np.testing.assert_allclose(cfg.MODEL.PIXEL_STD, [255 * v for v in (0.252, 0.242, 0.239)], atol=1e-3)
    bot, mgn = (get_cfg() for _ in range(2))
    bot.merge_from_file(plip_fastreid.config_path("bagtricks_PLIP-R50.yml"))
    mgn.merge_from_file(plip_fastreid.config_path("mgn_PLIP-R50.yml"))
    assert bot.MODEL.BACKBONE.LAST_STRIDE == 1 and tuple(bot.INPUT.SIZE_TRAIN) == (256, 128)
    assert mgn.MODEL.META_ARCHITECTURE == "PLIPMGN" and tuple(mgn.INPUT.SIZE_TRAIN) == (384, 128)


def test_baseline_forward_backward_equals_plip_losses():
    torch.manual_seed(0)
    model = build_model(_cfg("bagtricks_PLIP-R50.yml")).train()
    batch = _batch()
    with EventStorage():
        losses = model({k: v.clone() for k, v in batch.items()})
    assert set(losses) == {"loss_cls", "loss_triplet"}
    sum(losses.values()).backward()
    assert model.backbone.conv1.weight.grad.abs().sum() > 0
    with torch.no_grad():  # oracle: the same network pieces, plip's losses, plip's normalisation
        from plip import PLIP_MEAN, PLIP_STD

        x = (batch["images"] / 255 - torch.tensor(PLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(PLIP_STD).view(1, 3, 1, 1)
        out = model.heads(model.backbone(x), batch["targets"])
    # fast-reid spreads epsilon over the K-1 wrong classes (target 1 - eps): plip's (and torch's)
    # eps/K-everywhere smoothing with eps' = eps * K / (K - 1) is that same target distribution.
    k = out["cls_outputs"].shape[1]
    expected_cls = CrossEntropyLabelSmooth(0.1 * k / (k - 1))(out["cls_outputs"], batch["targets"]).item()
    assert losses["loss_cls"].item() == pytest.approx(expected_cls, rel=1e-5)
    assert losses["loss_triplet"].item() == pytest.approx(TripletLoss(0.3)(out["features"], batch["targets"]).item(), rel=1e-4)
    assert model.eval()(batch["images"].clone()).shape == (8, TINY_WIDTH)


def test_plip_mgn_meta_arch_forward_backward_equals_mgn_loss():
    torch.manual_seed(0)
    model = build_model(_cfg("mgn_PLIP-R50.yml")).train()
    batch = _batch(1)
    with EventStorage():
        losses = model(batch)
    sum(losses.values()).backward()
    assert model.mgn.backbone.conv1.weight.grad.abs().sum() > 0
    with torch.no_grad():
        out = model.mgn(model.preprocess_image(batch))
    expected = MGNLoss(margin=1.2, epsilon=0.0)(out, batch["targets"])
    assert losses["loss_cls"].item() == pytest.approx(expected["id"].item(), rel=1e-4)
    assert losses["loss_triplet"].item() == pytest.approx(expected["triplet"].item(), rel=1e-4, abs=1e-6)
    assert model.eval()(batch["images"]).shape == (8, 8 * 256)


@pytest.mark.parametrize("name", plip_fastreid.CONFIGS)
def test_eval_on_synthetic_market(tmp_path, name):
    """Eval features of fast-reid's models rank the synthetic Market-1501 well above chance."""
    write_market1501(tmp_path, identities=30, images_per_id=4, progress=False, split=(0.5, 0.0, 0.5))
    split = read_market1501(tmp_path)
    model = build_model(_cfg(name, **{"MODEL.HEADS.NUM_CLASSES": split.num_train_ids})).eval()

    def feats(items):  # fast-reid's test transform: bicubic resize, 0..255 float tensors
        arrays = [np.asarray(Image.open(i.image_path).convert("RGB").resize((32, 64), Image.BICUBIC)) for i in items]
        with torch.no_grad():
            return model(torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float())

    q, g = feats(split.query), feats(split.gallery)
    q, g = torch.nn.functional.normalize(q, dim=1), torch.nn.functional.normalize(g, dim=1)
    result = compute_rank_metrics(1 - q @ g.T, [i.person_id for i in split.query], [i.person_id for i in split.gallery],
                                  [i.camera_id for i in split.query], [i.camera_id for i in split.gallery])  # fmt: skip
    chance = 3 / len(split.gallery)  # 3 true matches per query
    assert result["rank1"] > 5 * chance, result


@pytest.mark.parametrize(
    "overrides, needle",
    [({"MODEL.BACKBONE.FEAT_DIM": 2048}, "FEAT_DIM is 2048"),
     ({"MODEL.PIXEL_MEAN": [0.357, 0.323, 0.328], "MODEL.PIXEL_STD": [0.252, 0.242, 0.239]}, "0..255"),
     ({"MODEL.PIXEL_MEAN": [123.675, 116.28, 103.53], "MODEL.PIXEL_STD": [58.395, 57.12, 57.375]}, "trained with")],
)
def test_mismatched_config_is_a_clear_error(overrides, needle):
    for name in plip_fastreid.CONFIGS:
        if name.startswith("mgn") and "FEAT_DIM" in str(overrides):
            continue  # PLIPMGN does not read FEAT_DIM: its reduction width is HEADS.EMBEDDING_DIM
        with pytest.raises(ConfigError, match=needle):
            build_model(_cfg(name, **overrides))
