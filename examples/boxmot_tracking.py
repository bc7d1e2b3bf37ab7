"""Track three synthetic people with boxmot's BotSort and DeepOcSort, PLIP as the ReID model:
once through ``PLIPReID`` (in-process), once through the file ``plip export --for boxmot``
writes, which boxmot's own ONNX backend runs (``reid_weights=``).

    pip install "plip-person[integrations]"
    python examples/boxmot_tracking.py

Offline, CPU, plip-tiny-synth. With a detector, pass its ``(N, 6)`` boxes
(x1, y1, x2, y2, conf, cls) and the BGR frame to ``tracker.update`` the same way.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from boxmot import BotSort, DeepOcSort
from PIL import Image

import plip
from plip.data.synthetic import render_image, sample_identities, sample_variation
from plip.integrations.boxmot import PLIPReID


def scene(frames: int = 24, height: int = 240, width: int = 480):
    """Two people walk towards each other across a third; returns BGR frames and true boxes."""
    sprites = [np.asarray(render_image(p, sample_variation(np.random.default_rng([0, 9, p.person_id])))
                          .resize((64, 128), Image.Resampling.BOX)) for p in sample_identities(3, 0)]  # fmt: skip
    paths = [((10, 70), (400, 70)), ((400, 90), (10, 90)), ((120, 40), (280, 40))]
    for t in range(frames):
        frame = np.full((height, width, 3), 140, np.uint8)
        boxes = []
        for (x0, y0), (x1, y1) in paths:
            x, y = round(x0 + (x1 - x0) * t / (frames - 1)), round(y0 + (y1 - y0) * t / (frames - 1))
            boxes.append((x, y, x + 64, y + 128))
        for i in (2, 0, 1):  # back to front
            x, y, x2, y2 = boxes[i]
            frame[y:y2, x:x2] = sprites[i]
        yield np.ascontiguousarray(frame[:, :, ::-1]), np.array(boxes, np.float32)


def track(tracker) -> dict[int, set[int]]:
    """The track ids each of the three people got."""
    ids: dict[int, set[int]] = {0: set(), 1: set(), 2: set()}
    for frame, boxes in scene():
        dets = np.hstack([boxes, np.full((3, 1), 0.9, np.float32), np.zeros((3, 1), np.float32)])
        for x1, y1, x2, y2, track_id, conf, cls, det in tracker.update(dets, frame)[:, :8]:
            ids[int(det)].add(int(track_id))
    return ids


def main() -> None:
    # A static camera: camera-motion compensation off (use_cmc / cmc_off).
    reid = PLIPReID("plip-tiny-synth")  # or PLIPReID("plip-rn50"), PLIPReID(plip.load(...)), a plip BoT
    for tracker in (BotSort(reid_model=reid, use_cmc=False), DeepOcSort(reid_model=reid, cmc_off=True)):
        print(f"{type(tracker).__name__} + PLIPReID: track ids per person {track(tracker)}")

    with tempfile.TemporaryDirectory() as folder:
        # = `plip export --model plip-tiny-synth --for boxmot --out FOLDER`
        weights = plip.export("plip-tiny-synth", folder, tower="image", target="boxmot").files["image"]
        print(f"exported {Path(weights).name} (+ {Path(weights).name}.metadata.json, boxmot's side file)")
        for tracker in (BotSort(reid_weights=weights, device="cpu", half=False, use_cmc=False),
                        DeepOcSort(reid_weights=weights, device="cpu", half=False, cmc_off=True)):
            print(f"{type(tracker).__name__} + {Path(weights).name}: track ids per person {track(tracker)}")


if __name__ == "__main__":
    main()
