"""Per-shot variation: what changes between two camera images of the same person.

A :class:`Variation` fixes one image completely (together with the identity): the
viewpoint (front, back, side; mirrored), where and how large the person stands in the
frame, the pose of arms and legs, lighting (brightness, colour cast, a gradient,
contrast), sensor blur and noise, the background scene and an optional occluder (a pole,
an object in front of the legs, a passer-by at the edge).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .identity import COLOURS

__all__ = ["IMAGE_HEIGHT", "IMAGE_WIDTH", "VIEWS", "Occluder", "Variation", "sample_variation"]

IMAGE_HEIGHT = 256
IMAGE_WIDTH = 128
VIEWS = ("front", "back", "side")

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Occluder:
    """Something between camera and person; box in output pixels (x0, y0, x1, y1)."""

    kind: str  # "pole" | "object" | "passer-by"
    box: tuple[float, float, float, float]
    rgb: RGB


@dataclass(frozen=True)
class Variation:
    """Everything about one image that is not the person's appearance.

    Geometry is in output pixels (256 x 128); angles in degrees. For front and back views
    the arm and leg angles open outwards; for the side view (person facing right before
    mirroring) positive angles swing forwards.
    """

    view: str
    mirrored: bool
    height_fraction: float  # person height / image height (before the identity's own height)
    centre_x: float
    foot_y: float
    arm_angles: tuple[float, float]  # (near or left, far or right)
    elbow_bends: tuple[float, float]
    leg_angles: tuple[float, float]
    knee_bends: tuple[float, float]
    brightness: float
    colour_cast: tuple[float, float, float]
    gradient: tuple[float, float]  # relative illumination change across x and y
    contrast: float
    blur: float  # Gaussian radius in pixels; 0 = sharp
    noise: float  # standard deviation of sensor noise, in grey levels
    background_seed: int
    occluder: Occluder | None


def _occluder(rng: np.random.Generator, centre_x: float, foot_y: float, height: float) -> Occluder:
    kind = ("pole", "object", "passer-by")[int(rng.integers(3))]
    if kind == "pole":
        width = rng.uniform(5, 12)
        x = centre_x + rng.uniform(-22, 22)
        box = (x - width / 2, 0.0, x + width / 2, float(IMAGE_HEIGHT))
        grey = int(rng.integers(40, 170))
        rgb = (grey, grey + int(rng.integers(-8, 9)), grey + int(rng.integers(-8, 12)))
    elif kind == "object":
        top = foot_y - height * rng.uniform(0.12, 0.32)
        x0 = rng.uniform(-30, 40)
        box = (x0, top, x0 + rng.uniform(60, 120), float(IMAGE_HEIGHT) + 10)
        rgb = _scene_or_palette_colour(rng)
    else:
        side = 1 if rng.random() < 0.5 else -1
        width = rng.uniform(28, 44)
        x = centre_x + side * rng.uniform(42, 58)
        box = (x - width / 2, rng.uniform(10, 70), x + width / 2, float(IMAGE_HEIGHT) + 40)
        rgb = _scene_or_palette_colour(rng)
    rgb = tuple(int(min(255, max(0, v))) for v in rgb)
    return Occluder(kind, tuple(float(v) for v in box), rgb)  # type: ignore[arg-type]


def _scene_or_palette_colour(rng: np.random.Generator) -> RGB:
    """Clutter colours: half muted scene tones, half garment colours (confusers)."""
    if rng.random() < 0.5:
        base = np.array(list(COLOURS.values())[int(rng.integers(len(COLOURS)))])
    else:
        base = rng.uniform(60, 200) * np.array([1.0, 1.0, 1.0]) + rng.uniform(-25, 25, size=3)
    rgb = np.clip(base + rng.integers(-20, 21, size=3), 0, 255)
    return tuple(int(v) for v in rgb)  # type: ignore[return-value]


def sample_variation(rng: np.random.Generator) -> Variation:
    """Draw the viewing conditions of one image."""
    view = VIEWS[int(rng.choice(3, p=[0.4, 0.35, 0.25]))]
    height_fraction = float(rng.uniform(0.80, 0.96))
    height = height_fraction * IMAGE_HEIGHT
    foot_y = float(rng.uniform(0.95, 1.03) * IMAGE_HEIGHT)
    foot_y = max(foot_y, height + 3.0)  # feet may leave the frame, the head may not
    centre_x = float(IMAGE_WIDTH / 2 + rng.uniform(-8, 8))
    if view == "side":
        near_arm = float(rng.uniform(-35, 35))
        arms = (near_arm, float(-near_arm * rng.uniform(0.5, 1.0)))
        elbows = (float(rng.uniform(5, 35)), float(rng.uniform(5, 35)))
        stride = float(rng.uniform(4, 26)) * (1 if rng.random() < 0.5 else -1)
        legs = (stride, -stride)
        knees = (float(rng.uniform(0, 12)), float(rng.uniform(5, 25)))
    else:
        arms = (float(rng.uniform(4, 22)), float(rng.uniform(4, 22)))
        elbows = (float(rng.uniform(0, 25)), float(rng.uniform(0, 25)))
        legs = (float(rng.uniform(0, 7)), float(rng.uniform(0, 7)))
        knees = (0.0, 0.0)
    cast = np.clip(1.0 + rng.normal(0.0, 0.06, size=3), 0.85, 1.15)
    occluder = _occluder(rng, centre_x, foot_y, height) if rng.random() < 0.3 else None
    return Variation(
        view=view,
        mirrored=bool(rng.random() < 0.5),
        height_fraction=height_fraction,
        centre_x=centre_x,
        foot_y=foot_y,
        arm_angles=arms,
        elbow_bends=elbows,
        leg_angles=legs,
        knee_bends=knees,
        brightness=float(rng.uniform(0.68, 1.22)),
        colour_cast=tuple(float(c) for c in cast),  # type: ignore[arg-type]
        gradient=(float(rng.uniform(-0.2, 0.2)), float(rng.uniform(-0.2, 0.2))),
        contrast=float(rng.uniform(0.8, 1.1)),
        blur=0.0 if rng.random() < 0.45 else float(rng.uniform(0.4, 1.3)),
        noise=float(rng.uniform(0.0, 5.0)),
        background_seed=int(rng.integers(2**31 - 1)),
        occluder=occluder,
    )
