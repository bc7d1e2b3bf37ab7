"""Loading: official checkpoints (strict, safe), our folder format, the Hub path, the registry.

References: the official checkpoint layout (``ImgEncoder_state_dict`` / ``TxtEncoder_state_dict``
with the official key names, built here from a tiny config) and, for outputs, the model the
checkpoint was written from (bit-exact) — the forward itself is checked against independent
re-implementations in test_models.py.
"""

from __future__ import annotations

import os
import pickle

import pytest
import torch

import plip
from plip.errors import CheckpointError, ModelNotFoundError

from hub_server import FakeHub


def _outputs(model):
    torch.manual_seed(123)
    images = torch.randn(2, 3, *model.config.vision.image_size)
    texts = ["a man in a black shirt and pink shorts", "a woman with a red backpack"]
    return model.encode_image(images, normalize=False), model.encode_text(texts, normalize=False)


def test_official_checkpoint_loads_with_identical_outputs(tiny_model, tiny_official_checkpoint):
    model = plip.load(tiny_official_checkpoint)
    assert not model.training
    for ours, ref in zip(_outputs(model), _outputs(tiny_model)):
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)


def _write(path, image, text):
    torch.save({"ImgEncoder_state_dict": image, "TxtEncoder_state_dict": text}, path)
    return path


def test_module_prefix_and_position_ids_are_tolerated(tiny_model, tmp_path):
    image = {f"module.{k}": v for k, v in tiny_model.visual.state_dict().items()}
    text = {f"module.{k}": v for k, v in tiny_model.text.state_dict().items()}
    text["module.encoder.embeddings.position_ids"] = torch.arange(128).unsqueeze(0)
    model = plip.load(_write(tmp_path / "ddp.pth.tar", image, text))
    torch.testing.assert_close(_outputs(model)[0], _outputs(tiny_model)[0], rtol=0, atol=1e-6)


def test_missing_key_is_named(tiny_model, tmp_path):
    image = dict(tiny_model.visual.state_dict())
    del image["layer2.0.bn1.running_var"]
    path = _write(tmp_path / "missing.pth.tar", image, tiny_model.text.state_dict())
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): layer2\.0\.bn1\.running_var"):
        plip.load(path)


def test_unexpected_key_is_named(tiny_model, tmp_path):
    text = dict(tiny_model.text.state_dict())
    text["encoder.cls.predictions.bias"] = torch.zeros(3)
    path = _write(tmp_path / "extra.pth.tar", tiny_model.visual.state_dict(), text)
    with pytest.raises(CheckpointError, match=r"unexpected keys \(1\): encoder\.cls\.predictions\.bias"):
        plip.load(path)


def test_wrong_shape_is_named(tiny_model, tiny_config, tmp_path):
    image = dict(tiny_model.visual.state_dict())
    image["attnpool.c_proj.bias"] = torch.zeros(7)
    path = _write(tmp_path / "shape.pth.tar", image, tiny_model.text.state_dict())
    with pytest.raises(CheckpointError, match=r"attnpool\.c_proj\.bias: checkpoint \(7,\) vs model \(32,\)"):
        plip.load(path, config=tiny_config)


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['PLIP_PAYLOAD_MARKER']}",))


def test_code_executing_pickle_is_refused_and_never_runs(tmp_path, monkeypatch):
    marker = tmp_path / "payload_ran"
    monkeypatch.setenv("PLIP_PAYLOAD_MARKER", str(marker))
    path = tmp_path / "evil.pth.tar"
    with open(path, "wb") as handle:
        pickle.dump({"ImgEncoder_state_dict": _Payload(), "TxtEncoder_state_dict": {}}, handle)
    with pytest.raises(CheckpointError, match="refused to unpickle"):
        plip.load(path)
    assert not marker.exists()


def test_not_a_plip_checkpoint(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="expected entries 'ImgEncoder_state_dict'"):
        plip.load(path)


def test_save_pretrained_round_trip_is_bit_exact(tiny_model, tiny_folder):
    assert {"README.md", "config.json", "model.safetensors", "vocab.txt"} <= {p.name for p in tiny_folder.iterdir()}
    loaded = plip.load(tiny_folder)
    for key, value in tiny_model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    for ours, ref in zip(_outputs(loaded), _outputs(tiny_model)):
        assert torch.equal(ours, ref)
    assert loaded.config == tiny_model.config


def test_corrupt_weights_file_is_named(tiny_folder, tmp_path):
    import shutil

    folder = tmp_path / "broken"
    shutil.copytree(tiny_folder, folder)
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="model.safetensors: unreadable"):
        plip.load(folder)


def test_unknown_name_and_missing_path():
    with pytest.raises(ModelNotFoundError, match="unknown model 'plip-rn51'"):
        plip.load("plip-rn51")
    with pytest.raises(ModelNotFoundError, match="no such file"):
        plip.load("./nowhere/PLIP_RN50.pth.tar")


def test_dtype_bfloat16_on_cpu(tiny_folder):
    model = plip.load(tiny_folder, dtype="bfloat16")
    assert model.dtype == torch.bfloat16
    emb = model.encode_text(["a man"])
    assert emb.dtype == torch.float32
    with pytest.raises(plip.PlipError, match="float16 needs a CUDA"):
        plip.load(tiny_folder, dtype="float16")


@pytest.fixture
def hub(tiny_folder, tmp_path, monkeypatch):
    server = FakeHub()
    server.add_folder("test-org/plip-tiny", tiny_folder)
    server.start()
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield server
    server.stop()


def test_hub_download_then_offline_cache(hub, tiny_model, tmp_path, monkeypatch):
    cache = tmp_path / "hub-cache"
    model = plip.load("hf-hub:test-org/plip-tiny", cache_dir=cache)
    assert any("model.safetensors" in r for r in hub.requests)
    assert torch.equal(_outputs(model)[0], _outputs(tiny_model)[0])
    hub.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = plip.load("hf-hub:test-org/plip-tiny", cache_dir=cache)
    assert torch.equal(_outputs(again)[1], _outputs(tiny_model)[1])


def test_hub_unreachable_uses_the_cache_without_retrying(hub, tiny_model, tmp_path, monkeypatch):
    """No connection to the endpoint (server stopped, HF_HUB_OFFLINE unset): a cached model loads
    from the cache and an uncached one fails at once; huggingface_hub is only ever asked for
    local files (oracle: its calls), so its ~30 s of retries never start."""
    import huggingface_hub

    cache = tmp_path / "hub-cache"
    plip.load("hf-hub:test-org/plip-tiny", cache_dir=cache)
    hub.stop()
    calls = []
    real = huggingface_hub.hf_hub_download

    def spy(*args, **kwargs):
        calls.append(kwargs.get("local_files_only"))
        return real(*args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", spy)
    again = plip.load("hf-hub:test-org/plip-tiny", cache_dir=cache)
    assert torch.equal(_outputs(again)[0], _outputs(tiny_model)[0])
    with pytest.raises(ModelNotFoundError, match="could not be downloaded .no connection to http://127.0.0.1"):
        plip.load("hf-hub:test-org/plip-tiny", cache_dir=tmp_path / "empty-cache")
    assert calls and all(calls)


def test_hub_offline_uncached_says_what_to_do(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="not in the local cache and HF_HUB_OFFLINE is set"):
        plip.load("hf-hub:test-org/plip-tiny", cache_dir=tmp_path / "empty-cache")


def test_hub_corrupted_download_is_not_loaded(hub, tmp_path):
    hub.corrupt.add(("test-org/plip-tiny", "model.safetensors"))
    cache = tmp_path / "hub-cache"
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        plip.load("hf-hub:test-org/plip-tiny", cache_dir=cache)
    blobs = list(cache.rglob("blobs/*"))
    assert all(len(p.name) != 64 or p.stat().st_size == 0 for p in blobs if p.is_file()) or not blobs
    hub.corrupt.clear()
    assert plip.load("hf-hub:test-org/plip-tiny", cache_dir=cache).embed_dim == 32


def test_hub_missing_repo(hub, tmp_path):
    with pytest.raises(ModelNotFoundError, match="not found on the Hub"):
        plip.load("hf-hub:test-org/absent", cache_dir=tmp_path / "c")


def test_registered_model_unreachable_points_to_the_official_file(hub, tmp_path):
    with pytest.raises(ModelNotFoundError) as info:
        plip.load("plip-rn50", cache_dir=tmp_path / "c")
    message = str(info.value)
    assert "PLIP_RN50.pth.tar" in message and "plip convert" in message and "github.com/Zplusdragon/PLIP" in message


def test_list_models():
    assert "plip-rn50" in plip.list_models()
