"""timm image towers for PLIP (``vision.kind: timm``).

References: timm's own forward (``forward_features`` / the class token / its
``feature_info``) for the tower's outputs; the shipped recipe ``pretrain_tiny_timm`` through
the training engine for pre-training with the three pretext tasks; ``plip.load`` of the export.
The conformance suite (tests/test_conformance.py) covers every registered architecture,
``swin-b`` and ``swin-micro`` included.
"""

from __future__ import annotations

import json
import math

import pytest
import timm
import torch

import plip
from plip.errors import ConfigError
from plip.models import PLIPConfig, TimmTowerConfig, TimmVisionTower, build_config
from plip.models.config import VisionConfig


def _vision(model_name: str, pool: str = "avg", size=(64, 32), heads: int = 8, **kwargs) -> VisionConfig:
    return VisionConfig(kind="timm", pool=pool, image_size=size, output_dim=32, heads=heads,
                        timm=TimmTowerConfig(model_name=model_name, kwargs=kwargs))


VIT_MICRO = dict(patch_size=8, embed_dim=32, depth=4, num_heads=2)
SWIN_MICRO = build_config("swin-micro").vision.timm.kwargs


def test_swin_tower_maps_are_timms_own():
    """forward_features = timm's forward_features (NHWC -> NCHW); stage maps and their
    channels / strides = timm's forward_intermediates / feature_info."""
    torch.manual_seed(0)
    tower = TimmVisionTower(build_config("swin-micro").vision).eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        ours = tower.forward_features(x)
        theirs = tower.trunk.forward_features(x).permute(0, 3, 1, 2)
        torch.testing.assert_close(ours, theirs)
        maps = tower.forward_intermediates(x, intermediates_only=True)
    info = tower.trunk.feature_info
    assert [m.shape[1] for m in maps] == [i["num_chs"] for i in info] == list(tower.stage_channels)
    assert [64 // m.shape[2] for m in maps] == [i["reduction"] for i in info] == list(tower.reductions)
    with torch.no_grad():
        torch.testing.assert_close(tower(x), tower.proj(theirs.mean(dim=(2, 3))))


def test_token_pool_reads_the_class_token():
    """pool 'token': the projection of the normed class token (timm ViT's forward_features[:, 0])."""
    torch.manual_seed(0)
    tower = TimmVisionTower(_vision("vit_tiny_patch16_224", pool="token", **VIT_MICRO)).eval()
    x = torch.randn(3, 3, 64, 32)
    with torch.no_grad():
        expected = tower.proj(tower.trunk.forward_features(x)[:, 0])
        torch.testing.assert_close(tower(x), expected)
        assert tower.forward_features(x).shape == (3, 32, 8, 4)
    with pytest.raises(ValueError, match="class token"):
        tower.forward_head(tower.forward_features(x))


def test_a_cnn_tower_with_attention_pool():
    """A timm ResNet (no img_size argument) with PLIP's attention pool on its 2x1 last map."""
    tower = TimmVisionTower(_vision("resnet18", pool="attention", channels=(8, 16, 32, 64))).eval()
    assert tower.stage_channels == (8, 16, 32, 64) and tower.reductions == (4, 8, 16, 32)
    assert tower.attnpool.grid == (2, 1)
    assert tower(torch.randn(2, 3, 64, 32)).shape == (2, 32)


@pytest.mark.parametrize("vision, message", [
    (lambda: _vision("vit_tiny_patch16_224", pool="attention", heads=5, **VIT_MICRO), "heads=5 must divide"),
    (lambda: _vision("resnet18", pool="token", channels=(8, 16, 32, 64)), "needs a class token"),
    (lambda: _vision("resnet18", size=(60, 32), channels=(8, 16, 32, 64)), "not divisible by resnet18's output stride 32"),
    (lambda: _vision("no_such_model_xyz"), "is not a timm model"),
    (lambda: _vision("resnet18", no_such_kwarg=1), "building it failed"),
    (lambda: VisionConfig(kind="timm", pool="avg", image_size=(64, 32), output_dim=32,
                          timm=TimmTowerConfig(model_name="resnet18", out_indices=(9,))), "has 5 feature stages"),
    (lambda: VisionConfig(kind="timm", pool="max", image_size=(64, 32), output_dim=32), "vision.timm section is missing"),
    (lambda: VisionConfig(kind="modified_resnet", pool="avg"), "pool must be 'attention' or 'max'"),
])
def test_shape_mismatches_are_clear_errors_at_build_time(vision, message):
    with pytest.raises(ConfigError, match=message):
        TimmVisionTower(vision())


def test_tic_on_a_single_scale_tower_is_refused_when_the_heads_are_built():
    """A ViT gives four maps at one stride (8 here): the TIC decoder (x4 upsampling from stride 4) cannot
    use them; the error comes from PretrainHeads.for_model, before any forward."""
    from plip.training.pretext import PretrainHeads

    config = PLIPConfig(vision=_vision("vit_tiny_patch16_224", **VIT_MICRO), text=build_config("tiny").text,
                        preprocess=build_config("tiny").preprocess).validate()
    model = plip.create_model(config)
    with pytest.raises(ConfigError, match=r"strides \[8, 8, 8, 8\].*tic_weight: 0"):
        PretrainHeads.for_model(model, tic=True)
    assert PretrainHeads.for_model(model, tic=False).decoder is None


def test_pretrained_trunk_from_a_local_file(tmp_path):
    """vision.timm.pretrained = a local file: the trunk holds exactly its tensors (timm loads it)."""
    from safetensors.torch import save_file

    torch.manual_seed(1)
    source = timm.create_model("swin_tiny_patch4_window7_224", num_classes=0, img_size=(64, 32), **SWIN_MICRO)
    path = tmp_path / "trunk.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    vision = build_config("swin-micro").vision
    vision.timm.pretrained = str(path)
    tower = TimmVisionTower(vision, pretrained=vision.timm.pretrained)
    for key, value in source.state_dict().items():
        assert torch.equal(tower.trunk.state_dict()[key], value), key
    random_init = TimmVisionTower(build_config("swin-micro").vision)
    assert not torch.equal(random_init.trunk.state_dict()["patch_embed.proj.weight"], source.state_dict()["patch_embed.proj.weight"])
    vision.timm.pretrained = str(tmp_path / "missing.safetensors")
    with pytest.raises(ConfigError, match="missing.safetensors is not a file"):
        TimmVisionTower(vision, pretrained=vision.timm.pretrained)


def test_config_json_records_the_timm_architecture(tmp_path):
    config = build_config("swin-micro")
    config.save(tmp_path / "config.json")
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["vision"]["kind"] == "timm"
    assert data["vision"]["timm"]["model_name"] == "swin_tiny_patch4_window7_224"
    assert PLIPConfig.load(tmp_path / "config.json") == config
    del data["vision"]["timm"]["model_name"]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="bad.json.*model_name is empty"):
        PLIPConfig.load(tmp_path / "bad.json")


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    from plip.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("synth") / "persons"
    generate_dataset(root, identities=8, images_per_id=3, seed=5, workers=0, progress=False, split=(1.0, 0.0, 0.0))
    return root


def test_tiny_timm_recipe_pretrains_with_three_tasks_exports_and_finetunes(synth_root, tmp_path):
    """The shipped recipe: IVLC + TIC + IAP on a random-init timm Swin; the loss falls over 6
    epochs on 24 images (2 steps per epoch); the export is a PLIP folder plip.load reads (timm tower, no heads) and
    CMPM/C fine-tuning continues from it."""
    from plip.training import load_config, train
    from plip.training.tasks.finetune import FinetuneConfig, FinetuneTask
    from plip.training.tasks.pretrain import PretrainConfig, PretrainTask

    common = [f"data.root={synth_root}", "logging.progress=false", "logging.every_steps=1", "eval.every_epochs=0"]
    cfg = load_config(PretrainConfig, "pretrain_tiny_timm", common + [
        "train.epochs=6", "train.batch_size=8", "optim.lr=0.003", f"output_dir={tmp_path / 'pre'}"])
    result = train(PretrainTask(), cfg, task_name="pretrain")
    steps = [json.loads(line) for line in (tmp_path / "pre" / "metrics.jsonl").read_text().splitlines()]
    losses = [s for s in steps if s["kind"] == "step"]
    assert len(losses) >= 10 and {"ivlc", "tic", "iap"} <= set(losses[0])
    first = sum(s["loss"] for s in losses[:3]) / 3
    last = sum(s["loss"] for s in losses[-3:]) / 3
    assert last < first, (first, last)
    assert all(math.isfinite(s["loss"]) for s in losses)

    encoder = plip.load(result.export_dir)
    assert encoder.config.vision.kind == "timm" and isinstance(encoder.visual, TimmVisionTower)
    assert set(encoder.state_dict()) == set(plip.create_model(encoder.config).state_dict())
    images = sorted(synth_root.rglob("*.jpg"))[:4]
    emb = encoder.encode_image(images)
    txt = encoder.encode_text(["a man in a red shirt", "a woman"])
    assert emb.shape == (4, encoder.embed_dim) and txt.shape == (2, encoder.embed_dim)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(4))

    ft = load_config(FinetuneConfig, "finetune_cmpmc", common + [
        f"model.init={result.export_dir}", "model.freeze_text_layers=0", "data.dataset=synth-pedes",
        "data.image_size=[64,32]", "data.num_workers=0", "train.batch_size=8", "train.epochs=1", "train.max_steps=2",
        "sampler.num_instances=2", f"output_dir={tmp_path / 'ft'}", "train.amp=none", "train.sync_bn=false",
    ])
    tuned = train(FinetuneTask(), ft, task_name="finetune")
    assert plip.load(tuned.export_dir).config.vision == encoder.config.vision


def test_a_timm_tower_model_exports_and_runs_in_onnxruntime(tmp_path):
    """plip export / runtime="onnxruntime" work for a timm tower: the exported graph's embeddings
    equal the PyTorch tower's (oracle: model.encode_image) within 1e-5."""
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = plip.create_model(build_config("swin-micro")).eval()
    model.save_pretrained(tmp_path / "swin")
    result = plip.export(plip.load(tmp_path / "swin"), tower="image", format="onnx", out=tmp_path / "onnx")
    assert result.parity["image"] <= 1e-5
    images = torch.rand(5, 3, 64, 32) * 2 - 1
    ort_model = plip.load(tmp_path / "swin", runtime="onnxruntime")
    torch.testing.assert_close(ort_model.encode_image(images), model.encode_image(images), atol=1e-5, rtol=0)


def test_bot_and_the_attribute_recogniser_on_a_timm_tower(tmp_path):
    """plip.backbone of a timm-tower folder loads strictly (oracle: the saved tower's own
    embedding with attn_pool=True); BoT / AttributeRecognizer train, evaluate and round-trip
    through save_model / load_model; MGN and last_stride=1 are clear errors."""
    from plip.downstream import MGN, AttributeRecognizer, BoT, load_model, save_model
    from plip.downstream.timm_backbone import TimmBackbone

    torch.manual_seed(0)
    model = plip.create_model(build_config("swin-micro")).eval()
    model.save_pretrained(tmp_path / "swin")
    x = torch.randn(4, 3, 64, 32)
    pooled = plip.backbone(tmp_path / "swin", attn_pool=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(pooled(x), model.visual(x))
    maps = plip.backbone(tmp_path / "swin", out_indices=(1, 3))
    assert isinstance(maps, TimmBackbone) and [m.shape[1] for m in maps(x)] == [32, 128]

    bot = BoT(6, backbone=tmp_path / "swin", last_stride=2)
    out = bot(x)
    assert out.cls_score.shape == (4, 6) and out.global_feat.shape == (4, 128)
    out.cls_score.sum().backward()
    assert bot.backbone.trunk.patch_embed.proj.weight.grad is not None
    par = AttributeRecognizer(["female", "hat"], backbone=tmp_path / "swin")
    for net in (bot, par):
        net.eval()
        with torch.no_grad():
            before = net(x)
        save_model(net, tmp_path / type(net).__name__)
        with torch.no_grad():
            torch.testing.assert_close(load_model(tmp_path / type(net).__name__)(x), before)
    with pytest.raises(ConfigError, match="use last_stride=2"):
        BoT(6, backbone=tmp_path / "swin")
    with pytest.raises(ConfigError, match="MGN: its branches copy"):
        MGN(6, backbone=tmp_path / "swin", image_size=None)
