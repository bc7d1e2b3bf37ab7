"""Synthetic identities: one set of appearance attributes per person.

An :class:`Identity` fixes everything that does not change between camera shots: body
shape and skin, hair, garments and their exact shades, shoes and the carried bag. Colour
frequencies follow street scenes (dark and neutral clothes are common, bright ones rare),
and a share of identities are *near-copies* of an earlier identity with one or two parts
changed, so that many people differ only in one garment and retrieval is not trivial.
No two identities share the same caption-visible attributes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..captions import Garment, Item, PersonDescription

__all__ = ["COLOURS", "HAIR_COLOURS", "Identity", "sample_identity", "sample_identities"]

RGB = tuple[int, int, int]

#: Garment colour names and their base RGB values.
COLOURS: dict[str, RGB] = {
    "black": (28, 28, 32),
    "white": (236, 236, 232),
    "grey": (128, 128, 132),
    "red": (196, 36, 42),
    "blue": (42, 82, 186),
    "green": (46, 138, 66),
    "yellow": (232, 198, 46),
    "orange": (232, 122, 34),
    "pink": (238, 140, 178),
    "purple": (118, 62, 150),
    "brown": (112, 72, 42),
}

#: Hair colour names and their base RGB values.
HAIR_COLOURS: dict[str, RGB] = {
    "black": (22, 20, 20),
    "brown": (92, 58, 32),
    "blonde": (214, 178, 102),
    "grey": (150, 150, 150),
    "red": (156, 64, 30),
}

_SKIN_TONES: tuple[RGB, ...] = ((246, 214, 188), (232, 186, 150), (204, 150, 110), (160, 110, 76), (112, 76, 52))

# Relative frequencies (normalised when sampled).
_UPPER_COLOUR_P = {"black": 22, "white": 15, "grey": 12, "blue": 11, "red": 8, "green": 6, "yellow": 5,
                   "pink": 5, "purple": 4, "orange": 4, "brown": 5}  # fmt: skip
_LOWER_COLOUR_P = {"black": 32, "blue": 22, "grey": 14, "white": 5, "brown": 7, "green": 4, "red": 4,
                   "pink": 3, "purple": 3, "yellow": 3, "orange": 3}  # fmt: skip
_SHOES_COLOUR_P = {"black": 38, "white": 30, "grey": 10, "brown": 12, "red": 4, "blue": 6}
_BAG_COLOUR_P = {"black": 35, "brown": 15, "grey": 10, "red": 8, "blue": 10, "white": 6, "pink": 6,
                 "green": 5, "yellow": 5}  # fmt: skip
_CAP_COLOUR_P = {"black": 30, "white": 20, "red": 15, "blue": 15, "grey": 10, "yellow": 5, "green": 5}
_HAIR_COLOUR_P = {"black": 50, "brown": 25, "blonde": 12, "grey": 8, "red": 5}

# (kind, probability, sleeve choices with probabilities)
_UPPER_KINDS = {
    "t-shirt": (30, {"short": 0.8, "long": 0.2}),
    "shirt": (18, {"short": 0.4, "long": 0.6}),
    "sweater": (14, {"long": 1.0}),
    "jacket": (18, {"long": 1.0}),
    "coat": (10, {"long": 1.0}),
    "tank top": (6, {"none": 1.0}),
}
_DRESS_SLEEVES = {"short": 0.45, "none": 0.35, "long": 0.2}
_LOWER_KIND_P = {
    "male": {"trousers": 80, "shorts": 20},
    "female": {"trousers": 50, "shorts": 13, "skirt": 20, "dress": 17},
}
_HAIR_LENGTH_P = {"male": {"short": 90, "long": 4, "bald": 6}, "female": {"short": 25, "long": 75}}
_BAG_P = {"none": 45, "backpack": 30, "handbag": 25}
_PARTS = ("hair", "upper", "lower", "shoes", "bag")


def _choice(rng: np.random.Generator, weights: dict[str, float], exclude: str | None = None) -> str:
    names = [n for n in weights if n != exclude]
    p = np.array([weights[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _shade(rng: np.random.Generator, rgb: RGB, spread: int = 14) -> RGB:
    """A per-identity shade of a named colour: still clearly that colour."""
    jitter = rng.integers(-spread, spread + 1, size=3)
    return tuple(int(v) for v in np.clip(np.asarray(rgb) + jitter, 0, 255))  # type: ignore[return-value]


@dataclass(frozen=True)
class Identity:
    """Appearance of one synthetic person (names for captions, RGB shades for drawing)."""

    person_id: int
    gender: str  # "male" | "female"
    build: str  # "slim" | "average" | "heavy" (drawn, not captioned)
    height: float  # relative body height, 0.92 .. 1.0
    skin: RGB
    hair_length: str  # "short" | "long" | "bald"
    hair_colour: str
    hair_rgb: RGB
    cap_colour: str | None
    cap_rgb: RGB | None
    upper_kind: str  # t-shirt, shirt, sweater, jacket, coat, tank top, dress
    upper_colour: str
    upper_rgb: RGB
    sleeve: str  # "short" | "long" | "none"
    inner_rgb: RGB  # shirt seen under an open jacket / collar colour
    lower_kind: str  # trousers, shorts, skirt, dress
    lower_colour: str
    lower_rgb: RGB
    shoes_colour: str
    shoes_rgb: RGB
    bag_kind: str | None  # "backpack" | "handbag" | None
    bag_colour: str | None
    bag_rgb: RGB | None

    def description(self) -> PersonDescription:
        """What a captioner would say about this person."""
        head = (Item("cap", self.cap_colour),) if self.cap_colour else ()
        bags = (Item(self.bag_kind, self.bag_colour),) if self.bag_kind else ()
        return PersonDescription(
            gender=self.gender,
            hair_length=self.hair_length,
            hair_colour=None if self.hair_length == "bald" else self.hair_colour,
            head_items=head,
            upper=Garment(self.upper_kind, self.upper_colour, self.sleeve),
            lower=Garment(self.lower_kind, self.lower_colour),
            shoes=Garment("shoes", self.shoes_colour),
            belongings=bags,
        )

    def key(self) -> tuple:
        """The caption-visible attributes; identities must differ in it."""
        return (self.gender, self.hair_length, self.hair_colour, self.cap_colour, self.upper_kind,
                self.upper_colour, self.sleeve, self.lower_kind, self.lower_colour, self.shoes_colour,
                self.bag_kind, self.bag_colour)  # fmt: skip


def _hair(rng: np.random.Generator, gender: str) -> dict:
    length = _choice(rng, _HAIR_LENGTH_P[gender])
    colour = _choice(rng, _HAIR_COLOUR_P)
    cap = _choice(rng, _CAP_COLOUR_P) if rng.random() < 0.12 else None
    return dict(
        hair_length=length,
        hair_colour=colour,
        hair_rgb=_shade(rng, HAIR_COLOURS[colour], 10),
        cap_colour=cap,
        cap_rgb=_shade(rng, COLOURS[cap]) if cap else None,
    )


def _upper(rng: np.random.Generator, lower_kind: str, lower_colour: str | None) -> dict:
    if lower_kind == "dress":
        # A dress is one garment: the upper part has the lower part's colour.
        kind, colour = "dress", lower_colour or _choice(rng, _UPPER_COLOUR_P)
        sleeve = _choice(rng, _DRESS_SLEEVES)
    else:
        kind = _choice(rng, {k: v[0] for k, v in _UPPER_KINDS.items()})
        sleeve = _choice(rng, _UPPER_KINDS[kind][1])
        colour = _choice(rng, _UPPER_COLOUR_P)
    inner = _choice(rng, {"white": 4, "grey": 2, "black": 2, "blue": 1}, exclude=colour)
    return dict(
        upper_kind=kind,
        upper_colour=colour,
        upper_rgb=_shade(rng, COLOURS[colour]),
        sleeve=sleeve,
        inner_rgb=_shade(rng, COLOURS[inner], 8),
    )


def _lower(rng: np.random.Generator, gender: str) -> dict:
    kind = _choice(rng, _LOWER_KIND_P[gender])
    colour = _choice(rng, _UPPER_COLOUR_P if kind == "dress" else _LOWER_COLOUR_P)
    return dict(lower_kind=kind, lower_colour=colour, lower_rgb=_shade(rng, COLOURS[colour]))


def _shoes(rng: np.random.Generator) -> dict:
    colour = _choice(rng, _SHOES_COLOUR_P)
    return dict(shoes_colour=colour, shoes_rgb=_shade(rng, COLOURS[colour], 10))


def _bag(rng: np.random.Generator) -> dict:
    kind = _choice(rng, _BAG_P)
    if kind == "none":
        return dict(bag_kind=None, bag_colour=None, bag_rgb=None)
    colour = _choice(rng, _BAG_COLOUR_P)
    return dict(bag_kind=kind, bag_colour=colour, bag_rgb=_shade(rng, COLOURS[colour]))


def _with_dress_consistency(fields: dict) -> dict:
    """Keep upper and lower garment consistent when one of them is a dress."""
    if fields["lower_kind"] == "dress":
        fields["upper_kind"] = "dress"
        fields["upper_colour"] = fields["lower_colour"]
        fields["upper_rgb"] = fields["lower_rgb"]
        if fields["sleeve"] not in _DRESS_SLEEVES:
            fields["sleeve"] = "short"
    return fields


def sample_identity(rng: np.random.Generator, person_id: int) -> Identity:
    """Draw a fresh identity from the attribute priors."""
    gender = "female" if rng.random() < 0.45 else "male"
    fields: dict = dict(
        person_id=person_id,
        gender=gender,
        build=_choice(rng, {"slim": 3, "average": 5, "heavy": 2}),
        height=float(rng.uniform(0.92, 1.0)),
        skin=_SKIN_TONES[int(rng.integers(len(_SKIN_TONES)))],
    )
    fields.update(_hair(rng, gender))
    lower = _lower(rng, gender)
    fields.update(lower)
    fields.update(_upper(rng, lower["lower_kind"], lower["lower_colour"]))
    if lower["lower_kind"] == "dress":
        fields["upper_rgb"] = fields["lower_rgb"]
    fields.update(_shoes(rng))
    fields.update(_bag(rng))
    return Identity(**fields)


def _variant(rng: np.random.Generator, base: Identity, person_id: int) -> Identity:
    """A near-copy of ``base``: same person type, one or two parts re-drawn."""
    fields = dict(base.__dict__, person_id=person_id)
    fields["skin"] = _SKIN_TONES[int(rng.integers(len(_SKIN_TONES)))]
    fields["build"] = _choice(rng, {"slim": 3, "average": 5, "heavy": 2})
    parts = rng.choice(len(_PARTS), size=int(rng.integers(1, 3)), replace=False)
    for index in sorted(int(i) for i in parts):
        part = _PARTS[index]
        if part == "hair":
            fields.update(_hair(rng, base.gender))
        elif part == "upper":
            if fields["lower_kind"] == "dress":
                fields.update(_lower(rng, base.gender))  # a new dress or a new outfit
            fields.update(_upper(rng, fields["lower_kind"], fields["lower_colour"]))
        elif part == "lower":
            was_dress = fields["lower_kind"] == "dress"
            fields.update(_lower(rng, base.gender))
            if was_dress and fields["lower_kind"] != "dress":
                fields.update(_upper(rng, fields["lower_kind"], None))
        elif part == "shoes":
            fields.update(_shoes(rng))
        else:
            fields.update(_bag(rng))
    return Identity(**_with_dress_consistency(fields))


def sample_identities(
    count: int,
    seed: int,
    *,
    share: float = 0.35,
    max_tries: int = 50,
) -> list[Identity]:
    """``count`` identities with ids 1..count, reproducible from ``seed``.

    With probability ``share`` an identity is a variant of one of the 50 previous ones
    (one or two parts changed). Identity ``i`` draws from the random stream
    ``(seed, 0, i)``, so a larger ``count`` extends a smaller one unchanged.
    """
    identities: list[Identity] = []
    seen: set[tuple] = set()
    for person_id in range(1, count + 1):
        rng = np.random.default_rng([seed, 0, person_id])
        identity = None
        for _ in range(max_tries):
            if identities and rng.random() < share:
                base = identities[int(rng.integers(max(0, len(identities) - 50), len(identities)))]
                candidate = _variant(rng, base, person_id)
            else:
                candidate = sample_identity(rng, person_id)
            if candidate.key() not in seen:
                identity = candidate
                break
        if identity is None:  # attribute space exhausted: accept a duplicate description
            identity = candidate
        seen.add(identity.key())
        identities.append(identity)
    return identities
