"""Facts about a person as small :class:`~plip.data.captions.PersonDescription` fragments.

A zero-shot attribute value states one fact ("the upper garment is red", "carries a
backpack"). It is stored as a *fragment*: a description with only that fact known. This
module parses facts written as text (``"upper.colour=red"``, ``"belongings=backpack"``),
merges the fragments of an image's most probable values into one description, tells
whether a full description contains a fragment (the ground truth of synthetic persons)
and writes prompts for a fragment with the caption grammar.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from ..data.captions import Garment, Item, PersonDescription, caption_tokens, generate_captions, prompt_caption
from ..errors import ConfigError

__all__ = ["FACT_FIELDS", "parse_fact", "merge_fragments", "contains_fragment", "fragment_prompts", "EMPTY"]

EMPTY = PersonDescription()

_SCALAR = ("gender", "age", "build", "hair_length", "hair_colour")
_ITEMS = ("head_items", "belongings")
_GARMENTS = ("upper", "lower", "shoes")
_GARMENT_FIELDS = ("kind", "colour", "sleeve", "details", "style")

#: Fields a fact may name: ``gender``, ``age``, ``build``, ``hair_length``, ``hair_colour``,
#: ``head_items``, ``belongings``, ``actions`` and ``upper|lower|shoes.kind|colour|sleeve|details|style``.
FACT_FIELDS: tuple[str, ...] = (
    *_SCALAR, *_ITEMS, "actions", *(f"{g}.{f}" for g in _GARMENTS for f in _GARMENT_FIELDS),
)  # fmt: skip


def parse_fact(text: str, where: str = "fact") -> PersonDescription:
    """The fragment of a fact written ``field=value`` (``"upper.colour=red"``).

    Raises :class:`ConfigError` naming ``where`` for an unknown field or a value the
    caption grammar does not accept (``gender=robot``).
    """
    if not isinstance(text, str) or "=" not in text:
        raise ConfigError(f"{where}: a fact is written 'field=value' (e.g. 'upper.colour=red'), got {text!r}")
    field, value = (part.strip() for part in text.split("=", 1))
    if field not in FACT_FIELDS:
        raise ConfigError(f"{where}: unknown fact field {field!r}; choose from {', '.join(FACT_FIELDS)}")
    if not value:
        raise ConfigError(f"{where}: fact {text!r} has no value")
    try:
        if field in _SCALAR:
            return PersonDescription(**{field: value})
        if field in _ITEMS:
            return PersonDescription(**{field: (Item(value),)})
        if field == "actions":
            return PersonDescription(actions=(value,))
        garment, sub = field.split(".")
        return PersonDescription(**{garment: Garment(**{sub: (value,) if sub == "details" else value})})
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def _garment_merge(a: Garment, b: Garment) -> Garment:
    """``a`` with the fields it leaves unknown taken from ``b`` (details add up)."""
    return Garment(
        kind=a.kind or b.kind,
        colour=a.colour or b.colour,
        sleeve=a.sleeve or b.sleeve,
        details=tuple(dict.fromkeys(a.details + b.details)),
        style=a.style or b.style,
    )


def merge_fragments(fragments: list[PersonDescription]) -> PersonDescription:
    """One description from fragments, the first fragment winning any single-valued field.

    Pass the fragments most confident first. Items, actions and garment details add up. A
    dress (lower kind ``dress`` with no upper kind) covers the upper body too, as
    :func:`plip.data.attribute_vocab.describe_labels` does it.
    """
    out = EMPTY
    for frag in fragments:
        out = PersonDescription(
            gender=out.gender or frag.gender,
            age=out.age or frag.age,
            build=out.build or frag.build,
            hair_length=out.hair_length or frag.hair_length,
            hair_colour=out.hair_colour or frag.hair_colour,
            head_items=tuple(dict.fromkeys(out.head_items + frag.head_items)),
            upper=_garment_merge(out.upper, frag.upper),
            lower=_garment_merge(out.lower, frag.lower),
            shoes=_garment_merge(out.shoes, frag.shoes),
            belongings=tuple(dict.fromkeys(out.belongings + frag.belongings)),
            actions=tuple(dict.fromkeys(out.actions + frag.actions)),
        )
    if out.hair_length == "bald":
        out = dataclasses.replace(out, hair_colour=None)
    if out.lower.kind == "dress" and out.upper.kind in (None, "dress"):
        colour = out.upper.colour or out.lower.colour
        out = dataclasses.replace(
            out, upper=dataclasses.replace(out.upper, kind="dress", colour=colour),
            lower=dataclasses.replace(out.lower, colour=colour),
        )  # fmt: skip
    elif out.upper.kind == "dress" and out.lower.kind is None:
        out = dataclasses.replace(out, lower=dataclasses.replace(out.lower, kind="dress", colour=out.upper.colour))
    return out


def _garment_contains(whole: Garment, part: Garment) -> bool:
    return all(
        getattr(part, f) is None or getattr(part, f) == getattr(whole, f) for f in ("kind", "colour", "sleeve", "style")
    ) and set(part.details) <= set(whole.details)


def contains_fragment(desc: PersonDescription, fragment: PersonDescription) -> bool:
    """Whether ``desc`` states every fact of ``fragment`` (items compared by kind)."""
    for name in _SCALAR:
        value = getattr(fragment, name)
        if value is not None and getattr(desc, name) != value:
            return False
    for name in _ITEMS:
        if not {i.kind for i in getattr(fragment, name)} <= {i.kind for i in getattr(desc, name)}:
            return False
    if not set(fragment.actions) <= set(desc.actions):
        return False
    return all(_garment_contains(getattr(desc, g), getattr(fragment, g)) for g in _GARMENTS)


_STOP = {"a", "an", "the", "is", "are", "this", "they", "their", "with", "wearing", "carrying", "also", "and",
         "of", "pair", "person", "has", "have", "on"}  # fmt: skip


def fragment_prompts(fragment: PersonDescription, count: int = 4) -> list[str]:
    """Captions stating exactly ``fragment``'s facts: the prompt caption first, then up to
    ``count - 1`` captions of other styles (fixed seeds) that still name the fact's words.

    Returns ``[]`` for an empty fragment (nothing to say).
    """
    if fragment == EMPTY:
        return []
    first = prompt_caption(fragment)
    keys = set(caption_tokens(first)) - set(caption_tokens(prompt_caption(EMPTY))) - _STOP
    out = [first]
    for seed in range(12):
        if len(out) >= count:
            break
        for text in generate_captions(fragment, np.random.default_rng([7, seed]), 1):
            tokens = set(caption_tokens(text))
            if keys <= tokens and text not in out:
                out.append(text)
    return out


_PLACEHOLDER = re.compile(r"\{\}")


def check_template(template: str, where: str) -> str:
    """A prompt template with exactly one ``{}`` (the phrase goes there)."""
    if not isinstance(template, str) or len(_PLACEHOLDER.findall(template)) != 1:
        raise ConfigError(f"{where}: a template needs exactly one '{{}}' for the phrase, got {template!r}")
    try:
        template.format("x")
    except (IndexError, KeyError, ValueError) as error:
        raise ConfigError(f"{where}: template {template!r} is not a format string ({error})") from None
    return template
