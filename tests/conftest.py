"""Shared fixtures: tiny PLIP models (same code path as plip-rn50), saved in every format."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture(scope="session")
def tiny_config():
    from plip.models import PLIPConfig

    return PLIPConfig.tiny()


def _randomise_batchnorm(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Give BN non-trivial statistics so eval-mode forwards exercise them."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(module.num_features, generator=generator) * 0.1)


@pytest.fixture(scope="session")
def tiny_model(tiny_config):
    import plip

    torch.manual_seed(0)
    model = plip.create_model(tiny_config)
    with torch.no_grad():
        _randomise_batchnorm(model, torch.Generator().manual_seed(1))
    return model.eval()


@pytest.fixture(scope="session")
def tiny_folder(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "plip-tiny"
    tiny_model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_official_checkpoint(tiny_model, tmp_path_factory):
    """A checkpoint in the official layout (two state-dict entries, official key names)."""
    path = tmp_path_factory.mktemp("official") / "PLIP_TINY.pth.tar"
    torch.save(
        {
            "ImgEncoder_state_dict": tiny_model.visual.state_dict(),
            "TxtEncoder_state_dict": tiny_model.text.state_dict(),
        },
        path,
    )
    return path


@pytest.fixture
def person_images(tmp_path):
    """A few small JPEG/PNG files of different modes and sizes."""
    from PIL import Image

    rng = torch.Generator().manual_seed(0)
    paths = []
    for i, (mode, size) in enumerate([("RGB", (40, 90)), ("L", (33, 70)), ("RGBA", (64, 128)), ("RGB", (1, 1))]):
        data = torch.randint(0, 256, (size[1], size[0], 4), generator=rng, dtype=torch.uint8).numpy()
        image = Image.fromarray(data, "RGBA").convert(mode)
        path = tmp_path / f"img_{i}.{'png' if mode != 'RGB' else 'jpg'}"
        image.save(path)
        paths.append(path)
    return paths
