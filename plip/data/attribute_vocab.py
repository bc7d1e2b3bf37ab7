"""Attribute label sets of PA-100K, RAP (v1, v2) and PETA, and their meaning as text.

Pedestrian-attribute datasets label each image with 0/1 flags named by standard
attribute names (``"Female"``, ``"ShortSleeve"``, ``"hs-LongHair"``,
``"upperBodyBlack"`` ...). This module

* lists the standard label sets as constants, in the datasets' own order:
  :data:`PA100K_ATTRIBUTES` (26), :data:`RAPV1_ATTRIBUTES` (51),
  :data:`RAPV2_ATTRIBUTES` (54), :data:`PETA_ATTRIBUTES` (35, the subset everybody
  evaluates), plus the colour and other extra labels the full annotation files carry
  (PETA has 105, RAP v1 92, RAP v2 152 labels);
* maps every label to the fact it states about a person (:func:`describe_labels` turns
  one image's flags into a :class:`~plip.data.captions.PersonDescription`), so that
  attribute-labelled images can be captioned like SYNTH-PEDES
  (:func:`caption_attribute_table`, CLI ``plip caption``).

Flags that contradict each other (male and female, two exclusive upper-body colours,
trousers and shorts, an age group twice, "carrying nothing" with a backpack) are
*skipped with a note*, never turned into text. Labels that say nothing about appearance
(viewpoint, occlusion, role, "other") are known but not described.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from .captions import Garment, Item, PersonDescription, attribute_string, generate_captions, prompt_caption

__all__ = [
    "PA100K_ATTRIBUTES",
    "RAPV1_ATTRIBUTES",
    "RAPV2_ATTRIBUTES",
    "PETA_ATTRIBUTES",
    "PETA_EXTRA_ATTRIBUTES",
    "RAPV1_EXTRA_ATTRIBUTES",
    "RAPV2_EXTRA_ATTRIBUTES",
    "LABEL_SETS",
    "label_names",
    "detect_label_set",
    "describe_labels",
    "AttributeCaption",
    "caption_attribute_table",
]

# ---------------------------------------------------------------------------------------
# Standard label sets (order as in the datasets' annotation files)
# ---------------------------------------------------------------------------------------

# The evaluated label sets (names spelled as in the released files) live in one place.
from .attribute_names import (  # noqa: E402
    PA100K_ATTRIBUTES,
    PETA_ATTRIBUTES,
    RAPV1_ATTRIBUTES,
    RAPV2_ATTRIBUTES,
)

_PETA_COLOURS = ("Black", "Blue", "Brown", "Green", "Grey", "Orange", "Pink", "Purple", "Red", "White", "Yellow")

#: PETA's other 70 labels (colours and rarer attributes), understood when present.
PETA_EXTRA_ATTRIBUTES: tuple[str, ...] = tuple(
    f"{part}{colour}" for part in ("upperBody", "lowerBody", "hair", "footwear") for colour in _PETA_COLOURS
) + (
    "accessoryHeadphone", "personalLess15", "carryingBabyBuggy", "hairBald", "footwearBoots",
    "lowerBodyCapri", "carryingShoppingTro", "carryingUmbrella", "personalFemale",
    "carryingFolder", "accessoryHairBand", "lowerBodyHotPants", "accessoryKerchief",
    "lowerBodyLongSkirt", "upperBodyLongSleeve", "lowerBodyPlaid", "lowerBodyThinStripes",
    "carryingLuggageCase", "upperBodyNoSleeve", "hairShort", "footwearStocking",
    "upperBodySuit", "carryingSuitcase", "lowerBodySuits", "upperBodySweater",
    "upperBodyThickStripes",
)  # fmt: skip

_RAPV1_COLOURS = {
    "up": ("Black", "White", "Gray", "Red", "Green", "Blue", "Yellow", "Brown", "Purple", "Pink", "Orange", "Mixture"),
    "low": ("Black", "White", "Gray", "Red", "Green", "Blue", "Yellow", "Mixture"),
    "shoes": ("Black", "White", "Gray", "Red", "Green", "Blue", "Yellow", "Brown", "Mixture"),
}

#: RAP v1's colour, viewpoint and occlusion labels (of its 92).
RAPV1_EXTRA_ATTRIBUTES: tuple[str, ...] = tuple(
    f"{part}-{colour}" for part, colours in _RAPV1_COLOURS.items() for colour in colours
) + (
    "faceFront", "faceBack", "faceLeft", "faceRight", "occlusionLeft", "occlusionRight",
    "occlusionUp", "occlusionDown", "occlusion-Environment", "occlusion-Attachment",
    "occlusion-Person", "occlusion-Other",
)  # fmt: skip

_RAPV2_COLOURS = ("Black", "White", "Gray", "Red", "Green", "Blue", "Silver", "Yellow", "Brown",
                  "Purple", "Pink", "Orange", "Mixture", "Other")  # fmt: skip

#: RAP v2's colour and other extra labels (note the dataset's own ``up-ColorRed``).
RAPV2_EXTRA_ATTRIBUTES: tuple[str, ...] = (
    tuple(("up-ColorRed" if c == "Red" else f"ub-Color{c}") for c in _RAPV2_COLOURS)
    + tuple(f"lb-Color{c}" for c in _RAPV2_COLOURS)
    + tuple(f"shoes-Color{c}" for c in _RAPV2_COLOURS)
    + (
        "AgeBiger60",
        "lb-Shorts",
        "lb-LongSkirt",
        "shoes-Sandals",
        "attachment-WaistBag",
        "attachment-Baby",
        "action-StrechOutArm",
        "action-LyingCounter",
        "action-Squatting",
        "action-Running",
    )
)

# ---------------------------------------------------------------------------------------
# What each label states
# ---------------------------------------------------------------------------------------

# Single-valued fields: two different values flagged at once is a contradiction.
_SINGLE = {
    "gender", "age", "build", "hair_length", "hair_colour",
    "upper.kind", "upper.colour", "upper.sleeve", "upper.style",
    "lower.kind", "lower.colour", "lower.style", "shoes.kind", "shoes.colour",
}  # fmt: skip
# Set-valued fields: values add up; the value "nothing" contradicts any other value.
_MULTI = {"head_items", "upper.details", "lower.details", "belongings", "actions"}
_NOTHING = "nothing"
_IGNORE = "ignore"


@dataclass(frozen=True)
class _Fact:
    """Label flagged 1 -> ``value`` of ``field``; flagged 0 -> ``off`` (a weaker claim)."""

    field: str
    value: str
    off: str | None = None


_IGNORED = _Fact(_IGNORE, "")

# A more specific value refines a generic one (jeans are trousers); keeping the specific
# one is no contradiction.
_REFINES = {
    "jeans": "trousers", "tight trousers": "trousers", "suit trousers": "trousers",
    "cropped trousers": "trousers", "short skirt": "skirt", "long skirt": "skirt",
    "skirt": "skirt or dress", "dress": "skirt or dress", "hot pants": "shorts",
    "leather shoes": "shoes", "sneakers": "shoes", "sandals": "shoes", "boots": "shoes",
    "cloth shoes": "shoes", "casual shoes": "shoes",
    "long coat": "coat",
}  # fmt: skip

# Upper garments are worn in layers; when several are flagged the outermost is described.
_UPPER_LAYERS = ("long coat", "coat", "padded jacket", "suit jacket", "jacket", "suit", "vest",
                 "sweater", "shirt", "t-shirt", "tank top", "top")  # fmt: skip


def _colour_facts(prefix: str, colours: Iterable[str], field: str, name=lambda p, c: f"{p}{c}") -> dict[str, _Fact]:
    out = {}
    for colour in colours:
        if colour == "Other":
            out[name(prefix, colour)] = _IGNORED  # a colour outside the list says nothing
        else:
            out[name(prefix, colour)] = _Fact(field, colour.lower())
    return out


_PA100K = {
    "Female": _Fact("gender", "female", "male"),
    "AgeOver60": _Fact("age", "elderly"),
    "Age18-60": _Fact("age", "adult"),
    "AgeLess18": _Fact("age", "child"),
    "Front": _IGNORED, "Side": _IGNORED, "Back": _IGNORED,
    "Hat": _Fact("head_items", "hat"),
    "Glasses": _Fact("head_items", "glasses"),
    "HandBag": _Fact("belongings", "handbag"),
    "ShoulderBag": _Fact("belongings", "shoulder bag"),
    "Backpack": _Fact("belongings", "backpack"),
    "HoldObjectsInFront": _Fact("actions", "holding in front"),
    "ShortSleeve": _Fact("upper.sleeve", "short"),
    "LongSleeve": _Fact("upper.sleeve", "long"),
    "UpperStride": _Fact("upper.details", "striped"),
    "UpperLogo": _Fact("upper.details", "logo"),
    "UpperPlaid": _Fact("upper.details", "plaid"),
    "UpperSplice": _Fact("upper.details", "colour-block"),
    "LowerStripe": _Fact("lower.details", "striped"),
    "LowerPattern": _Fact("lower.details", "patterned"),
    "LongCoat": _Fact("upper.kind", "long coat"),
    "Trousers": _Fact("lower.kind", "trousers"),
    "Shorts": _Fact("lower.kind", "shorts"),
    "Skirt&Dress": _Fact("lower.kind", "skirt or dress"),
    "boots": _Fact("shoes.kind", "boots"),
}  # fmt: skip

_RAP_COMMON = {
    "Female": _Fact("gender", "female", "male"),
    "Femal": _Fact("gender", "female", "male"),  # RAPv2's released spelling
    "AgeLess16": _Fact("age", "child"),
    "Age17-30": _Fact("age", "young"),
    "Age31-45": _Fact("age", "adult"),
    "Age46-60": _Fact("age", "middle-aged"),
    "AgeBiger60": _Fact("age", "elderly"),
    "BodyFat": _Fact("build", "heavy"),
    "BodyNormal": _IGNORED,  # average build: nothing worth saying
    "BodyThin": _Fact("build", "slim"),
    "Customer": _IGNORED, "Clerk": _IGNORED, "Employee": _IGNORED,
    "hs-BaldHead": _Fact("hair_length", "bald"),
    "hs-LongHair": _Fact("hair_length", "long", "short"),
    "hs-BlackHair": _Fact("hair_colour", "black"),
    "hs-Hat": _Fact("head_items", "hat"),
    "hs-Glasses": _Fact("head_items", "glasses"),
    "hs-Muffler": _Fact("head_items", "scarf"),
    "ub-Shirt": _Fact("upper.kind", "shirt"),
    "ub-Sweater": _Fact("upper.kind", "sweater"),
    "ub-Vest": _Fact("upper.kind", "vest"),
    "ub-TShirt": _Fact("upper.kind", "t-shirt"),
    "ub-Cotton": _Fact("upper.kind", "padded jacket"),
    "ub-Jacket": _Fact("upper.kind", "jacket"),
    "ub-SuitUp": _Fact("upper.kind", "suit jacket"),
    "ub-Tight": _Fact("upper.details", "tight"),
    "ub-ShortSleeve": _Fact("upper.sleeve", "short"),
    "ub-Others": _IGNORED,
    "lb-LongTrousers": _Fact("lower.kind", "trousers"),
    "lb-Shorts": _Fact("lower.kind", "shorts"),
    "lb-Skirt": _Fact("lower.kind", "skirt"),
    "lb-ShortSkirt": _Fact("lower.kind", "short skirt"),
    "lb-LongSkirt": _Fact("lower.kind", "long skirt"),
    "lb-Dress": _Fact("lower.kind", "dress"),
    "lb-Jeans": _Fact("lower.kind", "jeans"),
    "lb-TightTrousers": _Fact("lower.kind", "tight trousers"),
    "shoes-Leather": _Fact("shoes.kind", "leather shoes"),
    "shoes-Sport": _Fact("shoes.kind", "sneakers"),
    "shoes-Sports": _Fact("shoes.kind", "sneakers"),
    "shoes-Boots": _Fact("shoes.kind", "boots"),
    "shoes-Cloth": _Fact("shoes.kind", "cloth shoes"),
    "shoes-Casual": _Fact("shoes.kind", "casual shoes"),
    "shoes-Sandals": _Fact("shoes.kind", "sandals"),
    "shoes-Other": _IGNORED,
    "action-Calling": _Fact("actions", "calling"),
    "action-Talking": _Fact("actions", "talking"),
    "action-Gathering": _Fact("actions", "gathering"),
    "action-Holding": _Fact("actions", "holding"),
    "action-Pusing": _Fact("actions", "pushing"),  # sic, RAP v1's spelling
    "action-Pushing": _Fact("actions", "pushing"),
    "action-Pulling": _Fact("actions", "pulling"),
    "action-CarrybyArm": _Fact("actions", "carrying by arm"),
    "action-CarryingByArm": _Fact("actions", "carrying by arm"),
    "action-CarrybyHand": _Fact("actions", "carrying by hand"),
    "action-CarryingByHand": _Fact("actions", "carrying by hand"),
    "action-Other": _IGNORED,
    "action-StrechOutArm": _Fact("actions", "stretching out an arm"),
    "action-LyingCounter": _Fact("actions", "leaning on a counter"),
    "action-Squatting": _Fact("actions", "squatting"),
    "action-Running": _Fact("actions", "running"),
}  # fmt: skip

_RAP_BAGS = {
    "Backpack": "backpack", "SingleShoulderBag": "shoulder bag", "ShoulderBag": "shoulder bag",
    "HandBag": "handbag", "Box": "box", "PlasticBag": "plastic bag", "PaperBag": "paper bag",
    "HandTrunk": "suitcase", "Other": "something", "WaistBag": "waist bag", "Baby": "baby",
}  # fmt: skip

_RAPV1 = dict(_RAP_COMMON)
_RAPV1.update({f"attach-{k}": _Fact("belongings", v) for k, v in _RAP_BAGS.items()})
for _part, _field in (("up", "upper.colour"), ("low", "lower.colour"), ("shoes", "shoes.colour")):
    _RAPV1.update(_colour_facts(f"{_part}-", _RAPV1_COLOURS[_part], _field))
_RAPV1.update({name: _IGNORED for name in RAPV1_EXTRA_ATTRIBUTES if name.startswith(("face", "occlusion"))})

_RAPV2 = dict(_RAP_COMMON)
_RAPV2.update({f"attachment-{k}": _Fact("belongings", v) for k, v in _RAP_BAGS.items()})
_RAPV2.update(_colour_facts("ub-Color", _RAPV2_COLOURS, "upper.colour"))
_RAPV2["up-ColorRed"] = _RAPV2.pop("ub-ColorRed")
_RAPV2.update(_colour_facts("lb-Color", _RAPV2_COLOURS, "lower.colour"))
_RAPV2.update(_colour_facts("shoes-Color", _RAPV2_COLOURS, "shoes.colour"))

_PETA = {
    "personalLess15": _Fact("age", "child"),
    "personalLess30": _Fact("age", "young"),
    "personalLess45": _Fact("age", "adult"),
    "personalLess60": _Fact("age", "middle-aged"),
    "personalLarger60": _Fact("age", "elderly"),
    "personalMale": _Fact("gender", "male", "female"),
    "personalFemale": _Fact("gender", "female", "male"),
    "carryingBackpack": _Fact("belongings", "backpack"),
    "carryingOther": _Fact("belongings", "something"),
    "carryingMessengerBag": _Fact("belongings", "messenger bag"),
    "carryingNothing": _Fact("belongings", _NOTHING),
    "carryingPlasticBags": _Fact("belongings", "plastic bag"),
    "carryingBabyBuggy": _Fact("belongings", "baby stroller"),
    "carryingShoppingTro": _Fact("belongings", "shopping trolley"),
    "carryingUmbrella": _Fact("belongings", "umbrella"),
    "carryingFolder": _Fact("belongings", "folder"),
    "carryingLuggageCase": _Fact("belongings", "suitcase"),
    "carryingSuitcase": _Fact("belongings", "suitcase"),
    "accessoryHat": _Fact("head_items", "hat"),
    "accessoryMuffler": _Fact("head_items", "scarf"),
    "accessoryNothing": _Fact("head_items", _NOTHING),
    "accessorySunglasses": _Fact("head_items", "sunglasses"),
    "accessoryHeadphone": _Fact("head_items", "headphones"),
    "accessoryHairBand": _Fact("head_items", "hair band"),
    "accessoryKerchief": _Fact("head_items", "kerchief"),
    "hairLong": _Fact("hair_length", "long", "short"),
    "hairShort": _Fact("hair_length", "short"),
    "hairBald": _Fact("hair_length", "bald"),
    "upperBodyCasual": _Fact("upper.style", "casual"),
    "upperBodyFormal": _Fact("upper.style", "formal"),
    "upperBodyJacket": _Fact("upper.kind", "jacket"),
    "upperBodyLogo": _Fact("upper.details", "logo"),
    "upperBodyPlaid": _Fact("upper.details", "plaid"),
    "upperBodyShortSleeve": _Fact("upper.sleeve", "short"),
    "upperBodyLongSleeve": _Fact("upper.sleeve", "long"),
    "upperBodyNoSleeve": _Fact("upper.sleeve", "none"),
    "upperBodyThinStripes": _Fact("upper.details", "striped"),
    "upperBodyThickStripes": _Fact("upper.details", "striped"),
    "upperBodyTshirt": _Fact("upper.kind", "t-shirt"),
    "upperBodySweater": _Fact("upper.kind", "sweater"),
    "upperBodySuit": _Fact("upper.kind", "suit jacket"),
    "upperBodyOther": _IGNORED,
    "upperBodyVNeck": _Fact("upper.details", "v-neck"),
    "lowerBodyCasual": _Fact("lower.style", "casual"),
    "lowerBodyFormal": _Fact("lower.style", "formal"),
    "lowerBodyJeans": _Fact("lower.kind", "jeans"),
    "lowerBodyShorts": _Fact("lower.kind", "shorts"),
    "lowerBodyHotPants": _Fact("lower.kind", "hot pants"),
    "lowerBodyShortSkirt": _Fact("lower.kind", "short skirt"),
    "lowerBodyLongSkirt": _Fact("lower.kind", "long skirt"),
    "lowerBodyTrousers": _Fact("lower.kind", "trousers"),
    "lowerBodyCapri": _Fact("lower.kind", "cropped trousers"),
    "lowerBodySuits": _Fact("lower.kind", "suit trousers"),
    "lowerBodyPlaid": _Fact("lower.details", "plaid"),
    "lowerBodyThinStripes": _Fact("lower.details", "striped"),
    "footwearLeatherShoes": _Fact("shoes.kind", "leather shoes"),
    "footwearSandals": _Fact("shoes.kind", "sandals"),
    "footwearShoes": _Fact("shoes.kind", "shoes"),
    "footwearSneaker": _Fact("shoes.kind", "sneakers"),
    "footwearSneakers": _Fact("shoes.kind", "sneakers"),
    "footwearBoots": _Fact("shoes.kind", "boots"),
    "footwearStocking": _Fact("shoes.kind", "stockings"),
}
for _part, _field in (("upperBody", "upper.colour"), ("lowerBody", "lower.colour"),
                      ("hair", "hair_colour"), ("footwear", "shoes.colour")):  # fmt: skip
    _PETA.update(_colour_facts(_part, _PETA_COLOURS, _field))


def _restrict(facts: dict[str, _Fact], names: Iterable[str], aliases: Iterable[str] = ()) -> dict[str, _Fact]:
    """The facts of exactly ``names`` (plus spelling ``aliases``), so that a label of
    another set is reported as unknown instead of silently understood."""
    return {name: facts[name] for name in (*names, *aliases)}


_VOCABS: dict[str, tuple[tuple[str, ...], tuple[str, ...], dict[str, _Fact]]] = {
    "pa100k": (PA100K_ATTRIBUTES, (), _restrict(_PA100K, PA100K_ATTRIBUTES)),
    "rapv1": (RAPV1_ATTRIBUTES, RAPV1_EXTRA_ATTRIBUTES, _restrict(_RAPV1, RAPV1_ATTRIBUTES + RAPV1_EXTRA_ATTRIBUTES)),
    "rapv2": (RAPV2_ATTRIBUTES, RAPV2_EXTRA_ATTRIBUTES, _restrict(_RAPV2, RAPV2_ATTRIBUTES + RAPV2_EXTRA_ATTRIBUTES, aliases=("Female",))),
    "peta": (
        PETA_ATTRIBUTES,
        PETA_EXTRA_ATTRIBUTES,
        _restrict(_PETA, PETA_ATTRIBUTES + PETA_EXTRA_ATTRIBUTES, aliases=("footwearSneakers",)),
    ),
}

#: Names of the supported label sets.
LABEL_SETS: tuple[str, ...] = tuple(_VOCABS)


def _vocab(label_set: str) -> dict[str, _Fact]:
    try:
        return _VOCABS[label_set][2]
    except KeyError:
        raise DataError(f"unknown attribute label set {label_set!r}; choose from {list(LABEL_SETS)}") from None


def label_names(label_set: str, extended: bool = False) -> tuple[str, ...]:
    """The standard label names of ``label_set`` (plus the extra ones if ``extended``)."""
    _vocab(label_set)
    standard, extra, _ = _VOCABS[label_set]
    return standard + extra if extended else standard


def detect_label_set(columns: Sequence[str]) -> str:
    """The label set whose names cover most of ``columns``; raises DataError if unclear."""
    scores = {name: sum(c in _VOCABS[name][2] for c in columns) for name in LABEL_SETS}
    best = max(scores.values())
    winners = [name for name, score in scores.items() if score == best]
    if best == 0 or len(winners) > 1:
        shown = ", ".join(list(columns)[:8]) + (", ..." if len(columns) > 8 else "")
        raise DataError(
            f"cannot tell the attribute label set from the columns [{shown}]: "
            f"known names per set {scores}; pass the format explicitly"
        )
    return winners[0]


# ---------------------------------------------------------------------------------------
# Labels -> description
# ---------------------------------------------------------------------------------------


def _resolve_single(
    field: str, strong: list[tuple[str, str]], weak: list[tuple[str, str]], notes: list[str]
) -> str | None:
    """One value for a single-valued field from (label, value) claims, or None."""
    claims = strong or weak
    values = list(dict.fromkeys(v for _, v in claims))
    # Drop generic values refined by a more specific claimed value (trousers < jeans).
    values = [v for v in values if not any(_refines(other, v) for other in values if other != v)]
    if len(values) <= 1:
        return values[0] if values else None
    labels = ", ".join(f"{label}={1 if claims is strong else 0}" for label, _ in claims)
    if field == "upper.kind" and all(v in _UPPER_LAYERS for v in values):
        outer = min(values, key=_UPPER_LAYERS.index)
        notes.append(f"several upper garments flagged ({labels}): describing the outermost, {outer!r}")
        return outer
    notes.append(f"contradictory {field.replace('.', ' ')} ({labels}): skipped")
    return None


def _refines(specific: str, generic: str) -> bool:
    while specific in _REFINES:
        specific = _REFINES[specific]
        if specific == generic:
            return True
    return False


def describe_labels(labels: Mapping[str, object], label_set: str) -> tuple[PersonDescription, list[str]]:
    """Turn one image's attribute flags into a description, plus notes on what was skipped.

    ``labels`` maps label names of ``label_set`` (``"pa100k"``, ``"rapv1"``, ``"rapv2"``,
    ``"peta"``) to 1/0 (or True/False; ``None`` means not annotated). Binary labels
    also speak when 0 (``Female`` = 0 means male) unless a flag of the same field says
    otherwise. Names outside the label set are skipped with a note.
    """
    vocab = _vocab(label_set)
    notes: list[str] = []
    strong: dict[str, list[tuple[str, str]]] = {}
    weak: dict[str, list[tuple[str, str]]] = {}
    for name, raw in labels.items():
        if raw is None:
            continue
        fact = vocab.get(name)
        if fact is None:
            notes.append(f"unknown attribute {name!r} for {label_set}: skipped")
            continue
        if fact.field == _IGNORE:
            continue
        on = _flag(raw, name)
        if on:
            strong.setdefault(fact.field, []).append((name, fact.value))
        elif fact.off is not None:
            weak.setdefault(fact.field, []).append((name, fact.off))

    value: dict[str, object] = {}
    for name in sorted(set(strong) | set(weak)):
        if name in _SINGLE:
            value[name] = _resolve_single(name, strong.get(name, []), weak.get(name, []), notes)
        else:
            claims = strong.get(name, [])
            items = list(dict.fromkeys(v for _, v in claims))
            if _NOTHING in items and len(items) > 1:
                nothing = [label for label, v in claims if v == _NOTHING]
                others = [label for label, v in claims if v != _NOTHING]
                notes.append(f"{', '.join(nothing)} contradicts {', '.join(others)}: 'nothing' skipped")
            value[name] = tuple(v for v in items if v != _NOTHING)

    def garment(slot: str) -> Garment:
        return Garment(
            kind=value.get(f"{slot}.kind"),  # type: ignore[arg-type]
            colour=value.get(f"{slot}.colour"),  # type: ignore[arg-type]
            sleeve=value.get(f"{slot}.sleeve"),  # type: ignore[arg-type]
            details=value.get(f"{slot}.details", ()),  # type: ignore[arg-type]
            style=value.get(f"{slot}.style"),  # type: ignore[arg-type]
        )

    upper, lower = garment("upper"), garment("lower")
    if lower.kind == "dress" and upper.kind is None:
        # A dress covers the upper body too (RAP's lb-Dress); say it once, in its colour.
        upper = Garment("dress", lower.colour or upper.colour, upper.sleeve, upper.details, upper.style)
        lower = Garment("dress", upper.colour, None, lower.details, lower.style)
    desc = PersonDescription(
        gender=value.get("gender"),  # type: ignore[arg-type]
        age=value.get("age"),  # type: ignore[arg-type]
        build=value.get("build"),  # type: ignore[arg-type]
        hair_length=value.get("hair_length"),  # type: ignore[arg-type]
        hair_colour=value.get("hair_colour"),  # type: ignore[arg-type]
        head_items=tuple(Item(k) for k in value.get("head_items", ())),  # type: ignore[union-attr]
        upper=upper,
        lower=lower,
        shoes=garment("shoes"),
        belongings=tuple(Item(k) for k in value.get("belongings", ())),  # type: ignore[union-attr]
        actions=tuple(value.get("actions", ())),  # type: ignore[arg-type]
    )
    return desc, notes


def _flag(raw: object, name: str) -> bool:
    if isinstance(raw, (bool, np.bool_)):
        return bool(raw)
    if isinstance(raw, (int, float, np.integer, np.floating)) and raw in (0, 1):
        return bool(raw)
    raise DataError(f"attribute {name!r}: expected 0 or 1, got {raw!r}")


# ---------------------------------------------------------------------------------------
# CSV tables -> captions
# ---------------------------------------------------------------------------------------


@dataclass
class AttributeCaption:
    """Captions of one labelled image (SYNTH-PEDES-like, plus the notes on skipped labels)."""

    file_path: str
    attributes: list[str]
    prompt_caption: str
    captions: list[str]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "file_path": self.file_path,
            "attributes": self.attributes,
            "captions": self.captions,
            "prompt_caption": self.prompt_caption,
            "notes": self.notes,
        }


_TRUE = {"1", "1.0", "true", "yes"}
_FALSE = {"0", "0.0", "false", "no"}


def caption_attribute_table(
    path: str | Path,
    label_set: str = "auto",
    *,
    image_column: str = "image",
    seed: int = 0,
    captions_per_image: int = 2,
) -> tuple[list[AttributeCaption], list[str]]:
    """Caption every row of a CSV of attribute flags.

    The CSV has a header; ``image_column`` names the image, every other column is an
    attribute of ``label_set`` (``"auto"`` picks the set matching most column names)
    holding 0, 1 or nothing (not annotated). Returns one :class:`AttributeCaption` per
    row and the file-level notes (columns that are not attributes of the set). Captions
    are reproducible: row ``i`` draws its wording from ``(seed, i)``.
    """
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as err:
        raise DataError(f"cannot read attribute table {path}: {err.strerror or err}") from err
    with handle:
        reader = csv.reader(handle)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DataError(f"{path}: empty file, expected a header row") from None
        rows = list(reader)
    if image_column not in header:
        raise DataError(f"{path}: no image column {image_column!r}; columns are {header}")
    image_index = header.index(image_column)
    attribute_columns = [(i, name) for i, name in enumerate(header) if i != image_index]
    if label_set == "auto":
        label_set = detect_label_set([name for _, name in attribute_columns])
    vocab = _vocab(label_set)
    file_notes = [
        f"column {name!r} is not a {label_set} attribute: ignored" for _, name in attribute_columns if name not in vocab
    ]
    known = [(i, name) for i, name in attribute_columns if name in vocab]

    entries = []
    for row_number, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DataError(f"{path}: line {row_number} has {len(row)} fields, the header has {len(header)}")
        labels: dict[str, object] = {}
        for i, name in known:
            cell = row[i].strip().lower()
            if cell in _TRUE:
                labels[name] = 1
            elif cell in _FALSE:
                labels[name] = 0
            elif cell == "":
                labels[name] = None
            else:
                raise DataError(f"{path}: line {row_number}, column {name!r}: expected 0 or 1, got {row[i]!r}")
        desc, notes = describe_labels(labels, label_set)
        rng = np.random.default_rng([seed, len(entries)])
        entries.append(
            AttributeCaption(
                file_path=row[image_index].strip(),
                attributes=[attribute_string(desc)],
                prompt_caption=prompt_caption(desc),
                captions=generate_captions(desc, rng, captions_per_image),
                notes=notes,
            )
        )
    return entries, file_notes
