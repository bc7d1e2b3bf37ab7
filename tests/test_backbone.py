"""The PLIP backbone (plip.backbone), the positional-embedding resize and the timm registration."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file

import plip
from plip.downstream import PLIPBackbone, ResizedPositionalEmbeddingWarning, resize_positional_embedding
from plip.errors import CheckpointError, ConfigError
from plip.models import PLIPConfig, VisionConfig

X_TINY = torch.randn(2, 3, 64, 32, generator=torch.Generator().manual_seed(0))


def _visual_state(folder):
    return {k[len("visual."):]: v for k, v in load_file(str(folder / "model.safetensors")).items() if k.startswith("visual.")}


# -- plip.backbone ------------------------------------------------------------------------------
def test_stage_maps_of_tiny_backbone_follow_the_resnet_strides(tiny_folder):
    """Stage maps have width*4*2^i channels at strides 4, 8, 16, 32 (DESIGN.md / PLIP_FACTS.md)."""
    net = plip.backbone(tiny_folder)
    maps = net(X_TINY)
    assert [m.shape[1] for m in maps] == [32, 64, 128, 256]
    assert [tuple(m.shape[2:]) for m in maps] == [(16, 8), (8, 4), (4, 2), (2, 1)]
    assert net.feature_info == [
        dict(num_chs=m.shape[1], reduction=64 // m.shape[2], module=f"layer{i + 1}") for i, m in enumerate(maps)
    ]
    single = plip.backbone(tiny_folder, out_indices=2)(X_TINY)
    assert isinstance(single, torch.Tensor) and single.shape == maps[2].shape


def test_rn50_backbone_with_last_stride_1_gives_the_documented_maps():
    """256@64x32, 512@32x16, 1024@16x8 and 2048@16x8 (last stride 1) for a 256x128 input."""
    net = plip.backbone("plip-rn50", pretrained=False, last_stride=1).eval()
    with torch.no_grad():
        maps = net(torch.randn(1, 3, 256, 128))
    assert [tuple(m.shape[1:]) for m in maps] == [(256, 64, 32), (512, 32, 16), (1024, 16, 8), (2048, 16, 8)]


def test_attention_pooled_backbone_equals_plip_load(tiny_folder):
    """Same weights as plip.load: attn_pool=True reproduces model.visual exactly."""
    model = plip.load(tiny_folder)
    net = plip.backbone(tiny_folder, attn_pool=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(net(X_TINY), model.visual(X_TINY), rtol=1e-5, atol=1e-6)  # load() uses channels_last
        stages = net.forward_intermediates(X_TINY, intermediates_only=True)
        for ours, ref in zip(stages, model.visual.forward_intermediates(X_TINY, intermediates_only=True)):
            torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(net.forward_features(X_TINY), stages[-1], rtol=0, atol=0)


def test_last_stride_1_doubles_layer4_and_keeps_weights(tiny_folder):
    """The stride is in layer4[0]'s two average pools; convolutions and weights are untouched."""
    s2 = plip.backbone(tiny_folder, last_stride=2).eval()
    s1 = plip.backbone(tiny_folder, last_stride=1).eval()
    state1, state2 = s1.state_dict(), s2.state_dict()
    assert state1.keys() == state2.keys()
    for key in state1:
        assert torch.equal(state1[key], state2[key]), key
    for (name, m1), (_, m2) in zip(s1.named_modules(), s2.named_modules()):
        if isinstance(m1, torch.nn.Conv2d):
            assert (m1.stride, m1.dilation) == (m2.stride, m2.dilation), name
            assert m1.dilation == (1, 1)
    block = s1.layer4[0]
    assert isinstance(block.avgpool, torch.nn.Identity) and isinstance(block.downsample[0], torch.nn.Identity)
    with torch.no_grad():
        maps1, maps2 = s1(X_TINY), s2(X_TINY)
    for a, b in zip(maps1[:3], maps2[:3]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert maps1[3].shape[2:] == (2 * maps2[3].shape[2], 2 * maps2[3].shape[3])
    assert s1.reductions == (4, 8, 16, 16) and s2.reductions == (4, 8, 16, 32)


def test_stride_2_block_is_the_average_pool_of_the_stride_1_block(tiny_folder):
    """In eval mode conv3/bn3 and the downsample conv/bn are per-pixel affine maps, so they commute
    with 2x2 average pooling: before the final ReLU, the stride-2 block output equals the 2x2
    average pool of the stride-1 block output (the anti-aliased stride of CLIP's ResNet)."""
    s1 = plip.backbone(tiny_folder, last_stride=1).eval()
    s2 = plip.backbone(tiny_folder, last_stride=2).eval()
    for net in (s1, s2):
        net.layer4[0].relu3 = torch.nn.Identity()
    with torch.no_grad():
        c4 = s1(X_TINY)[2]
        out1, out2 = s1.layer4[0](c4), s2.layer4[0](c4)
    torch.testing.assert_close(out2, F.avg_pool2d(out1, 2), rtol=1e-5, atol=1e-5)


def test_load_is_strict_and_reported(tiny_folder, tmp_path):
    """Every image-encoder tensor is loaded; the unused attention pool is reported as dropped;
    a checkpoint missing one backbone tensor is refused with the key named."""
    expected = _visual_state(tiny_folder)
    net = plip.backbone(tiny_folder, last_stride=1)
    report = net.load_report
    assert report.missing_keys == [] and report.unexpected_keys == []
    assert report.loaded_keys == sorted(expected)
    assert report.dropped_keys == sorted(k for k in expected if k.startswith("attnpool."))
    for key, value in net.state_dict().items():
        assert torch.equal(value, expected[key]), key

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_folder / "config.json").read_text())
    state = load_file(str(tiny_folder / "model.safetensors"))
    del state["visual.layer2.0.conv2.weight"]
    save_file(state, str(broken / "model.safetensors"))
    with pytest.raises(CheckpointError, match="layer2.0.conv2.weight"):
        plip.backbone(broken)


def test_backbone_reads_the_official_checkpoint(tiny_official_checkpoint, tiny_model):
    net = plip.backbone(tiny_official_checkpoint, attn_pool=True).eval()
    for key, value in net.state_dict().items():
        assert torch.equal(value, tiny_model.visual.state_dict()[key]), key


def test_backbone_from_config_or_model_object(tiny_model, tiny_config):
    assert plip.backbone(tiny_config, pretrained=False).load_report is None
    with pytest.raises(ConfigError, match="pretrained=False"):
        plip.backbone(tiny_config)
    net = plip.backbone(tiny_model, attn_pool=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(net(X_TINY), tiny_model.visual(X_TINY), rtol=0, atol=0)
    with pytest.raises(ConfigError, match="out_indices"):
        plip.backbone(tiny_model, out_indices=(3, 1))


# -- positional embedding ------------------------------------------------------------------------
def test_resize_positional_embedding_same_grid_is_identity():
    pos = torch.randn(33, 16)
    assert resize_positional_embedding(pos, (8, 4), (8, 4)) is pos


def test_resize_positional_embedding_to_384x128_keeps_layout():
    """8x4 (+1) -> 12x4 (+1) for a 384x128 input. The grid is row-major over (H, W): an
    embedding equal to its row index stays constant along each row and increases down rows;
    a constant grid stays constant (interpolation weights sum to one); the class token is kept."""
    rows = torch.arange(8.0).repeat_interleave(4)  # row index of each of the 32 grid cells
    pos = torch.cat([torch.full((1, 2), -7.0), torch.stack([rows, torch.full_like(rows, 3.0)], 1)])
    out = resize_positional_embedding(pos, (8, 4), (12, 4))
    assert out.shape == (49, 2)
    assert torch.equal(out[0], pos[0])
    grid = out[1:, 0].view(12, 4)
    torch.testing.assert_close(grid, grid[:, :1].expand(12, 4))
    assert bool((grid[1:, 0] > grid[:-1, 0]).all())
    torch.testing.assert_close(out[1:, 1], torch.full((48,), 3.0))
    bilinear = resize_positional_embedding(pos, (8, 4), (16, 8), interpolation="bilinear")
    assert bilinear.shape == (129, 2)
    with pytest.raises(ConfigError, match="does not fit"):
        resize_positional_embedding(torch.randn(30, 2), (8, 4), (12, 4))


def test_attention_pool_backbone_at_another_size_resizes_with_a_warning(tiny_folder):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plip.backbone(tiny_folder, attn_pool=True)  # trained size: no warning
    with pytest.warns(ResizedPositionalEmbeddingWarning, match="2x1 grid"):
        net = plip.backbone(tiny_folder, attn_pool=True, image_size=(96, 32))
    assert net.load_report.resized and net.attnpool.positional_embedding.shape[0] == 3 * 1 + 1
    assert net.preprocess_config.image_size == (96, 32)
    assert net(torch.randn(2, 3, 96, 32)).shape == (2, 32)
    with pytest.warns(ResizedPositionalEmbeddingWarning):
        net = plip.backbone(tiny_folder, attn_pool=True, last_stride=1)
    assert net(X_TINY).shape == (2, 32)


# -- timm ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synth_model():
    """The shipped plip-tiny-synth: timm's ``plip_tiny_synth`` entry has its architecture and weights."""
    return plip.load("plip-tiny-synth")


def test_timm_features_only_gives_the_stage_maps(synth_model, tmp_path):
    """features_only returns the four stage maps of plip.load's encoder (shipped file, and the
    same weights in the official checkpoint layout); feature_info matches them."""
    import timm

    import plip.timm  # noqa: F401  (registers)

    official = tmp_path / "PLIP_SYNTH.pth.tar"
    torch.save({"ImgEncoder_state_dict": synth_model.visual.state_dict(),
                "TxtEncoder_state_dict": synth_model.text.state_dict()}, official)
    with torch.no_grad():
        reference = synth_model.visual.forward_intermediates(X_TINY, intermediates_only=True)
    for overlay in ({}, dict(pretrained_cfg_overlay=dict(file=str(official)))):
        net = timm.create_model("plip_tiny_synth", pretrained=True, features_only=True, **overlay).eval()
        with torch.no_grad():
            maps = net(X_TINY)
        assert len(maps) == 4
        for ours, ref in zip(maps, reference):
            torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)  # plip.load runs channels_last
        assert net.feature_info.channels() == [m.shape[1] for m in maps]
        assert net.feature_info.reduction() == [64 // m.shape[2] for m in maps]


def test_timm_plip_rn50_feature_info_and_pretrained_cfg():
    import timm

    from plip.hub.registry import MODELS
    from plip.models.config import PLIP_MEAN, PLIP_STD

    net = timm.create_model("plip_rn50", features_only=True, last_stride=1).eval()
    assert net.feature_info.channels() == [256, 512, 1024, 2048]
    assert net.feature_info.reduction() == [4, 8, 16, 16]
    with torch.no_grad():
        maps = net(torch.randn(1, 3, 256, 128))
    assert [tuple(m.shape[1:]) for m in maps] == [(256, 64, 32), (512, 32, 16), (1024, 16, 8), (2048, 16, 8)]
    cfg = timm.create_model("plip_rn50").pretrained_cfg
    assert cfg["input_size"] == (3, 256, 128)
    assert tuple(cfg["mean"]) == PLIP_MEAN and tuple(cfg["std"]) == PLIP_STD
    assert cfg["interpolation"] == "bicubic"
    assert cfg["hf_hub_id"] == MODELS["plip-rn50"].hub_repo
    assert "plip_rn50.synth_pedes" in timm.list_pretrained("plip*")


def test_timm_eval_transform_is_plip_preprocessing():
    """timm's transform from the pretrained_cfg equals PLIP's plain bicubic resize + normalise."""
    import timm

    from plip.data.transforms import ImagePreprocess

    net = timm.create_model("plip_tiny_synth")
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=net))
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (150, 61, 3), dtype=np.uint8))
    ours = ImagePreprocess(PLIPConfig.tiny().preprocess)(image)
    torch.testing.assert_close(transform(image), ours, rtol=0, atol=1e-6)


def test_timm_classifier_head_and_other_input_size(synth_model):
    """timm's contract: num_features = forward_features channels, head_hidden_size = pre-logits
    width; an img_size override is reflected in pretrained_cfg."""
    import timm

    net = timm.create_model("plip_tiny_synth", pretrained=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(net(X_TINY), synth_model.visual(X_TINY), rtol=1e-5, atol=1e-5)
    assert net.num_features == net.forward_features(X_TINY).shape[1] == 512
    assert net.head_hidden_size == 64
    net = timm.create_model("plip_tiny_synth", pretrained=True, num_classes=7, global_pool="avg")
    assert net(X_TINY).shape == (2, 7)
    assert net.forward_head(net.forward_features(X_TINY), pre_logits=True).shape == (2, 512)
    with pytest.warns(ResizedPositionalEmbeddingWarning):
        net = timm.create_model("plip_tiny_synth", pretrained=True, img_size=(96, 32))
    assert net(torch.randn(2, 3, 96, 32)).shape == (2, 64)
    assert net.pretrained_cfg["input_size"] == (3, 96, 32) and net.pretrained_cfg["pool_size"] == (3, 1)


def test_backbone_is_a_modified_resnet_with_official_key_names(tiny_config):
    net = plip.backbone(tiny_config, pretrained=False, attn_pool=True)
    assert isinstance(net, PLIPBackbone)
    assert {"conv1.weight", "layer4.0.downsample.0.weight", "attnpool.positional_embedding"} <= set(net.state_dict())
    assert VisionConfig().image_size == (256, 128)


def test_person_shaped_train_transform():
    """plip.data.transforms.train_transform: without augmentation it is exactly PLIP's
    preprocessing (plain bicubic resize + SYNTH-PEDES normalisation, no aspect-changing crop);
    with flip forced it is the mirror image."""
    from plip.data.transforms import ImagePreprocess, train_transform

    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (150, 61, 3), dtype=np.uint8))
    config = PLIPConfig.tiny().preprocess
    plain = train_transform(config, flip=False)(image)
    torch.testing.assert_close(plain, ImagePreprocess(config)(image), rtol=0, atol=1e-6)
    assert plain.shape == (3, *config.image_size)
    torch.manual_seed(0)
    flipped = [train_transform(config, flip=True)(image) for _ in range(8)]
    assert any(torch.allclose(f, plain.flip(-1), atol=1e-6) for f in flipped)
    assert all(torch.allclose(f, plain, atol=1e-6) or torch.allclose(f, plain.flip(-1), atol=1e-6) for f in flipped)
