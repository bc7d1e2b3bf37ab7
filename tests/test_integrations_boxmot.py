"""PLIP as the appearance model of the real boxmot trackers (skipped without boxmot).

Oracles: ``model.encode_image`` on the same crops (plip's own preprocessing), NumPy
slicing for the crop geometry, and the ground-truth identities of a rendered scene.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from PIL import Image

if importlib.util.find_spec("boxmot") is None:  # skip only when the package is absent, never on a broken install
    pytest.skip("boxmot is not installed (pip install \"plip-person[integrations]\")", allow_module_level=True)
import boxmot  # noqa: E402

import plip  # noqa: E402
from plip.data.synthetic import render_image, sample_identities, sample_variation  # noqa: E402
from plip.downstream import BoT  # noqa: E402
from plip.errors import PlipError  # noqa: E402
from plip.integrations.boxmot import PLIPReID, crop_boxes  # noqa: E402

FRAMES, H, W = 24, 240, 480
PERSON_H, PERSON_W = 128, 64


@pytest.fixture(scope="module")
def model():
    return plip.load("plip-tiny-synth")


def _scene(seed: int = 0):
    """3 people crossing: two walk towards each other, the third walks slowly behind them."""
    people = sample_identities(3, seed)
    sprites = []
    for ident in people:
        var = sample_variation(np.random.default_rng([seed, 9, ident.person_id]))
        sprites.append(np.asarray(render_image(ident, var).resize((PERSON_W, PERSON_H), Image.Resampling.BOX)))
    paths = [((10, 70), (400, 70)), ((400, 90), (10, 90)), ((120, 40), (280, 40))]
    depth = [1, 2, 0]  # drawn back to front: person 2 behind, then 0, then 1 in front
    rng = np.random.default_rng(seed)
    background = np.full((H, W, 3), 150, np.uint8)
    background[160:] = 110
    frames, boxes = [], []
    for t in range(FRAMES):
        frame = background.copy() + rng.integers(0, 6, (H, W, 3), dtype=np.uint8)
        frame_boxes = []
        for i, ((x0, y0), (x1, y1)) in enumerate(paths):
            x, y = int(round(x0 + (x1 - x0) * t / (FRAMES - 1))), int(round(y0 + (y1 - y0) * t / (FRAMES - 1)))
            frame_boxes.append((x, y, x + PERSON_W, y + PERSON_H))
        for i in sorted(range(3), key=lambda j: depth[j]):
            x, y, x2, y2 = frame_boxes[i]
            frame[y:y2, x:x2] = sprites[i]
        frames.append(np.ascontiguousarray(frame[:, :, ::-1]))  # BGR, as OpenCV gives it
        boxes.append(np.array(frame_boxes, dtype=np.float32))
    return frames, boxes


def test_features_equal_encode_image(model):
    frames, boxes = _scene()
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
    frames, boxes = _scene()
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
    frames, boxes = _scene()
    reid = PLIPReID(model)
    calls = []
    get_features = reid.get_features
    reid.get_features = lambda xyxy, img: calls.append(len(xyxy)) or get_features(xyxy, img)
    # A static camera: camera-motion compensation off (BotSort's ECC latches onto the walking
    # people of this flat synthetic scene and briefly swaps two ids at the crossing).
    static = {"BotSort": dict(use_cmc=False), "DeepOcSort": dict(cmc_off=True)}[tracker_name]
    tracker = getattr(boxmot, tracker_name)(reid_model=reid, **static)
    ids = {0: [], 1: [], 2: []}
    for frame, frame_boxes in zip(frames, boxes):
        dets = np.hstack([frame_boxes, np.full((3, 1), 0.9, np.float32), np.zeros((3, 1), np.float32)])
        tracks = tracker.update(dets, frame)
        for row in tracks:
            det = int(row[7])  # the detection index the track was matched to
            ids[det].append(int(row[4]))
    assert calls and sum(calls) >= 3 * (FRAMES - 2)  # the tracker asked PLIP for every detection
    for person, seen in ids.items():
        assert len(seen) >= FRAMES - 3, (person, seen)  # tracked (almost) from the start
        assert len(set(seen)) == 1, (tracker_name, person, seen)  # one id for the whole walk
    assert len({seen[0] for seen in ids.values()}) == 3
