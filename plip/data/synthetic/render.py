"""Drawing a synthetic pedestrian with PIL.

:func:`render_image` draws an :class:`~.identity.Identity` under a
:class:`~.variation.Variation` into a 256 x 128 (H x W) RGB image. The scene is drawn at
twice the resolution and reduced, which anti-aliases the edges; then lighting, colour
cast, blur and sensor noise are applied. The person is built from simple shapes (capsules
for limbs, polygons for torso and skirts, ellipses for head and shoes), each garment in
its own colour with a darker outline, so that every attribute the captions mention is
visible: hair colour and length, cap, upper garment type / colour / sleeves, lower
garment type / colour, shoe colour and the bag.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .identity import COLOURS, Identity
from .variation import IMAGE_HEIGHT, IMAGE_WIDTH, Variation

__all__ = ["render_background", "render_image", "render_person_scene"]

SUPERSAMPLE = 2
RGB = tuple[int, int, int]
Point = tuple[float, float]

_BUILD_WIDTH = {"slim": 0.88, "average": 1.0, "heavy": 1.18}


def _darker(rgb: RGB, factor: float = 0.55) -> RGB:
    return tuple(int(c * factor) for c in rgb)  # type: ignore[return-value]


class _Pen:
    """Shape helpers on an ImageDraw, with outlines 1 output pixel wide."""

    def __init__(self, draw: ImageDraw.ImageDraw, shade: float = 1.0):
        self.draw = draw
        self.shade = shade  # < 1 for limbs on the far side
        self.line_width = SUPERSAMPLE

    def colour(self, rgb: RGB) -> RGB:
        return _darker(rgb, self.shade) if self.shade != 1.0 else rgb

    def ellipse(self, centre: Point, rx: float, ry: float, fill: RGB, outline: bool = True) -> None:
        x, y = centre
        fill = self.colour(fill)
        self.draw.ellipse(
            (x - rx, y - ry, x + rx, y + ry),
            fill=fill,
            outline=_darker(fill) if outline else None,
            width=self.line_width if outline else 0,
        )

    def polygon(self, points: list[Point], fill: RGB, outline: bool = True) -> None:
        fill = self.colour(fill)
        self.draw.polygon(
            points, fill=fill, outline=_darker(fill) if outline else None, width=self.line_width if outline else 1
        )

    def line(self, points: list[Point], fill: RGB, width: float) -> None:
        self.draw.line(points, fill=self.colour(fill), width=max(1, int(round(width))), joint="curve")

    def _capsule(self, p0: Point, p1: Point, r0: float, r1: float, fill: RGB) -> None:
        dx, dy = p1[0] - p0[0], p1[1] - p0[1]
        length = math.hypot(dx, dy) or 1e-6
        nx, ny = -dy / length, dx / length
        self.draw.polygon(
            [
                (p0[0] + nx * r0, p0[1] + ny * r0),
                (p1[0] + nx * r1, p1[1] + ny * r1),
                (p1[0] - nx * r1, p1[1] - ny * r1),
                (p0[0] - nx * r0, p0[1] - ny * r0),
            ],
            fill=fill,
        )
        for (x, y), r in ((p0, r0), (p1, r1)):
            self.draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)

    def limb(self, points: list[Point], radii: list[float], fills: list[RGB]) -> None:
        """A chain of capsules (segment i from points[i] to points[i+1] in fills[i]).

        All outlines are drawn before all fills, so joints show no seams."""
        segments = list(zip(points[:-1], points[1:], radii[:-1], radii[1:], fills, strict=True))
        for p0, p1, r0, r1, fill in segments:
            self._capsule(p0, p1, r0 + self.line_width, r1 + self.line_width, _darker(self.colour(fill)))
        for p0, p1, r0, r1, fill in segments:
            self._capsule(p0, p1, r0, r1, self.colour(fill))


def _lerp(p0: Point, p1: Point, t: float) -> Point:
    return (p0[0] + (p1[0] - p0[0]) * t, p0[1] + (p1[1] - p0[1]) * t)


def _swing(origin: Point, length: float, angle_deg: float, direction: float) -> Point:
    """End of a segment hanging from ``origin``, rotated by ``angle`` towards ``direction``."""
    a = math.radians(angle_deg)
    return (origin[0] + direction * length * math.sin(a), origin[1] + length * math.cos(a))


class _Figure:
    """Body measurements of one identity in one shot, in supersampled pixels."""

    def __init__(self, ident: Identity, var: Variation):
        s = SUPERSAMPLE
        self.ident, self.var = ident, var
        self.H = H = var.height_fraction * IMAGE_HEIGHT * ident.height * s
        self.cx = var.centre_x * s
        self.top = var.foot_y * s - H
        w = _BUILD_WIDTH[ident.build]
        female = ident.gender == "female"
        # Proportions of a detector crop: a little wider than anatomy (loose clothes).
        self.shoulder = (0.112 if female else 0.128) * H * w
        self.waist = (0.082 if female else 0.095) * H * w
        self.hip = (0.104 if female else 0.097) * H * w
        self.depth = 0.07 * H * w  # half front-to-back thickness, side view
        self.arm_r = 0.027 * H * (0.6 + 0.4 * w)
        self.fore_r = 0.021 * H * (0.6 + 0.4 * w)
        self.thigh_r = 0.041 * H * (0.6 + 0.4 * w)
        self.shin_r = 0.029 * H * (0.7 + 0.3 * w)
        self.head_rx = 0.049 * H
        self.head_ry = 0.064 * H
        self.head_c = (self.cx + (0.012 * H if var.view == "side" else 0.0), self.y(0.066))

    def y(self, f: float) -> float:
        return self.top + f * self.H

    def x(self, f: float) -> float:
        return self.cx + f * self.H


def render_person_scene(ident: Identity, var: Variation) -> Image.Image:
    """The supersampled scene (background, person, occluder) before camera effects."""
    size = (IMAGE_WIDTH * SUPERSAMPLE, IMAGE_HEIGHT * SUPERSAMPLE)
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    _draw_background(draw, np.random.default_rng(var.background_seed), size)
    fig = _Figure(ident, var)
    if var.view == "side":
        _draw_side(draw, fig)
    else:
        _draw_front_or_back(draw, fig, back=var.view == "back")
    if var.occluder is not None:
        _draw_occluder(draw, var)
    if var.mirrored:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return image


def render_image(ident: Identity, var: Variation) -> Image.Image:
    """The final 256 x 128 RGB image of ``ident`` seen under ``var``."""
    image = render_person_scene(ident, var).reduce(SUPERSAMPLE)
    image = _camera(image, var)
    if var.blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(var.blur))
    return image


def render_background(var: Variation) -> Image.Image:
    """The 256 x 128 scene of ``var`` with nobody in it (a detector's false positive)."""
    size = (IMAGE_WIDTH * SUPERSAMPLE, IMAGE_HEIGHT * SUPERSAMPLE)
    image = Image.new("RGB", size)
    _draw_background(ImageDraw.Draw(image), np.random.default_rng(var.background_seed), size)
    image = _camera(image.reduce(SUPERSAMPLE), var)
    return image.filter(ImageFilter.GaussianBlur(var.blur)) if var.blur > 0 else image


# ---------------------------------------------------------------------------------------
# Scene
# ---------------------------------------------------------------------------------------

_SCENE_TONES: tuple[RGB, ...] = (
    (150, 150, 148),
    (182, 172, 152),
    (120, 128, 138),
    (92, 102, 92),
    (204, 198, 186),
    (72, 72, 78),
    (142, 122, 102),
    (112, 138, 166),
    (168, 154, 128),
    (96, 86, 80),
)


def _jitter(rng: np.random.Generator, rgb, spread: int = 18) -> RGB:
    return tuple(int(v) for v in np.clip(np.asarray(rgb) + rng.integers(-spread, spread + 1, 3), 0, 255))  # type: ignore[return-value]


def _clutter_colour(rng: np.random.Generator) -> RGB:
    if rng.random() < 0.3:
        return _jitter(rng, list(COLOURS.values())[int(rng.integers(len(COLOURS)))], 25)
    return _jitter(rng, _SCENE_TONES[int(rng.integers(len(_SCENE_TONES)))], 30)


def _draw_background(draw: ImageDraw.ImageDraw, rng: np.random.Generator, size: tuple[int, int]) -> None:
    w, h = size
    wall = _jitter(rng, _SCENE_TONES[int(rng.integers(len(_SCENE_TONES)))], 22)
    ground = _jitter(rng, _SCENE_TONES[int(rng.integers(len(_SCENE_TONES)))], 22)
    horizon = h * rng.uniform(0.5, 0.8)
    draw.rectangle((0, 0, w, horizon), fill=wall)
    draw.rectangle((0, horizon, w, h), fill=ground)
    for _ in range(int(rng.integers(1, 7))):
        kind = int(rng.integers(6))
        colour = _clutter_colour(rng)
        x, y = rng.uniform(-0.2, 1.0) * w, rng.uniform(0.0, 0.95) * h
        if kind == 0:  # window, door or shop front on the wall
            bw, bh = rng.uniform(0.15, 0.6) * w, rng.uniform(0.08, 0.35) * h
            draw.rectangle(
                (x, min(y, horizon - 10), x + bw, min(y, horizon - 10) + bh),
                fill=colour,
                outline=_darker(colour),
                width=2,
            )
        elif kind == 1:  # sign or poster
            bw, bh = rng.uniform(0.1, 0.3) * w, rng.uniform(0.04, 0.12) * h
            draw.rounded_rectangle((x, y, x + bw, y + bh), radius=4, fill=colour)
        elif kind == 2:  # bush or tree crown
            r = rng.uniform(0.08, 0.3) * w
            draw.ellipse((x - r, horizon - r * 1.6, x + r, horizon + r * 0.2), fill=colour)
        elif kind == 3:  # pole or tree trunk
            bw = rng.uniform(0.02, 0.06) * w
            draw.rectangle((x, 0, x + bw, horizon + rng.uniform(0, 0.15) * h), fill=_darker(colour, 0.8))
        elif kind == 4:  # road marking or kerb
            yy = horizon + rng.uniform(0.05, 0.9) * (h - horizon)
            draw.rectangle((0, yy, w, yy + rng.uniform(3, 12)), fill=colour)
        else:  # distant car or bench on the horizon
            bw, bh = rng.uniform(0.3, 0.9) * w, rng.uniform(0.05, 0.12) * h
            draw.rounded_rectangle((x, horizon - bh, x + bw, horizon + bh * 0.3), radius=8, fill=colour)


def _draw_occluder(draw: ImageDraw.ImageDraw, var: Variation) -> None:
    occ = var.occluder
    assert occ is not None
    s = SUPERSAMPLE
    x0, y0, x1, y1 = (v * s for v in occ.box)
    if occ.kind == "pole":
        draw.rectangle((x0, y0, x1, y1), fill=occ.rgb, outline=_darker(occ.rgb), width=s)
    elif occ.kind == "object":
        draw.rounded_rectangle((x0, y0, x1, y1), radius=6 * s, fill=occ.rgb, outline=_darker(occ.rgb), width=s)
    else:  # passer-by: a blurred body and head at the frame edge
        width = x1 - x0
        draw.rounded_rectangle((x0, y0 + width * 0.9, x1, y1), radius=width * 0.4, fill=occ.rgb)
        head = width * 0.32
        cx = (x0 + x1) / 2
        draw.ellipse((cx - head, y0, cx + head, y0 + 2.2 * head), fill=_darker(occ.rgb, 0.7))


def _camera(image: Image.Image, var: Variation) -> Image.Image:
    """Lighting, colour cast, contrast and sensor noise of one camera shot."""
    pixels = np.asarray(image, dtype=np.float32)  # a fresh array: safe to modify in place
    h, w, _ = pixels.shape
    gx = 1.0 + var.gradient[0] * np.linspace(-1.0, 1.0, w, dtype=np.float32)
    gy = 1.0 + var.gradient[1] * np.linspace(-1.0, 1.0, h, dtype=np.float32)
    pixels *= np.outer(gy, gx)[..., None]
    pixels *= np.asarray(var.colour_cast, np.float32) * np.float32(var.brightness)
    mean = np.float32(pixels.mean())
    pixels -= mean
    pixels *= np.float32(var.contrast)
    pixels += mean + np.float32(0.5)
    if var.noise > 0:
        # uniform noise of the requested standard deviation: as good as Gaussian here, 5x cheaper
        noise = np.random.default_rng(var.background_seed + 1).random(pixels.shape, dtype=np.float32)
        noise -= np.float32(0.5)
        noise *= np.float32(var.noise * 12**0.5)
        pixels += noise
    np.clip(pixels, 0, 255, out=pixels)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


# ---------------------------------------------------------------------------------------
# Person, front and back views
# ---------------------------------------------------------------------------------------


def _arm_fills(ident: Identity) -> tuple[RGB, RGB, RGB]:
    """Colours of (upper arm part 1, upper arm part 2, forearm) by sleeve length."""
    skin, cloth = ident.skin, ident.upper_rgb
    if ident.sleeve == "long":
        return cloth, cloth, cloth
    if ident.sleeve == "short":
        return cloth, skin, skin
    return skin, skin, skin


def _draw_arm(pen: _Pen, fig: _Figure, shoulder: Point, angle: float, bend: float, direction: float) -> Point:
    """Arm from ``shoulder``; returns the hand position."""
    H = fig.H
    elbow = _swing(shoulder, 0.165 * H, angle, direction)
    wrist = _swing(elbow, 0.150 * H, angle + bend, direction)
    sleeve_end = _lerp(shoulder, elbow, 0.6)
    f1, f2, f3 = _arm_fills(fig.ident)
    pen.limb(
        [shoulder, sleeve_end, elbow, wrist], [fig.arm_r * 1.1, fig.arm_r, fig.arm_r * 0.95, fig.fore_r], [f1, f2, f3]
    )
    if fig.ident.sleeve == "long":  # cuff
        cuff = _lerp(elbow, wrist, 0.9)
        pen.line([_lerp(elbow, wrist, 0.82), cuff], _darker(fig.ident.upper_rgb, 0.8), fig.fore_r * 1.9)
    hand = _swing(wrist, 0.03 * H, angle + bend, direction)
    pen.ellipse(hand, fig.fore_r * 1.05, fig.fore_r * 1.25, fig.ident.skin)
    return hand


def _leg_fills(ident: Identity) -> tuple[RGB, RGB, RGB]:
    """Colours of (upper thigh, lower thigh, shin) by lower garment."""
    skin, cloth = ident.skin, ident.lower_rgb
    if ident.lower_kind == "trousers":
        return cloth, cloth, cloth
    if ident.lower_kind == "shorts":
        return cloth, skin, skin
    return skin, skin, skin


def _draw_leg(
    pen: _Pen, fig: _Figure, hip: Point, angle: float, knee_bend: float, direction: float, foot_dir: float
) -> None:
    H = fig.H
    knee = _swing(hip, 0.215 * H, angle, direction)
    ankle = _swing(knee, 0.215 * H, angle - knee_bend, direction)
    f1, f2, f3 = _leg_fills(fig.ident)
    mid = _lerp(hip, knee, 0.72)
    pen.limb(
        [hip, mid, knee, ankle], [fig.thigh_r, fig.thigh_r * 0.9, fig.shin_r * 1.05, fig.shin_r * 0.8], [f1, f2, f3]
    )
    # shoe: an ellipse at the ankle, longer towards where the foot points
    shoe_len = 0.036 * H if foot_dir == 0 else 0.052 * H
    centre = (ankle[0] + foot_dir * 0.022 * H, ankle[1] + 0.018 * H)
    pen.ellipse(centre, shoe_len, 0.022 * H, fig.ident.shoes_rgb)


def _draw_pelvis(pen: _Pen, fig: _Figure, left: float, right: float) -> None:
    if fig.ident.lower_kind in ("trousers", "shorts"):
        pen.polygon(
            [
                (left, fig.y(0.44)),
                (right, fig.y(0.44)),
                (right, fig.y(0.54)),
                ((left + right) / 2, fig.y(0.56)),
                (left, fig.y(0.54)),
            ],
            fig.ident.lower_rgb,
        )


def _draw_skirt(
    pen: _Pen, fig: _Figure, left_top: float, right_top: float, left_bottom: float, right_bottom: float
) -> None:
    ident = fig.ident
    if ident.lower_kind not in ("skirt", "dress"):
        return
    bottom = fig.y(0.70 if ident.lower_kind == "skirt" else 0.74)
    pen.polygon(
        [(left_top, fig.y(0.45)), (right_top, fig.y(0.45)), (right_bottom, bottom), (left_bottom, bottom)],
        ident.lower_rgb,
    )
    # a hem line reads as fabric
    pen.line([(left_bottom + 3, bottom - 4), (right_bottom - 3, bottom - 4)], _darker(ident.lower_rgb, 0.8), 2)


def _torso_bottom(ident: Identity) -> float:
    return {"coat": 0.70, "jacket": 0.53, "dress": 0.47}.get(ident.upper_kind, 0.51)


def _draw_front_or_back(draw: ImageDraw.ImageDraw, fig: _Figure, back: bool) -> None:
    ident, var, H = fig.ident, fig.var, fig.H
    pen = _Pen(draw)
    cx = fig.cx
    hx, hy = fig.head_c

    # long hair falls behind the shoulders (seen from the front)
    if ident.hair_length == "long" and not back:
        pen.polygon(
            [
                (hx - fig.head_rx * 1.15, hy),
                (hx + fig.head_rx * 1.15, hy),
                (hx + fig.head_rx * 1.3, fig.y(0.27)),
                (hx - fig.head_rx * 1.3, fig.y(0.27)),
            ],
            ident.hair_rgb,
        )

    # legs, shoes, lower garment
    hip_dx = fig.hip * 0.5
    for side, angle in ((-1, var.leg_angles[0]), (1, var.leg_angles[1])):
        _draw_leg(pen, fig, (cx + side * hip_dx, fig.y(0.51)), angle, 0.0, side, 0.0)
    _draw_pelvis(pen, fig, cx - fig.hip * 1.02, cx + fig.hip * 1.02)
    flare = 1.55 if ident.lower_kind == "skirt" else 1.7
    _draw_skirt(pen, fig, cx - fig.waist * 1.05, cx + fig.waist * 1.05, cx - fig.hip * flare, cx + fig.hip * flare)

    # neck, then torso
    pen.limb([(cx, fig.y(0.10)), (cx, fig.y(0.17))], [fig.head_rx * 0.42, fig.head_rx * 0.45], [ident.skin])
    _draw_torso_front(pen, fig, back)

    # backpack body (back view) sits on the torso, under the arms
    if ident.bag_kind == "backpack" and back:
        bw = fig.shoulder * 0.72
        pen.draw.rounded_rectangle(
            (cx - bw, fig.y(0.18), cx + bw, fig.y(0.43)),
            radius=0.03 * H,
            fill=ident.bag_rgb,
            outline=_darker(ident.bag_rgb),
            width=SUPERSAMPLE,
        )
        pen.draw.rounded_rectangle(
            (cx - bw * 0.7, fig.y(0.32), cx + bw * 0.7, fig.y(0.41)),
            radius=0.015 * H,
            fill=_darker(ident.bag_rgb, 0.8),
            outline=_darker(ident.bag_rgb),
            width=SUPERSAMPLE,
        )

    # arms
    hands = []
    for side, angle, bend in ((-1, var.arm_angles[0], var.elbow_bends[0]), (1, var.arm_angles[1], var.elbow_bends[1])):
        shoulder = (cx + side * (fig.shoulder - fig.arm_r * 0.8), fig.y(0.175))
        hands.append(_draw_arm(pen, fig, shoulder, angle, -bend, side))

    # backpack straps (front view)
    if ident.bag_kind == "backpack" and not back:
        for side in (-1, 1):
            pen.line(
                [(cx + side * fig.shoulder * 0.6, fig.y(0.165)), (cx + side * fig.shoulder * 0.62, fig.y(0.40))],
                ident.bag_rgb,
                0.022 * H,
            )

    _draw_head_front_or_back(pen, fig, back)

    if ident.bag_kind == "handbag":
        _draw_handbag(pen, fig, hands[0] if back else hands[1])


def _draw_torso_front(pen: _Pen, fig: _Figure, back: bool) -> None:
    ident, H, cx = fig.ident, fig.H, fig.cx
    kind, cloth = ident.upper_kind, ident.upper_rgb
    bottom = _torso_bottom(ident)
    sh = fig.shoulder * (0.72 if ident.sleeve == "none" else 1.0)
    if ident.sleeve == "none":  # bare shoulders under a tank top or sleeveless dress
        pen.polygon(
            [
                (cx - fig.shoulder, fig.y(0.165)),
                (cx + fig.shoulder, fig.y(0.165)),
                (cx + fig.shoulder * 0.8, fig.y(0.25)),
                (cx - fig.shoulder * 0.8, fig.y(0.25)),
            ],
            ident.skin,
        )
    hem = fig.hip * (1.22 if kind == "coat" else 1.04)
    pts = [
        (cx - sh, fig.y(0.165)),
        (cx + sh, fig.y(0.165)),
        (cx + fig.shoulder * 0.92, fig.y(0.26)),
        (cx + fig.waist, fig.y(0.43)),
        (cx + hem, fig.y(bottom)),
        (cx - hem, fig.y(bottom)),
        (cx - fig.waist, fig.y(0.43)),
        (cx - fig.shoulder * 0.92, fig.y(0.26)),
    ]
    pen.polygon(pts, cloth)
    dark = _darker(cloth, 0.72)
    neck_y = fig.y(0.165)
    if kind == "sweater":  # ribbed hem and neck band
        pen.line([(cx - hem * 0.98, fig.y(bottom - 0.012)), (cx + hem * 0.98, fig.y(bottom - 0.012))], dark, 0.018 * H)
        pen.line([(cx - fig.head_rx * 0.5, neck_y + 2), (cx + fig.head_rx * 0.5, neck_y + 2)], dark, 0.012 * H)
    if back:
        if kind == "coat":
            pen.line([(cx, fig.y(0.52)), (cx, fig.y(bottom))], dark, 2)
        if kind in ("shirt", "jacket", "coat"):
            pen.line([(cx - fig.head_rx * 0.6, neck_y + 1), (cx + fig.head_rx * 0.6, neck_y + 1)], dark, 0.016 * H)
        return
    if kind in ("t-shirt", "dress", "tank top"):  # round neckline
        r = fig.head_rx * (0.5 if kind == "t-shirt" else 0.6)
        pen.draw.chord((cx - r, neck_y - r, cx + r, neck_y + r), 0, 180, fill=ident.skin)
    elif kind == "shirt":
        pen.line([(cx, neck_y + 0.02 * H), (cx, fig.y(bottom - 0.01))], dark, 2)
        for i in range(4):
            pen.ellipse((cx, fig.y(0.21 + i * 0.07)), 2.0, 2.0, dark, outline=False)
        for side in (-1, 1):
            pen.polygon(
                [
                    (cx, neck_y + 0.025 * H),
                    (cx + side * fig.head_rx * 0.7, neck_y - 1),
                    (cx + side * fig.head_rx * 0.6, neck_y + 0.03 * H),
                ],
                ident.inner_rgb,
            )
    elif kind == "jacket":
        strip = 0.024 * H
        pen.polygon(
            [
                (cx - strip, neck_y),
                (cx + strip, neck_y),
                (cx + strip * 0.6, fig.y(bottom - 0.01)),
                (cx - strip * 0.6, fig.y(bottom - 0.01)),
            ],
            ident.inner_rgb,
            outline=False,
        )
        pen.line([(cx - strip * 0.6, neck_y), (cx - strip * 0.5, fig.y(bottom))], dark, 2)
        pen.line([(cx + strip * 0.6, neck_y), (cx + strip * 0.5, fig.y(bottom))], dark, 2)
        for side in (-1, 1):
            pen.polygon(
                [
                    (cx + side * strip, neck_y),
                    (cx + side * fig.head_rx * 0.9, neck_y - 2),
                    (cx + side * strip * 1.6, neck_y + 0.05 * H),
                ],
                dark,
            )
    elif kind == "coat":
        pen.line([(cx, neck_y + 0.03 * H), (cx, fig.y(bottom))], dark, 2)
        for i in range(3):
            for side in (-1, 1):
                pen.ellipse((cx + side * 0.022 * H, fig.y(0.22 + i * 0.09)), 2.2, 2.2, dark, outline=False)
        pen.line([(cx - fig.waist * 1.02, fig.y(0.45)), (cx + fig.waist * 1.02, fig.y(0.45))], dark, 0.014 * H)  # belt
        for side in (-1, 1):
            pen.polygon(
                [
                    (cx, neck_y + 0.03 * H),
                    (cx + side * fig.head_rx * 0.95, neck_y - 2),
                    (cx + side * fig.head_rx * 0.9, neck_y + 0.06 * H),
                ],
                dark,
            )


def _draw_head_front_or_back(pen: _Pen, fig: _Figure, back: bool) -> None:
    ident = fig.ident
    (hx, hy), rx, ry = fig.head_c, fig.head_rx, fig.head_ry
    hair = ident.hair_rgb
    if back:
        pen.ellipse((hx, hy), rx, ry, ident.skin)
        if ident.hair_length != "bald":
            pen.draw.chord(
                (hx - rx * 1.06, hy - ry * 1.06, hx + rx * 1.06, hy + ry * 1.02),
                150,
                390,
                fill=hair,
                outline=_darker(hair),
                width=SUPERSAMPLE,
            )
        if ident.hair_length == "long":
            pen.polygon(
                [
                    (hx - rx * 1.05, hy),
                    (hx + rx * 1.05, hy),
                    (hx + rx * 1.15, fig.y(0.28)),
                    (hx, fig.y(0.295)),
                    (hx - rx * 1.15, fig.y(0.28)),
                ],
                hair,
            )
    else:
        if ident.hair_length != "bald":
            pen.ellipse((hx, hy - ry * 0.08), rx * 1.1, ry * 1.02, hair)
        pen.ellipse((hx, hy + ry * 0.12), rx * 0.9, ry * 0.86, ident.skin)
        if ident.hair_length != "bald":  # fringe
            pen.draw.chord((hx - rx * 0.95, hy - ry * 1.0, hx + rx * 0.95, hy - ry * 0.05), 180, 360, fill=hair)
        eye_y = hy + ry * 0.12
        for side in (-1, 1):
            pen.ellipse((hx + side * rx * 0.38, eye_y), rx * 0.1, ry * 0.07, (40, 30, 30), outline=False)
        pen.line([(hx - rx * 0.22, hy + ry * 0.55), (hx + rx * 0.22, hy + ry * 0.55)], _darker(ident.skin, 0.6), 2)
    if ident.cap_rgb is not None:
        cap = ident.cap_rgb
        pen.draw.chord(
            (hx - rx * 1.1, hy - ry * 1.12, hx + rx * 1.1, hy + ry * 0.3),
            180,
            360,
            fill=cap,
            outline=_darker(cap),
            width=SUPERSAMPLE,
        )
        if not back:
            pen.ellipse((hx, hy - ry * 0.38), rx * 1.2, ry * 0.16, _darker(cap, 0.85))


def _draw_handbag(pen: _Pen, fig: _Figure, hand: Point) -> None:
    ident, H = fig.ident, fig.H
    assert ident.bag_rgb is not None
    x, y = hand
    w, h = 0.05 * H, 0.075 * H
    top = y + 0.03 * H
    pen.draw.arc(
        (x - w * 0.55, y - 0.01 * H, x + w * 0.55, top + 0.03 * H),
        180,
        360,
        fill=_darker(ident.bag_rgb),
        width=SUPERSAMPLE * 2,
    )
    pen.polygon([(x - w * 0.85, top), (x + w * 0.85, top), (x + w, top + h), (x - w, top + h)], ident.bag_rgb)
    pen.line([(x - w * 0.7, top + h * 0.3), (x + w * 0.7, top + h * 0.3)], _darker(ident.bag_rgb, 0.75), 2)


# ---------------------------------------------------------------------------------------
# Person, side view (facing right before mirroring)
# ---------------------------------------------------------------------------------------


def _draw_side(draw: ImageDraw.ImageDraw, fig: _Figure) -> None:
    ident, var, H = fig.ident, fig.var, fig.H
    pen, far = _Pen(draw), _Pen(draw, shade=0.8)
    cx, d = fig.cx, fig.depth
    shoulder = (cx + d * 0.05, fig.y(0.18))

    _draw_arm(far, fig, shoulder, var.arm_angles[1], var.elbow_bends[1], 1.0)
    hip = (cx, fig.y(0.51))
    legs = sorted(
        ((var.leg_angles[1], var.knee_bends[1], far), (var.leg_angles[0], var.knee_bends[0], pen)),
        key=lambda t: t[2] is pen,
    )
    for angle, knee, p in legs:
        _draw_leg(p, fig, hip, angle, knee, 1.0, 1.0)
    _draw_pelvis(pen, fig, cx - d * 1.02, cx + d * 0.95)
    _draw_skirt(pen, fig, cx - d * 1.05, cx + d * 1.0, cx - d * 1.7, cx + d * 1.6)

    # torso
    pen.limb([(cx + 0.004 * H, fig.y(0.10)), (cx, fig.y(0.17))], [fig.head_rx * 0.4, fig.head_rx * 0.45], [ident.skin])
    bottom = _torso_bottom(ident)
    flare = 1.35 if ident.upper_kind == "coat" else 1.04
    pts = [
        (cx - d * 0.95, fig.y(0.165)),
        (cx + d * 0.75, fig.y(0.165)),
        (cx + d * 1.0, fig.y(0.29)),
        (cx + d * 0.85, fig.y(0.43)),
        (cx + d * flare * 0.95, fig.y(bottom)),
        (cx - d * flare, fig.y(bottom)),
        (cx - d * 0.92, fig.y(0.43)),
        (cx - d * 1.02, fig.y(0.28)),
    ]
    if ident.sleeve == "none":
        pen.polygon(pts[:4] + [(cx - d * 1.02, fig.y(0.28))], ident.skin)
        pts[0] = (cx - d * 0.8, fig.y(0.19))
        pts[1] = (cx + d * 0.6, fig.y(0.19))
    pen.polygon(pts, ident.upper_rgb)
    dark = _darker(ident.upper_rgb, 0.72)
    if ident.upper_kind == "jacket":
        pen.line([(cx + d * 0.72, fig.y(0.17)), (cx + d * 0.85, fig.y(bottom))], ident.inner_rgb, 0.012 * H)
    elif ident.upper_kind == "sweater":
        pen.line([(cx - d * 0.98, fig.y(bottom - 0.012)), (cx + d * 0.95, fig.y(bottom - 0.012))], dark, 0.018 * H)
    elif ident.upper_kind == "coat":
        pen.line([(cx - d * 0.9, fig.y(0.45)), (cx + d * 0.85, fig.y(0.45))], dark, 0.014 * H)

    if ident.bag_kind == "backpack":
        assert ident.bag_rgb is not None
        pen.draw.rounded_rectangle(
            (cx - d * 1.02 - 0.075 * H, fig.y(0.18), cx - d * 0.85, fig.y(0.42)),
            radius=0.025 * H,
            fill=ident.bag_rgb,
            outline=_darker(ident.bag_rgb),
            width=SUPERSAMPLE,
        )
        pen.line(
            [(cx - d * 0.9, fig.y(0.19)), (cx + d * 0.1, fig.y(0.165)), (cx + d * 0.65, fig.y(0.38))],
            _darker(ident.bag_rgb, 0.9),
            0.016 * H,
        )

    hand = _draw_arm(pen, fig, shoulder, var.arm_angles[0], var.elbow_bends[0], 1.0)
    _draw_head_side(pen, fig)
    if ident.bag_kind == "handbag":
        _draw_handbag(pen, fig, hand)


def _draw_head_side(pen: _Pen, fig: _Figure) -> None:
    ident = fig.ident
    (hx, hy), rx, ry = fig.head_c, fig.head_rx, fig.head_ry
    pen.ellipse((hx + rx * 0.9, hy + ry * 0.12), rx * 0.18, ry * 0.12, ident.skin)  # nose
    pen.ellipse((hx, hy), rx, ry, ident.skin)
    hair = ident.hair_rgb
    if ident.hair_length != "bald":
        pen.draw.chord(
            (hx - rx * 1.08, hy - ry * 1.07, hx + rx * 1.04, hy + ry * 1.0),
            110,
            345,
            fill=hair,
            outline=_darker(hair),
            width=SUPERSAMPLE,
        )
    if ident.hair_length == "long":
        pen.polygon(
            [
                (hx - rx * 1.05, hy - ry * 0.2),
                (hx - rx * 0.2, hy + ry * 0.3),
                (hx - rx * 0.5, fig.y(0.29)),
                (hx - rx * 1.25, fig.y(0.28)),
            ],
            hair,
        )
    pen.ellipse((hx + rx * 0.55, hy + ry * 0.02), rx * 0.1, ry * 0.07, (40, 30, 30), outline=False)
    if ident.cap_rgb is not None:
        cap = ident.cap_rgb
        pen.draw.chord(
            (hx - rx * 1.1, hy - ry * 1.12, hx + rx * 1.1, hy + ry * 0.3),
            180,
            360,
            fill=cap,
            outline=_darker(cap),
            width=SUPERSAMPLE,
        )
        pen.polygon(
            [
                (hx + rx * 0.6, hy - ry * 0.42),
                (hx + rx * 1.7, hy - ry * 0.36),
                (hx + rx * 1.6, hy - ry * 0.26),
                (hx + rx * 0.6, hy - ry * 0.28),
            ],
            _darker(cap, 0.85),
        )
