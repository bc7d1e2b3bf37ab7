"""A rendered multi-person tracking scene and the per-person track ids a boxmot tracker gives.

Three synthetic people (plip.data.synthetic renderer) walk across a static 480x240 frame for
24 frames: two towards each other (they cross, the front one occluding the other), the third
slowly behind them. The boxes are the exact ground truth, so every track id can be checked
against the person it belongs to.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from plip.data.synthetic import render_image, sample_identities, sample_variation

FRAMES, HEIGHT, WIDTH = 24, 240, 480
PERSON_H, PERSON_W = 128, 64
PEOPLE = 3
PATHS = (((10, 70), (400, 70)), ((400, 90), (10, 90)), ((120, 40), (280, 40)))  # start, end (x, y)
DEPTH = (1, 2, 0)  # drawn back to front: person 2 behind, then 0, then 1 in front
#: Camera-motion compensation off for this static camera: BotSort's ECC latches onto the
#: walking people of the flat synthetic scene and briefly swaps two ids at the crossing.
STATIC_CAMERA = {"BotSort": {"use_cmc": False}, "DeepOcSort": {"cmc_off": True}}


def crossing_scene(seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``FRAMES`` BGR uint8 frames (as OpenCV gives them) and each frame's ``(3, 4)`` float32
    x1, y1, x2, y2 boxes, row ``i`` being person ``i``."""
    sprites = []
    for ident in sample_identities(PEOPLE, seed):
        variation = sample_variation(np.random.default_rng([seed, 9, ident.person_id]))
        sprite = render_image(ident, variation).resize((PERSON_W, PERSON_H), Image.Resampling.BOX)
        sprites.append(np.asarray(sprite))
    rng = np.random.default_rng(seed)
    background = np.full((HEIGHT, WIDTH, 3), 150, np.uint8)
    background[160:] = 110
    frames, boxes = [], []
    for t in range(FRAMES):
        frame = background + rng.integers(0, 6, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        frame_boxes = []
        for (x0, y0), (x1, y1) in PATHS:
            x = int(round(x0 + (x1 - x0) * t / (FRAMES - 1)))
            y = int(round(y0 + (y1 - y0) * t / (FRAMES - 1)))
            frame_boxes.append((x, y, x + PERSON_W, y + PERSON_H))
        for i in sorted(range(PEOPLE), key=lambda j: DEPTH[j]):
            x, y, x2, y2 = frame_boxes[i]
            frame[y:y2, x:x2] = sprites[i]
        frames.append(np.ascontiguousarray(frame[:, :, ::-1]))
        boxes.append(np.array(frame_boxes, dtype=np.float32))
    return frames, boxes


def track_ids(tracker: Any, frames: list[np.ndarray], boxes: list[np.ndarray]) -> dict[int, list[int]]:
    """Feed the true boxes (conf 0.9, class 0) frame by frame; the track ids each person got."""
    ids: dict[int, list[int]] = {person: [] for person in range(PEOPLE)}
    for frame, frame_boxes in zip(frames, boxes):
        n = len(frame_boxes)
        dets = np.hstack([frame_boxes, np.full((n, 1), 0.9, np.float32), np.zeros((n, 1), np.float32)])
        for row in tracker.update(dets, frame):  # x1, y1, x2, y2, id, conf, cls, det index
            ids[int(row[7])].append(int(row[4]))
    return ids


def assert_one_id_each(ids: dict[int, list[int]], label: str = "") -> None:
    """Every person tracked (almost) from the start, under one id of their own."""
    for person, seen in ids.items():
        assert len(seen) >= FRAMES - 3, (label, person, seen)
        assert len(set(seen)) == 1, (label, person, seen)
    assert len({seen[0] for seen in ids.values()}) == PEOPLE, (label, ids)
