"""BoT, MGN and the attribute-recognition baseline on tiny PLIP backbones, and their losses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import plip
from plip.downstream import (
    MGN,
    AttributeRecognizer,
    BoT,
    BoTLoss,
    CenterLoss,
    CrossEntropyLabelSmooth,
    MGNLoss,
    TripletLoss,
    WeightedBCELoss,
    positive_ratio,
)
from plip.errors import ConfigError
from plip import PLIPModel, create_model
from plip.models import PLIPConfig


def _mgn_config() -> PLIPConfig:
    """Tiny, but with two layer3 blocks so MGN's branches copy a non-empty layer3[1:]."""
    config = PLIPConfig.tiny()
    config.vision.layers = (1, 1, 2, 1)
    return config.validate()


def _person_batch(ids: int, per_id: int, size=(64, 32), seed: int = 0):
    """Synthetic persons (plip.data.synthetic): ``per_id`` shots of each of ``ids`` rendered
    identities, preprocessed as PLIP does to ``size``; labels 0..ids-1."""
    images, labels, _ = _synthetic_persons(ids, per_id, size, seed)
    return images, labels


def _synthetic_persons(ids: int, per_id: int, size=(64, 32), seed: int = 0):
    from plip.data.synthetic import render_image, sample_identities, sample_variation
    from plip.data.transforms import ImagePreprocess
    from plip.models.config import PreprocessConfig

    preprocess = ImagePreprocess(PreprocessConfig(image_size=size))
    people = sample_identities(ids, seed=seed)
    images = [
        preprocess(render_image(person, sample_variation(np.random.default_rng([seed, person.person_id, shot]))))
        for person in people
        for shot in range(per_id)
    ]
    labels = torch.arange(ids).repeat_interleave(per_id)
    return torch.stack(images), labels, [people[i] for i in labels.tolist()]


def _attribute_labels(people) -> torch.Tensor:
    """Visible attributes of each synthetic person (female, long hair, cap, backpack, short sleeves)."""
    rows = [
        [p.gender == "female", p.hair_length == "long", p.cap_colour is not None, p.bag_kind == "backpack",
         p.sleeve == "short"]
        for p in people
    ]
    return torch.tensor(rows, dtype=torch.float32)


def _train(model, criterion, images, targets, steps: int, lr: float = 1e-3):
    params = [p for p in list(model.parameters()) + list(criterion.parameters()) if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        loss = criterion(model(images), targets)
        loss = loss["loss"] if isinstance(loss, dict) else loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


# -- losses against hand-computed values ---------------------------------------------------------
def test_label_smoothing_cross_entropy_matches_the_formula():
    """q_k = (1 - eps) [k = y] + eps / K; loss = -sum_k q_k log p_k, averaged (Szegedy 2016 / BoT)."""
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    targets = torch.tensor([2, 0])
    eps, k = 0.1, 3
    lse = math.log(math.e + math.e**2 + math.e**3)
    row1 = -sum((eps / k + (1 - eps) * (j == 2)) * ((j + 1) - lse) for j in range(3))
    row2 = math.log(3)  # uniform logits: every log p is -log 3 and the q sum to one
    assert CrossEntropyLabelSmooth(eps)(logits, targets).item() == pytest.approx((row1 + row2) / 2, rel=1e-6)
    assert row1 == pytest.approx(0.507606, abs=1e-6)


def test_batch_hard_triplet_on_a_hand_example():
    """1-d features: id 0 at {0, 2}, id 1 at {1, 5}. Hardest (positive, negative) distances per
    anchor: 0 -> (2, 1), 2 -> (2, 1), 1 -> (4, 1), 5 -> (4, 3); hinge with margin 0.3 gives
    1.3, 1.3, 3.3, 1.3 (mean 1.8); soft margin gives mean log(1 + exp(d_ap - d_an))."""
    features = torch.tensor([[0.0], [2.0], [1.0], [5.0]])
    labels = torch.tensor([0, 0, 1, 1])
    assert TripletLoss(0.3)(features, labels).item() == pytest.approx(1.8, abs=1e-5)
    soft = (3 * math.log(1 + math.e) + math.log(1 + math.e**3)) / 4
    assert TripletLoss(None)(features, labels).item() == pytest.approx(soft, abs=1e-5)
    # a batch of a single identity has no negative: no triplet, zero loss, still differentiable
    single = TripletLoss(0.3)(features.requires_grad_(), torch.zeros(4, dtype=torch.long))
    assert single.item() == 0.0
    single.backward()


def test_center_loss_is_the_mean_squared_distance_to_the_own_centre():
    loss = CenterLoss(num_classes=2, feat_dim=2)
    with torch.no_grad():
        loss.centers.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    value = loss(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([0, 1]))
    assert value.item() == pytest.approx((5 + 13) / 2)  # |(1,2)|^2 = 5, |(2,3)|^2 = 13


def test_weighted_bce_matches_ratio2weight():
    """Rethink strong baseline: w = exp(1 - r) for positives, exp(r) for negatives; BCE * w summed
    over attributes and averaged over images; label 2 (RAP 'uncertain') is ignored."""
    logits = torch.tensor([[0.0, 2.0], [-1.0, 0.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    ratio = torch.tensor([0.25, 0.5])

    def bce(x, y):
        return -(y * math.log(1 / (1 + math.exp(-x))) + (1 - y) * math.log(1 - 1 / (1 + math.exp(-x))))

    expected = (
        bce(0.0, 1) * math.exp(1 - 0.25) + bce(2.0, 0) * math.exp(0.5) + bce(-1.0, 0) * math.exp(0.25)
    ) / 2
    assert WeightedBCELoss(ratio)(logits, targets).item() == pytest.approx(expected, rel=1e-6)
    unweighted = (bce(0.0, 1) + bce(2.0, 0) + bce(-1.0, 0)) / 2
    assert WeightedBCELoss()(logits, targets).item() == pytest.approx(unweighted, rel=1e-6)
    torch.testing.assert_close(positive_ratio(torch.tensor([[1, 0], [0, 0], [1, 1], [1, 0]])), torch.tensor([0.75, 0.25]))
    with pytest.raises(ConfigError, match="pos_ratio has 3"):
        WeightedBCELoss(torch.tensor([0.1, 0.2, 0.3]))(logits, targets)


# -- BoT ------------------------------------------------------------------------------------------
def test_bot_shapes_and_bnneck(tiny_config):
    """Train: (cls_score, global_feat = GAP of layer4); eval: BN(global_feat) with the running
    statistics (BNNeck, Luo et al. 2019), or global_feat with neck_feat='before'."""
    model = BoT(5, tiny_config, pretrained=False)
    images, labels = _person_batch(4, 2)
    assert model.bottleneck.bias.requires_grad is False and model.classifier.bias is None
    cls_score, global_feat = model(images)
    assert cls_score.shape == (8, 5) and global_feat.shape == (8, 256) and model.embed_dim == 256
    with torch.no_grad():
        torch.testing.assert_close(global_feat, model.backbone(images).mean(dim=(2, 3)))
    _train(model, BoTLoss(5, model.feat_dim), images, labels, steps=2, lr=0.1)
    assert torch.count_nonzero(model.bottleneck.bias) == 0  # frozen at zero
    model.eval()
    with torch.no_grad():
        feat = model(images)
        gap = model.backbone(images).mean(dim=(2, 3))
        bn = model.bottleneck
        manual = (gap - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    torch.testing.assert_close(feat, manual, rtol=1e-5, atol=1e-5)
    model.neck_feat = "before"
    with torch.no_grad():
        torch.testing.assert_close(model(images), gap)
    with pytest.raises(ConfigError, match="neck_feat"):
        BoT(5, tiny_config, pretrained=False, neck_feat="middle")


def test_saved_plip_checkpoint_loads_into_the_bot_backbone(tiny_folder, tmp_path):
    """A folder written by plip.load(...).save_pretrained loads with no missing backbone keys."""
    folder = tmp_path / "resaved"
    plip.load(tiny_folder).save_pretrained(folder)
    model = BoT.from_pretrained(folder, num_classes=3)
    report = model.backbone.load_report
    assert report.missing_keys == [] and report.unexpected_keys == []
    source = plip.load(folder).visual.state_dict()
    backbone_state = model.backbone.state_dict()
    assert set(backbone_state) == {k for k in source if not k.startswith("attnpool.")}
    for key, value in backbone_state.items():
        assert torch.equal(value, source[key]), key
    assert model.backbone.config.last_stride == 1


def test_bot_loss_terms(tiny_config):
    model = BoT(4, tiny_config, pretrained=False)
    images, labels = _person_batch(2, 2)
    out = model(images)
    terms = BoTLoss(4, model.feat_dim, center_weight=5e-4)(out, labels)
    expected = CrossEntropyLabelSmooth(0.1)(out.cls_score, labels) + TripletLoss(0.3)(out.global_feat, labels)
    assert terms["loss"].item() == pytest.approx((expected + 5e-4 * terms["center"]).item(), rel=1e-6)


def test_bot_training_steps_reduce_the_loss(tiny_config):
    torch.manual_seed(0)
    model = BoT(4, tiny_config, pretrained=False)
    images, labels = _person_batch(4, 4)
    losses = _train(model, BoTLoss(4, model.feat_dim), images, labels, steps=6)
    assert losses[-1] < 0.7 * losses[0], losses


# -- MGN ------------------------------------------------------------------------------------------
def test_mgn_branches_shapes_and_weights(tmp_path):
    """Shared trunk = stem..layer3[0]; branch 0 keeps layer4's stride 2, the part branches use
    stride 1 (identity average pools); all start from the pretrained layer3[1:] / layer4."""
    config = _mgn_config()
    source = create_model(config)
    source.save_pretrained(tmp_path / "m")
    model = MGN.from_pretrained(tmp_path / "m", num_classes=6, image_size=(96, 32))
    assert model.load_report.missing_keys == []
    visual = source.visual.state_dict()
    assert len(model.backbone.layer3) == 1 and model.backbone.layer4 is None
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, visual[key]), key
    for index, branch in enumerate(model.branches):
        for key, value in branch[0].state_dict().items():  # layer3[1:], keys "1.*"
            assert torch.equal(value, visual[f"layer3.{key}"]), key
        for key, value in branch[1].state_dict().items():
            assert torch.equal(value, visual[f"layer4.{key}"]), key
        pool = branch[1][0].avgpool
        assert isinstance(pool, torch.nn.AvgPool2d) if index == 0 else isinstance(pool, torch.nn.Identity)

    images, labels = _person_batch(3, 2, size=(96, 32))
    out = model(images)
    assert len(out.global_feats) == 3 and all(f.shape == (6, 256) for f in out.global_feats)
    assert len(out.logits) == 8 and all(logit.shape == (6, 6) for logit in out.logits)
    assert out.features.shape == (6, 8 * 256) == (6, model.embed_dim)
    with torch.no_grad():
        shared = model.backbone(images)
        assert [tuple(b(shared).shape[2:]) for b in model.branches] == [(3, 1), (6, 2), (6, 2)]
        assert model.eval()(images).shape == (6, 2048)
    terms = MGNLoss()(out, labels)
    expected_id = sum(torch.nn.functional.cross_entropy(logit, labels) for logit in out.logits) / 8
    assert terms["id"].item() == pytest.approx(expected_id.item(), rel=1e-6)


def test_mgn_part_pooling_takes_the_maximum_of_each_stripe():
    """3 stripes of a 6-row map: the maxima of rows 0-1, 2-3 and 4-5 (hand-computed)."""
    model = MGN(2, _mgn_config(), pretrained=False, image_size=(96, 32))
    x = torch.arange(12.0).view(1, 1, 6, 2)
    assert model._pool(x, 3).flatten().tolist() == [3.0, 7.0, 11.0]
    assert model._pool(x, 1).item() == 11.0


def test_mgn_training_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = MGN(3, _mgn_config(), pretrained=False, image_size=(64, 32), feat_dim=32)
    images, labels = _person_batch(3, 4, size=(64, 32))
    losses = _train(model, MGNLoss(), images, labels, steps=4)
    assert losses[-1] < 0.7 * losses[0], losses


# -- attribute recognition ----------------------------------------------------------------------
def test_attribute_recognizer_shapes_and_predict(tiny_folder, person_images):
    names = ["female", "hat", "backpack"]
    model = AttributeRecognizer.from_pretrained(tiny_folder, attribute_names=names)
    assert model.backbone.load_report.missing_keys == []
    images, _ = _person_batch(2, 2)
    assert model(images).shape == (4, 3)
    predictions = model.predict_attributes(person_images, names=["backpack", "female"], batch_size=3)
    assert len(predictions) == len(person_images)
    assert all(list(p) == ["backpack", "female"] for p in predictions)
    preprocess = model.backbone.preprocess
    with torch.no_grad():
        model.eval()
        probs = torch.sigmoid(model(torch.stack([preprocess(p) for p in person_images])))
    for row, pred in zip(probs, predictions):
        assert pred["backpack"] == pytest.approx(row[2].item(), abs=1e-6)
        assert pred["female"] == pytest.approx(row[0].item(), abs=1e-6)
    assert model.predict_attributes(images[:1])[0].keys() == set(names)
    with pytest.raises(ConfigError, match="unknown attribute"):
        model.predict_attributes(images, names=["umbrella"])
    with pytest.raises(ConfigError, match="duplicate"):
        AttributeRecognizer(["a", "a"], PLIPConfig.tiny(), pretrained=False)


def test_attribute_recognizer_training_steps_reduce_the_loss(tiny_config):
    torch.manual_seed(0)
    model = AttributeRecognizer(5, tiny_config, pretrained=False)
    images, _, people = _synthetic_persons(6, 3)
    attributes = _attribute_labels(people)
    criterion = WeightedBCELoss(positive_ratio(attributes))
    losses = _train(model, criterion, images, attributes, steps=6)
    assert losses[-1] < 0.7 * losses[0], losses
