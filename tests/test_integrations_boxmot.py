"""PLIP as the appearance model of the real boxmot trackers (skipped without boxmot), through
:class:`PLIPReID` and through the file ``plip export --for boxmot`` writes, which boxmot's own
ReID backends load (chosen by boxmot from the file suffix, sized from the metadata side file).

Oracles: ``model.encode_image`` on the same crops (plip's own preprocessing; for the exported
file, on the crops boxmot feeds its graph: the box cut out and resized with ``cv2.INTER_LINEAR``
as boxmot's ``resize`` preprocessing does), NumPy slicing for the crop geometry, and the
ground-truth identities of a rendered scene (tests/helpers/tracking_scene.py).
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

if importlib.util.find_spec("boxmot") is None:  # skip only when the package is absent, never on a broken install
    pytest.skip("boxmot is not installed (pip install \"plip-person[integrations]\")", allow_module_level=True)
import boxmot  # noqa: E402

import plip  # noqa: E402
from plip.downstream import BoT  # noqa: E402
from plip.errors import PlipError  # noqa: E402
from plip.integrations.boxmot import PLIPReID, crop_boxes  # noqa: E402
from helpers.tracking_scene import FRAMES, STATIC_CAMERA, assert_one_id_each, crossing_scene, track_ids  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return plip.load("plip-tiny-synth")


def test_features_equal_encode_image(model):
    frames, boxes = crossing_scene()
    reid = PLIPReID(model, batch_size=2)
    xyxy = np.vstack([boxes[3], [[-20, -10, 30, 100], [470, 200, 520, 260]]])  # two boxes leave the frame
    feats = reid.get_features(xyxy, frames[3])
    assert feats.dtype == np.float32 and feats.shape == (5, model.embed_dim)
    rgb = frames[3][:, :, ::-1]
    crops = [rgb[int(y1):int(y2), int(x1):int(x2)] for x1, y1, x2, y2 in boxes[3]]
    crops += [rgb[0:100, 0:30], rgb[200:240, 470:480]]  # clipped to the frame
    reference = model.encode_image([np.ascontiguousarray(c) for c in crops]).numpy()
    assert ((feats * reference).sum(1) > 0.9999).all()
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)
    first, last = reid.get_features(boxes[0], frames[0]), reid.get_features(boxes[-1], frames[-1])
    similarity = last @ first.T  # each person is most like themself 23 frames earlier
    assert (similarity.argmax(axis=1) == np.arange(3)).all(), similarity
    empty = reid.get_features(np.zeros((0, 4)), frames[0])
    assert empty.shape == (0, model.embed_dim) and empty.dtype == np.float32


def test_restores_mode_and_accepts_reid_modules(model):
    bot = BoT(5, backbone="plip-tiny-synth").train()
    reid = PLIPReID(bot)
    frames, boxes = crossing_scene()
    feats = reid.get_features(boxes[0], frames[0])
    assert bot.training  # put back in training mode
    bot.eval()
    with torch.no_grad():
        x = torch.stack([reid.preprocess(c) for c in crop_boxes(boxes[0], frames[0])])
        ref = torch.nn.functional.normalize(bot(x), dim=1).numpy()
    np.testing.assert_allclose(feats, ref, atol=1e-5)
    with pytest.raises(PlipError, match="uint8"):
        reid.get_features(boxes[0], frames[0].astype(np.float32))
    with pytest.raises(PlipError, match=r"\(N, 4\)"):
        reid.get_features(np.zeros((2, 3)), frames[0])


@pytest.mark.parametrize("tracker_name", ["BotSort", "DeepOcSort"])
def test_tracking_keeps_identities(model, tracker_name):
    frames, boxes = crossing_scene()
    reid = PLIPReID(model)
    calls = []
    get_features = reid.get_features
    reid.get_features = lambda xyxy, img: calls.append(len(xyxy)) or get_features(xyxy, img)
    tracker = getattr(boxmot, tracker_name)(reid_model=reid, **STATIC_CAMERA[tracker_name])
    ids = track_ids(tracker, frames, boxes)
    assert calls and sum(calls) >= 3 * (FRAMES - 2)  # the tracker asked PLIP for every detection
    assert_one_id_each(ids, tracker_name)


# -- the exported file ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``plip export --model plip-tiny-synth --for boxmot --out DIR``: the default file name."""
    from plip.app.cli.main import main

    folder = tmp_path_factory.mktemp("boxmot-weights")
    assert main(["export", "--model", "plip-tiny-synth", "--for", "boxmot", "--out", str(folder)]) == 0
    path = folder / "plip_reid.onnx"
    assert sorted(p.name for p in folder.iterdir()) == [
        "plip_reid.onnx", "plip_reid.onnx.json", "plip_reid.onnx.metadata.json"]
    side = json.loads((folder / "plip_reid.onnx.metadata.json").read_text())
    assert side["model_name"] == "plip-tiny-synth" and side["img_size"] == [64, 32]
    return path


def _cosine_to_encode_image(model, xyxy, bgr_image, features) -> np.ndarray:
    """Cosine of each row of ``features`` to ``model.encode_image`` of the crop boxmot feeds
    its graph for that box (rounded box clipped to the frame, cv2.INTER_LINEAR to the input size)."""
    import cv2

    height, width = model.config.vision.image_size
    rgb = np.ascontiguousarray(bgr_image[:, :, ::-1])
    crops = []
    for x1, y1, x2, y2 in np.round(np.asarray(xyxy)[:, :4]).astype(int):
        crop = rgb[max(0, y1):min(rgb.shape[0], y2), max(0, x1):min(rgb.shape[1], x2)]
        crops.append(cv2.resize(crop, (width, height), interpolation=cv2.INTER_LINEAR))
    expected = model.encode_image(crops).numpy()
    assert features.shape == expected.shape
    return (features * expected).sum(1) / np.linalg.norm(features, axis=1) / np.linalg.norm(expected, axis=1)


@pytest.mark.parametrize("tracker_name", ["BotSort", "DeepOcSort"])
def test_tracking_through_the_exported_file(model, exported, tracker_name, monkeypatch):
    """The tracker builds boxmot's ONNX backend from ``reid_weights`` itself, embeds every
    detection with plip's embedding (cosine >= 0.999) and keeps one id per person."""
    from boxmot.reid.backends.onnx_backend import ONNXBackend

    calls = []  # (backend, boxes, frame, features) of every appearance call the tracker made
    original = ONNXBackend.get_features

    def spy(self, xyxy, img):
        features = original(self, xyxy, img)
        calls.append((self, np.array(xyxy), img, features))
        return features

    monkeypatch.setattr(ONNXBackend, "get_features", spy)
    frames, boxes = crossing_scene()
    tracker = getattr(boxmot, tracker_name)(reid_weights=exported, device="cpu", half=False,
                                            **STATIC_CAMERA[tracker_name])
    ids = track_ids(tracker, frames, boxes)
    assert_one_id_each(ids, tracker_name)
    assert calls and sum(len(xyxy) for _, xyxy, _, _ in calls) >= 3 * (FRAMES - 2)
    backend = calls[0][0]
    assert backend.weights == exported and backend.input_shape == tuple(model.config.vision.image_size)
    for _, xyxy, frame, features in calls:
        assert _cosine_to_encode_image(model, xyxy, frame, features).min() >= 0.999


@pytest.mark.parametrize("fmt, backend_name", [("torchscript", "TorchscriptBackend"), ("openvino", "OpenVinoBackend")])
def test_other_formats_load_under_their_default_names(model, fmt, backend_name, tmp_path):
    """boxmot reads ``.pt`` as a checkpoint of its own architectures: ``--for boxmot`` writes
    TorchScript as ``plip_reid.torchscript`` (OpenVINO as ``plip_reid.xml``), which boxmot's
    backend for the format loads at the model's input size, embedding as ``encode_image`` does."""
    if fmt == "openvino":
        pytest.importorskip("openvino")
    from boxmot.reid.core.runtime import ReID

    result = plip.export(model, tmp_path, tower="image", format=fmt, target="boxmot", log=None)
    path = result.files["image"]
    assert path.name == "plip_reid" + {"torchscript": ".torchscript", "openvino": ".xml"}[fmt]
    backend = ReID(weights=path, device="cpu").model
    assert type(backend).__name__ == backend_name
    assert backend.input_shape == tuple(model.config.vision.image_size)
    frames, boxes = crossing_scene()
    features = backend.get_features(boxes[5], frames[5])
    assert _cosine_to_encode_image(model, boxes[5], frames[5], features).min() >= 0.999


def test_boxmot_target_refuses_a_suffix_boxmot_reads_otherwise(model, tmp_path):
    """A name boxmot would give another backend (boxmot/reid/core/formats.py) is a PlipError
    naming the suffix to use, before anything is written."""
    with pytest.raises(PlipError, match=r"reid\.pt.*'\*\.torchscript'.*reid\.torchscript"):
        plip.export(model, tmp_path / "reid.pt", tower="image", format="torchscript", target="boxmot", log=None)
    with pytest.raises(PlipError, match=r"'\*\.onnx'"):
        plip.export(model, tmp_path / "reid.xml", tower="image", format="onnx", target="boxmot", log=None)
    assert list(tmp_path.iterdir()) == []  # nothing written
