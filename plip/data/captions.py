"""Person descriptions and the captions written from them.

A :class:`PersonDescription` holds what is known about one person's appearance (gender,
hair, upper and lower garment, shoes, belongings, ...). Everything is optional: a field
left as ``None`` (or an empty tuple) is *unknown* and is never mentioned. From one
description this module writes

* the six SYNTH-PEDES attribute fields (:func:`attribute_fields`): person, head, upper
  body, lower body, shoes, belongings, each a short phrase or ``"unknown"``;
* the *prompt caption* (:func:`prompt_caption`), PLIP's attribute-union sentence, e.g.
  ``"A man with short black hair is wearing a black shirt with pink shorts. He is also
  wearing a pair of black shoes."``. It is deterministic and mentions every known
  attribute with its canonical word;
* free captions in several styles (:func:`generate_captions`): the styles differ in the
  order of phrases, synonyms, sentence structure and level of detail, but every caption
  of a description states the same facts, and always names the upper and lower garment
  (with their colours) when they are known.

Descriptions come from the synthetic generator (:mod:`plip.data.synthetic`) or from the
labels of attribute datasets (:mod:`plip.data.attribute_vocab`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

__all__ = [
    "UNKNOWN",
    "Item",
    "Garment",
    "PersonDescription",
    "CAPTION_STYLES",
    "attribute_fields",
    "attribute_string",
    "prompt_caption",
    "caption",
    "generate_captions",
    "caption_tokens",
    "canonical_colour",
]

UNKNOWN = "unknown"

GENDERS = ("male", "female")
AGES = ("child", "young", "adult", "middle-aged", "elderly")
BUILDS = ("slim", "heavy")
HAIR_LENGTHS = ("short", "long", "bald")
SLEEVES = ("short", "long", "none")
STYLES = ("casual", "formal")

# Colour words are kept verbatim in every caption (no synonyms), so that colour facts are
# easy to check; only spelling variants are folded here.
_COLOUR_ALIASES = {"gray": "grey", "mixture": "multicoloured", "multicolored": "multicoloured"}


def canonical_colour(name: str) -> str:
    """Lower-case colour word with spelling variants folded (``gray`` -> ``grey``)."""
    word = name.strip().lower()
    return _COLOUR_ALIASES.get(word, word)


# ---------------------------------------------------------------------------------------
# Descriptions
# ---------------------------------------------------------------------------------------


def _check_choice(name: str, value: str | None, allowed: Sequence[str]) -> None:
    if value is not None and value not in allowed:
        raise ConfigError(f"{name} must be one of {list(allowed)} or None, got {value!r}")


@dataclass(frozen=True)
class Item:
    """A carried or worn item (``kind`` like ``"backpack"``, ``"cap"``), optionally coloured."""

    kind: str
    colour: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or not self.kind.strip():
            raise ConfigError(f"Item.kind must be a non-empty string, got {self.kind!r}")
        if self.colour is not None:
            object.__setattr__(self, "colour", canonical_colour(self.colour))


@dataclass(frozen=True)
class Garment:
    """One garment (upper body, lower body or shoes); every field is optional.

    ``kind`` is a noun such as ``"t-shirt"``, ``"jeans"``, ``"boots"``; ``sleeve`` is
    ``"short"``, ``"long"`` or ``"none"`` (upper garments); ``details`` are pattern or cut
    words (``"striped"``, ``"plaid"``, ``"logo"``, ``"colour-block"``, ``"patterned"``,
    ``"v-neck"``, ``"tight"``); ``style`` is ``"casual"`` or ``"formal"``.
    """

    kind: str | None = None
    colour: str | None = None
    sleeve: str | None = None
    details: tuple[str, ...] = ()
    style: str | None = None

    def __post_init__(self) -> None:
        if self.colour is not None:
            object.__setattr__(self, "colour", canonical_colour(self.colour))
        _check_choice("Garment.sleeve", self.sleeve, SLEEVES)
        _check_choice("Garment.style", self.style, STYLES)
        object.__setattr__(self, "details", tuple(self.details))

    @property
    def known(self) -> bool:
        """Whether anything at all is known about this garment."""
        return bool(self.kind or self.colour or self.sleeve or self.details or self.style)


@dataclass(frozen=True)
class PersonDescription:
    """What is known about a person's appearance; ``None`` / ``()`` means unknown."""

    gender: str | None = None
    age: str | None = None
    build: str | None = None
    hair_length: str | None = None
    hair_colour: str | None = None
    head_items: tuple[Item, ...] = ()
    upper: Garment = Garment()
    lower: Garment = Garment()
    shoes: Garment = Garment()
    belongings: tuple[Item, ...] = ()
    actions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_choice("PersonDescription.gender", self.gender, GENDERS)
        _check_choice("PersonDescription.age", self.age, AGES)
        _check_choice("PersonDescription.build", self.build, BUILDS)
        _check_choice("PersonDescription.hair_length", self.hair_length, HAIR_LENGTHS)
        if self.hair_colour is not None:
            object.__setattr__(self, "hair_colour", canonical_colour(self.hair_colour))
        for name in ("head_items", "belongings", "actions"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def wears_dress(self) -> bool:
        """A dress is one garment for both body halves; captions name it once."""
        return self.upper.kind == "dress" and self.lower.kind == "dress"


# ---------------------------------------------------------------------------------------
# Vocabulary: nouns with their number and synonyms
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Noun:
    text: str
    plural: bool = False
    synonyms: tuple[str, ...] = ()
    article: bool = True  # "something" takes none
    pair: bool = False  # "a pair of" reads well (trousers, shoes, glasses)


def _n(text: str, *synonyms: str, plural: bool = False, pair: bool = False, article: bool = True) -> _Noun:
    return _Noun(text, plural, (text,) + synonyms, article, pair)


_NOUNS: dict[str, _Noun] = {
    # upper body
    "t-shirt": _n("t-shirt", "tee", "tee shirt"),
    "shirt": _n("shirt", "button-up shirt", "collared shirt"),
    "sweater": _n("sweater", "jumper", "pullover"),
    "jacket": _n("jacket", "zip-up jacket"),
    "coat": _n("coat", "overcoat"),
    "long coat": _n("long coat", "knee-length coat"),
    "padded jacket": _n("padded jacket", "quilted jacket"),
    "suit jacket": _n("suit jacket", "blazer"),
    "suit": _n("suit"),
    "vest": _n("vest", "waistcoat"),
    "tank top": _n("tank top", "sleeveless top"),
    "top": _n("top", "upper garment"),
    "dress": _n("dress"),
    # lower body
    "trousers": _n("trousers", "pants", "slacks", plural=True, pair=True),
    "jeans": _n("jeans", "denim jeans", plural=True, pair=True),
    "tight trousers": _n("tight trousers", "skinny trousers", "tight pants", plural=True, pair=True),
    "cropped trousers": _n("cropped trousers", "capri pants", plural=True, pair=True),
    "suit trousers": _n("suit trousers", "dress trousers", plural=True, pair=True),
    "shorts": _n("shorts", plural=True, pair=True),
    "hot pants": _n("hot pants", "very short shorts", plural=True, pair=True),
    "skirt": _n("skirt"),
    "short skirt": _n("short skirt", "miniskirt"),
    "long skirt": _n("long skirt", "maxi skirt"),
    "skirt or dress": _n("skirt or dress"),
    "bottoms": _n("bottoms", plural=True),
    # shoes
    "shoes": _n("shoes", plural=True, pair=True),
    "boots": _n("boots", plural=True, pair=True),
    "sneakers": _n("sneakers", "trainers", "sports shoes", plural=True, pair=True),
    "sandals": _n("sandals", plural=True, pair=True),
    "leather shoes": _n("leather shoes", plural=True, pair=True),
    "cloth shoes": _n("cloth shoes", "canvas shoes", plural=True, pair=True),
    "casual shoes": _n("casual shoes", plural=True, pair=True),
    "stockings": _n("stockings", plural=True, pair=True),
    # head and neck
    "hat": _n("hat"),
    "cap": _n("cap", "baseball cap"),
    "glasses": _n("glasses", "spectacles", plural=True, pair=True),
    "sunglasses": _n("sunglasses", "shades", plural=True, pair=True),
    "scarf": _n("scarf", "muffler"),
    "headphones": _n("headphones", plural=True, pair=True),
    "hair band": _n("hair band", "headband"),
    "kerchief": _n("kerchief", "headscarf"),
    # belongings
    "backpack": _n("backpack", "rucksack"),
    "handbag": _n("handbag", "purse"),
    "shoulder bag": _n("shoulder bag", "bag over the shoulder"),
    "messenger bag": _n("messenger bag", "satchel"),
    "plastic bag": _n("plastic bag"),
    "paper bag": _n("paper bag"),
    "box": _n("box", "carton"),
    "suitcase": _n("suitcase", "trolley case"),
    "umbrella": _n("umbrella"),
    "folder": _n("folder", "file folder"),
    "baby stroller": _n("baby stroller", "pushchair"),
    "shopping trolley": _n("shopping trolley", "shopping cart"),
    "something": _n("something", article=False),
}

# Generic noun used when the garment's kind is unknown but something else (colour,
# sleeves, pattern) is known.
_GENERIC_KIND = {"upper": "top", "lower": "bottoms", "shoes": "shoes"}

# Kinds whose sleeve length goes without saying; the sleeve adjective is dropped for them.
IMPLIED_SLEEVES = {
    "tank top": "none",
    "vest": "none",
    "sweater": "long",
    "jacket": "long",
    "coat": "long",
    "long coat": "long",
    "padded jacket": "long",
    "suit jacket": "long",
    "suit": "long",
}

_SLEEVE_ADJECTIVE = {"short": "short-sleeved", "long": "long-sleeved", "none": "sleeveless"}
_SLEEVE_TAIL = {"short": "short sleeves", "long": "long sleeves"}  # after "with"

# detail -> (adjective, tail phrase); exactly one of them is used.
_DETAILS = {
    "striped": ("striped", None),
    "plaid": ("plaid", None),
    "patterned": ("patterned", None),
    "colour-block": ("colour-block", None),
    "v-neck": ("v-neck", None),
    "tight": ("tight-fitting", None),
    "logo": (None, "a logo"),  # after "with"
}

_BUILD_ADJECTIVE = {"slim": "slim", "heavy": "heavy-set"}
_AGE_ADJECTIVE = {"young": "young", "middle-aged": "middle-aged", "elderly": "elderly"}
_PERSON_NOUNS = {
    "male": ("man", "guy", "male pedestrian"),
    "female": ("woman", "lady", "female pedestrian"),
    None: ("person", "pedestrian"),
}
_CHILD_NOUNS = {"male": ("boy",), "female": ("girl",), None: ("child", "kid")}

_ACTIONS = {
    "calling": "talking on the phone",
    "talking": "talking with someone",
    "gathering": "standing in a group",
    "holding": "holding something",
    "holding in front": "holding something in front of the body",
    "pushing": "pushing something",
    "pulling": "pulling something",
    "carrying by arm": "carrying something under the arm",
    "carrying by hand": "carrying something in one hand",
}

_BAG_PLACE = {"backpack": "on {poss} back", "handbag": "in {poss} hand", "shoulder bag": "over {poss} shoulder"}


# ---------------------------------------------------------------------------------------
# Phrase helpers
# ---------------------------------------------------------------------------------------


class _Words:
    """Word choices for one caption: synonyms come from ``rng`` unless canonical."""

    def __init__(self, rng: np.random.Generator | None):
        self.rng = rng

    def pick(self, options: Sequence[str]) -> str:
        if self.rng is None or len(options) == 1:
            return options[0]
        return options[int(self.rng.integers(len(options)))]

    def coin(self, p: float = 0.5) -> bool:
        return self.rng is not None and bool(self.rng.random() < p)


def _noun(kind: str) -> _Noun:
    return _NOUNS.get(kind) or _Noun(kind, kind.endswith("s") and not kind.endswith("ss"), (kind,))


def _article(word: str) -> str:
    first = word.split()[0].lower() if word.strip() else ""
    if first.startswith(("uni", "use", "one", "eu")):
        return "a"
    return "an" if first[:1] in "aeiou" else "a"


def _with_article(phrase: str, noun: _Noun, words: _Words, canonical: bool, pair: bool = False) -> str:
    """Add "a"/"an" to singular nouns; plural ones may take "a pair of" (only when
    ``pair`` in canonical text, at random otherwise)."""
    if not noun.article:
        return phrase
    if noun.plural:
        use_pair = noun.pair and (pair if canonical else words.coin(0.5))
        return "a pair of " + phrase if use_pair else phrase
    return f"{_article(phrase)} {phrase}"


def _join(parts: Sequence[str], conjunction: str = "and") -> str:
    parts = [p for p in parts if p]
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + f" {conjunction} " + parts[-1]


def _sentence(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = text[0].upper() + text[1:]
    return text if text.endswith(".") else text + "."


@dataclass(frozen=True)
class _Pronoun:
    subject: str
    possessive: str
    singular: bool

    @property
    def be(self) -> str:
        return "is" if self.singular else "are"

    @property
    def have(self) -> str:
        return "has" if self.singular else "have"

    def verb(self, base: str) -> str:
        """Present tense agreeing with the subject: wear -> wears, carry -> carries."""
        if not self.singular:
            return base
        if base.endswith("y") and base[-2:-1] not in "aeiou":
            return base[:-1] + "ies"
        if base.endswith(("s", "sh", "ch", "x")):
            return base + "es"
        return base + "s"


# A noun subject ("the woman", "a person") always takes the singular verb.
_NOUN_SUBJECT = _Pronoun("", "", True)


def _pronoun(desc: PersonDescription) -> _Pronoun:
    if desc.gender == "male":
        return _Pronoun("he", "his", True)
    if desc.gender == "female":
        return _Pronoun("she", "her", True)
    return _Pronoun("they", "their", False)


def _garment_phrase(g: Garment, slot: str, words: _Words, canonical: bool) -> tuple[str, _Noun]:
    """Words of a garment without article, e.g. ``"red short-sleeved t-shirt"``."""
    kind = g.kind or _GENERIC_KIND[slot]
    noun = _noun(kind)
    head = noun.text if canonical else words.pick(noun.synonyms)
    adjectives: list[str] = []
    tails: list[str] = []
    if g.style:
        adjectives.append(g.style)
    for detail in g.details:
        adjective, tail = _DETAILS.get(detail, (detail, None))
        if adjective:
            adjectives.append(adjective)
        if tail:
            tails.append(tail)
    sleeve = g.sleeve if g.sleeve and IMPLIED_SLEEVES.get(kind) != g.sleeve else None
    if canonical or sleeve == "none" or not words.coin(0.35):
        # adjective form: "red short-sleeved t-shirt" (canonical) or "short-sleeved red t-shirt"
        if g.colour and sleeve and not canonical and words.coin(0.5):
            adjectives += [_SLEEVE_ADJECTIVE[sleeve], g.colour]
        else:
            adjectives += [c for c in (g.colour, _SLEEVE_ADJECTIVE.get(sleeve or "")) if c]
    else:
        adjectives += [g.colour] if g.colour else []
        if sleeve:
            tails.insert(0, _SLEEVE_TAIL[sleeve])
    phrase = " ".join(adjectives + [head] + (["with " + _join(tails)] if tails else []))
    return phrase, noun


def _garment_np(g: Garment, slot: str, words: _Words, canonical: bool = False) -> str:
    """Noun phrase with article: ``"a red t-shirt"``, ``"blue jeans"``, ``"a pair of black shoes"``."""
    phrase, noun = _garment_phrase(g, slot, words, canonical)
    return _with_article(phrase, noun, words, canonical, pair=slot == "shoes")


def _item_phrase(item: Item, words: _Words, canonical: bool) -> tuple[str, _Noun]:
    noun = _noun(item.kind)
    head = noun.text if canonical else words.pick(noun.synonyms)
    return (f"{item.colour} {head}" if item.colour else head), noun


def _item_np(item: Item, words: _Words, canonical: bool = False) -> str:
    phrase, noun = _item_phrase(item, words, canonical)
    return _with_article(phrase, noun, words, canonical)


def _hair_phrase(desc: PersonDescription, words: _Words, canonical: bool) -> str | None:
    """``"short black hair"``, ``"a bald head"``, ``"black hair"``; None when unknown."""
    if desc.hair_length == "bald":
        return "a bald head"
    parts = [p for p in (desc.hair_length, desc.hair_colour) if p]
    if not parts:
        return None
    if len(parts) == 2 and not canonical and words.coin(0.25):
        return f"{desc.hair_length}, {desc.hair_colour} hair"
    return " ".join(parts) + " hair"


def _head_nps(desc: PersonDescription, words: _Words, canonical: bool) -> list[str]:
    hair = _hair_phrase(desc, words, canonical)
    items = [_item_np(i, words, canonical) for i in desc.head_items]
    return ([hair] if hair else []) + items


def _person_words(desc: PersonDescription, words: _Words, canonical: bool) -> str:
    """Person noun with its adjectives, no article: ``"young man"``, ``"girl"``."""
    if desc.age == "child":
        noun = words.pick(_CHILD_NOUNS[desc.gender]) if not canonical else _CHILD_NOUNS[desc.gender][0]
    else:
        options = _PERSON_NOUNS[desc.gender]
        noun = options[0] if canonical else words.pick(options)
    adjectives = [a for a in (_BUILD_ADJECTIVE.get(desc.build or ""), _AGE_ADJECTIVE.get(desc.age or "")) if a]
    return " ".join(adjectives + [noun])


def _outfit_nps(desc: PersonDescription, words: _Words, canonical: bool = False) -> list[str]:
    """Noun phrases of the known body garments, upper first; a dress is named once."""
    if desc.wears_dress:
        merged = Garment(
            kind="dress",
            colour=desc.upper.colour or desc.lower.colour,
            sleeve=desc.upper.sleeve,
            details=tuple(dict.fromkeys(desc.upper.details + desc.lower.details)),
            style=desc.upper.style or desc.lower.style,
        )
        return [_garment_np(merged, "upper", words, canonical)]
    nps = []
    if desc.upper.known:
        nps.append(_garment_np(desc.upper, "upper", words, canonical))
    if desc.lower.known:
        nps.append(_garment_np(desc.lower, "lower", words, canonical))
    return nps


def _actions_phrase(desc: PersonDescription) -> str | None:
    phrases = [_ACTIONS.get(a, a) for a in desc.actions]
    return _join(phrases) if phrases else None


# ---------------------------------------------------------------------------------------
# SYNTH-PEDES attribute fields and the prompt caption
# ---------------------------------------------------------------------------------------


def attribute_fields(desc: PersonDescription) -> tuple[str, str, str, str, str, str]:
    """The six SYNTH-PEDES attribute phrases, ``"unknown"`` where nothing is known.

    Order: person (gender), head (hair and headwear), upper body, lower body, shoes,
    belongings. Phrases never contain commas, so they can be comma-joined.
    """
    words = _Words(None)
    person = _person_words(desc, words, True) if (desc.gender or desc.age or desc.build) else UNKNOWN
    head_parts = []
    hair = _hair_phrase(desc, words, True)
    if hair:
        head_parts.append(hair.removeprefix("a "))
    head_parts += [_item_phrase(i, words, True)[0] for i in desc.head_items]
    head = " and ".join(head_parts) or UNKNOWN
    upper = _garment_phrase(desc.upper, "upper", words, True)[0] if desc.upper.known else UNKNOWN
    lower = _garment_phrase(desc.lower, "lower", words, True)[0] if desc.lower.known else UNKNOWN
    shoes = _garment_phrase(desc.shoes, "shoes", words, True)[0] if desc.shoes.known else UNKNOWN
    belongings = " and ".join(_item_phrase(i, words, True)[0] for i in desc.belongings) or UNKNOWN
    fields = (person, head, upper, lower, shoes, belongings)
    return tuple(f.replace(",", "") for f in fields)  # type: ignore[return-value]


def attribute_string(desc: PersonDescription) -> str:
    """The comma-joined six fields, as stored in SYNTH-PEDES's ``attributes`` list."""
    return ",".join(attribute_fields(desc))


def prompt_caption(desc: PersonDescription) -> str:
    """The attribute-union sentence of PLIP's prompt captions, with canonical words.

    Template: "A [person] with [head] is wearing [upper] with [lower]. [He] is also
    wearing [shoes] and carrying [belongings]. [He] is [actions]." -- clauses of unknown
    attributes are left out and the pronoun follows the gender.
    """
    words = _Words(None)
    pron = _pronoun(desc)
    person = _person_words(desc, words, True)
    head = _head_nps(desc, words, True)
    outfit = _outfit_nps(desc, words, True)
    first = f"{_article(person)} {person}"
    if head:
        first += " with " + _join(head)
    if outfit:
        joiner = " and " if any(" with " in o for o in outfit[:-1]) else " with "
        first += " is wearing " + joiner.join(outfit)
    else:
        first = "This is " + first
    sentences = [_sentence(first)]
    shoes = _garment_np(desc.shoes, "shoes", words, True) if desc.shoes.known else None
    bags = _join([_item_np(i, words, True) for i in desc.belongings])
    also = " also" if outfit else ""
    if shoes and bags:
        sentences.append(_sentence(f"{pron.subject} {pron.be}{also} wearing {shoes} and carrying {bags}"))
    elif shoes:
        sentences.append(_sentence(f"{pron.subject} {pron.be}{also} wearing {shoes}"))
    elif bags:
        sentences.append(_sentence(f"{pron.subject} {pron.be}{also} carrying {bags}"))
    actions = _actions_phrase(desc)
    if actions:
        sentences.append(_sentence(f"{pron.subject} {pron.be} {actions}"))
    return " ".join(sentences)


# ---------------------------------------------------------------------------------------
# Caption styles
# ---------------------------------------------------------------------------------------


class _Parts:
    """The phrases one caption is written from, with synonyms drawn once."""

    def __init__(self, desc: PersonDescription, rng: np.random.Generator):
        w = self.words = _Words(rng)
        self.desc = desc
        self.pron = _pronoun(desc)
        self.person = _person_words(desc, w, False)
        self.a_person = f"{_article(self.person)} {self.person}"
        self.head = _head_nps(desc, w, False)
        self.outfit = _outfit_nps(desc, w, False)
        self.shoes = _garment_np(desc.shoes, "shoes", w) if desc.shoes.known else None
        self.bags = [_item_np(i, w) for i in desc.belongings]
        self.actions = _actions_phrase(desc)

    def wear(self, who: _Pronoun | None = None, shoes: bool = False) -> str:
        """A verb for wearing, agreeing with ``who`` (the pronoun by default)."""
        p = who or self.pron
        verbs = (f"{p.be} wearing", p.verb("wear"), f"{p.have} on")
        return self.words.pick(verbs if shoes else verbs + (f"{p.be} dressed in",))

    def carry(self, who: _Pronoun | None = None) -> str:
        p = who or self.pron
        return self.words.pick((f"{p.be} carrying", p.verb("carry"), p.have))

    def tail_sentences(self, include_shoes: bool = False) -> list[str]:
        """Belongings and actions as closing sentences."""
        p = self.pron
        out = []
        if include_shoes and self.shoes:
            out.append(_sentence(f"{p.subject} {self.wear(shoes=True)} {self.shoes}"))
        if self.bags:
            out.append(_sentence(f"{p.subject} {self.carry()} {_join(self.bags)}"))
        if self.actions:
            out.append(_sentence(f"{p.subject} {p.be} {self.actions}"))
        return out


def _style_narrative(desc: PersonDescription, rng: np.random.Generator) -> str:
    """CUHK-PEDES-like: hair first, then clothes, shoes, belongings in order."""
    x = _Parts(desc, rng)
    p, w = x.pron, x.words
    sentences = []
    subject, who = w.pick(("the", "this")) + " " + x.person, _NOUN_SUBJECT
    if x.head:
        sentences.append(_sentence(f"{subject} has {_join(x.head)}"))
        subject, who = p.subject, p
    clothes = list(x.outfit)
    shoes_done = bool(x.shoes) and w.coin(0.6)
    if shoes_done:
        clothes.append(x.shoes)
    if clothes:
        sentences.append(_sentence(f"{subject} {x.wear(who)} {_join(clothes)}"))
    elif not sentences:
        sentences.append(_sentence(f"{subject} is walking"))
    return " ".join(sentences + x.tail_sentences(include_shoes=not shoes_done))


def _style_compact(desc: PersonDescription, rng: np.random.Generator) -> str:
    """One short sentence: person, clothes, maybe hair and bag; less detail."""
    x = _Parts(desc, rng)
    w = x.words
    text = x.a_person
    if x.head and w.coin(0.5):
        text += " with " + x.head[0]
    if x.outfit:
        text += " " + w.pick(("in", "wearing", "dressed in")) + " " + _join(x.outfit)
    if x.bags:
        text += " " + w.pick(("carrying", "with")) + " " + _join(x.bags)
    if x.actions:
        text += ", " + x.actions
    return _sentence(text)


def _style_detailed(desc: PersonDescription, rng: np.random.Generator) -> str:
    """ICFG-PEDES-like: body part by body part, with where the bags are carried."""
    x = _Parts(desc, rng)
    p, w = x.pron, x.words
    sentences = []
    intro = w.pick(("this is", "the image shows", "we can see")) + " " + x.a_person
    if x.head:
        intro += " with " + _join(x.head)
    sentences.append(_sentence(intro))
    if desc.wears_dress:
        sentences.append(_sentence(f"{p.subject} {x.wear()} {x.outfit[0]}"))
    else:
        if desc.upper.known:
            where = w.pick(("on the upper body", f"on {p.possessive} upper body", "on top"))
            sentences.append(_sentence(f"{p.subject} {x.wear()} {x.outfit[0]} {where}"))
        if desc.lower.known:
            lower = x.outfit[-1]
            lead = w.pick((f"{p.possessive} lower body is covered by", f"on the lower body {p.subject} {p.have}"))
            sentences.append(_sentence(f"{lead} {lower}"))
    if x.shoes:
        sentences.append(_sentence(f"on {p.possessive} feet {p.subject} {x.wear(shoes=True)} {x.shoes}"))
    for item, np_ in zip(desc.belongings, x.bags, strict=True):
        place = _BAG_PLACE.get(item.kind, "")
        sentences.append(_sentence(f"{p.subject} {x.carry()} {np_} {place.format(poss=p.possessive)}"))
    if x.actions:
        sentences.append(_sentence(f"{p.subject} {p.be} {x.actions}"))
    return " ".join(sentences)


def _style_bottom_up(desc: PersonDescription, rng: np.random.Generator) -> str:
    """Reverse order: lower garment (and shoes) first, then upper, hair last."""
    x = _Parts(desc, rng)
    p = x.pron
    lower_first = [] if desc.wears_dress or not desc.lower.known else [x.outfit[-1]]
    upper = x.outfit[:1] if (desc.wears_dress or desc.upper.known) else []
    lead = lower_first + ([x.shoes] if x.shoes else [])
    sentences = []
    if lead and upper:
        sentences.append(_sentence(f"wearing {_join(lead)}, {x.a_person} also has on {upper[0]}"))
    elif lead or upper:
        sentences.append(_sentence(f"{x.a_person} {x.wear(_NOUN_SUBJECT)} {_join(lead + upper)}"))
    else:
        sentences.append(_sentence(f"{x.a_person} is walking"))
    if x.head:
        sentences.append(_sentence(f"{p.subject} {p.have} {_join(x.head)}"))
    return " ".join(sentences + x.tail_sentences())


def _style_passive(desc: PersonDescription, rng: np.random.Generator) -> str:
    """Garment as subject: "A red shirt and blue jeans are worn by a man ..."."""
    x = _Parts(desc, rng)
    if not x.outfit:
        return _style_compact(desc, rng)
    plural = len(x.outfit) > 1 or (
        not desc.wears_dress and not desc.upper.known and _noun(desc.lower.kind or "bottoms").plural
    )
    text = f"{_join(x.outfit)} {'are' if plural else 'is'} worn by {x.a_person}"
    if x.head:
        text += " with " + _join(x.head)
    sentences = [_sentence(text)]
    return " ".join(sentences + x.tail_sentences(include_shoes=True))


CaptionStyle = Callable[[PersonDescription, np.random.Generator], str]

#: Caption styles by name; each writes one caption of a description with ``rng`` choosing
#: synonyms and optional phrasing. All state the same facts about the garments.
CAPTION_STYLES: dict[str, CaptionStyle] = {
    "narrative": _style_narrative,
    "compact": _style_compact,
    "detailed": _style_detailed,
    "bottom-up": _style_bottom_up,
    "passive": _style_passive,
}


def caption(desc: PersonDescription, style: str, rng: np.random.Generator) -> str:
    """One caption of ``desc`` in the named style (see :data:`CAPTION_STYLES`)."""
    try:
        fn = CAPTION_STYLES[style]
    except KeyError:
        raise ConfigError(f"unknown caption style {style!r}; choose from {sorted(CAPTION_STYLES)}") from None
    return fn(desc, rng)


def generate_captions(desc: PersonDescription, rng: np.random.Generator, count: int = 2) -> list[str]:
    """``count`` captions of ``desc`` in distinct styles chosen by ``rng``.

    Styles are drawn without replacement, so the captions of one image differ in
    structure; images of the same person draw their own styles and synonyms.
    """
    if not 1 <= count <= len(CAPTION_STYLES):
        raise ConfigError(f"count must be between 1 and {len(CAPTION_STYLES)}, got {count}")
    names = list(CAPTION_STYLES)
    chosen = rng.choice(len(names), size=count, replace=False)
    captions: list[str] = []
    for index in chosen:
        text = CAPTION_STYLES[names[int(index)]](desc, rng)
        # Styles can coincide for sparse descriptions; re-draw wording before giving up.
        for _ in range(3):
            if text not in captions:
                break
            text = CAPTION_STYLES[names[int(index)]](desc, rng)
        captions.append(text)
    return captions


_TOKEN = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


def caption_tokens(text: str) -> list[str]:
    """Lower-case word tokens, as in CUHK-PEDES's ``processed_tokens``."""
    return _TOKEN.findall(text.lower())
