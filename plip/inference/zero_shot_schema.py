"""Attribute schemas for zero-shot recognition: what to ask about a person, and how.

A schema is a list of attributes. A *binary* attribute has a positive and a negative
value ("carries a backpack" / "a person"); a *group* has several exclusive values scored
one-vs-rest ("upper-body colour": black, white, red, ...). Every value holds its text
prompts (an ensemble: several phrasings or templates) and, optionally, the fact it states
as a :class:`~plip.data.captions.PersonDescription` fragment, so that predictions can be
turned into a caption. Values that predict a label column name it (``column``).

Built-in schemas (:func:`list_schemas`):

* ``pa100k``, ``peta``, ``rapv1``, ``rapv2`` (``rap`` = ``rapv1``): the evaluated label
  columns of the benchmarks (:mod:`plip.data.attribute_names`), phrased by the caption
  grammar from what each label states (:func:`plip.data.attribute_vocab.describe_labels`),
  with exclusive labels (age groups, views, sleeve length, lower garment ...) as groups;
* ``person``: the appearance vocabulary of the captions (gender, hair, garments and their
  colours, shoes, bag, cap), the default of :func:`plip.inference.zero_shot.describe`.

Custom schemas are YAML or JSON files (:func:`load_schema`); see
``docs/zero_shot_attributes.md`` for the format.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..data.captions import PersonDescription
from ..errors import ConfigError
from .zero_shot_facts import EMPTY, check_template, fragment_prompts, parse_fact

__all__ = [
    "AttributeValue",
    "SchemaAttribute",
    "AttributeSchema",
    "DEFAULT_TEMPLATES",
    "NEUTRAL_PROMPTS",
    "register_schema",
    "list_schemas",
    "get_schema",
    "load_schema",
    "schema_from_dict",
    "dataset_schema",
    "person_schema",
    "column_labels",
]

#: Templates applied to the phrases of custom schemas unless the file names its own.
DEFAULT_TEMPLATES: tuple[str, ...] = ("{}.", "a photo of {}.", "this is {}.", "the image shows {}.")

#: Prompts of "a person" with nothing said: the negative of a binary attribute whose
#: absence the captions never mention (no bag, no hat).
NEUTRAL_PROMPTS: tuple[str, ...] = ("This is a person.", "A person is walking.", "We can see a person.", "A pedestrian.")

BINARY, GROUP = "binary", "group"


@dataclass(frozen=True)
class AttributeValue:
    """One outcome of an attribute: its prompts, label column and stated fact."""

    name: str
    prompts: tuple[str, ...]
    column: str | None = None  # the label column it predicts; None: not reported
    fragment: PersonDescription = EMPTY  # the fact, for captions; EMPTY: says nothing


@dataclass(frozen=True)
class SchemaAttribute:
    """A binary attribute (values: positive, negative) or an exclusive group of values."""

    name: str
    kind: str  # BINARY or GROUP
    values: tuple[AttributeValue, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(v.column for v in self.values if v.column is not None)


@dataclass(frozen=True)
class AttributeSchema:
    """A named list of attributes; ``columns`` are the label columns it predicts, in order."""

    name: str
    attributes: tuple[SchemaAttribute, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for attribute in self.attributes:
            if attribute.name in seen:
                raise ConfigError(f"schema {self.name!r}: attribute {attribute.name!r} appears twice")
            seen.add(attribute.name)
        columns = [c for a in self.attributes for c in a.columns]
        duplicates = sorted({c for c in columns if columns.count(c) > 1})
        if duplicates:
            raise ConfigError(f"schema {self.name!r}: label column(s) {duplicates} predicted twice")
        if not columns:
            raise ConfigError(f"schema {self.name!r} predicts no label column")

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c for a in self.attributes for c in a.columns)

    def attribute(self, name: str) -> SchemaAttribute:
        """The attribute called ``name``, or the one predicting column ``name``."""
        for attribute in self.attributes:
            if attribute.name == name:
                return attribute
        for attribute in self.attributes:
            if name in attribute.columns:
                return attribute
        raise ConfigError(
            f"schema {self.name!r} has no attribute or column {name!r}; attributes: "
            + ", ".join(a.name for a in self.attributes)
        )

    def select(self, names: Iterable[str]) -> AttributeSchema:
        """The schema restricted to the attributes called (or predicting the columns) ``names``."""
        chosen: list[SchemaAttribute] = []
        for name in names:
            attribute = self.attribute(name)
            if attribute not in chosen:
                chosen.append(attribute)
        return AttributeSchema(f"{self.name}[{','.join(a.name for a in chosen)}]", tuple(chosen))


# ---------------------------------------------------------------------------------------
# Registry of built-in schemas
# ---------------------------------------------------------------------------------------

_BUILDERS: dict[str, Callable[[], AttributeSchema]] = {}
_ALIASES = {"rap": "rapv1", "rap1": "rapv1", "rap2": "rapv2"}


def register_schema(name: str) -> Callable[[Callable[[], AttributeSchema]], Callable[[], AttributeSchema]]:
    """Register a function building a schema under ``name`` (built on first use, then cached)."""

    def wrap(builder: Callable[[], AttributeSchema]) -> Callable[[], AttributeSchema]:
        if name in _BUILDERS:
            raise ConfigError(f"schema {name!r} is already registered")
        _BUILDERS[name] = builder
        return builder

    return wrap


def list_schemas() -> list[str]:
    """Names of the built-in schemas."""
    return sorted(_BUILDERS)


@lru_cache(maxsize=None)
def _built(name: str) -> AttributeSchema:
    return _BUILDERS[name]()


def get_schema(spec: str | Path | AttributeSchema) -> AttributeSchema:
    """A schema from a built-in name, a YAML/JSON file, or a schema (returned as is)."""
    if isinstance(spec, AttributeSchema):
        return spec
    text = str(spec)
    key = text.lower().replace("-", "").replace("_", "")
    key = _ALIASES.get(key, key)
    if key in _BUILDERS:
        return _built(key)
    if text.lower().endswith((".yaml", ".yml", ".json")) or Path(text).is_file():
        return load_schema(text)
    raise ConfigError(f"unknown attribute schema {text!r}; choose one of {', '.join(list_schemas())} or a .yaml/.json file")


# ---------------------------------------------------------------------------------------
# Built-in schemas: the attribute benchmarks
# ---------------------------------------------------------------------------------------

# Exclusive labels of each benchmark, scored as one group (one-vs-rest over its labels).
_GROUPS: dict[str, dict[str, tuple[str, ...]]] = {
    "pa100k": {
        "age": ("AgeOver60", "Age18-60", "AgeLess18"),
        "view": ("Front", "Side", "Back"),
        "sleeve": ("ShortSleeve", "LongSleeve"),
        "lower garment": ("Trousers", "Shorts", "Skirt&Dress"),
    },
    "peta": {
        "age": ("personalLess30", "personalLess45", "personalLess60", "personalLarger60"),
        "upper style": ("upperBodyCasual", "upperBodyFormal"),
        "lower style": ("lowerBodyCasual", "lowerBodyFormal"),
    },
    "rapv1": {
        "age": ("AgeLess16", "Age17-30", "Age31-45"),
        "build": ("BodyFat", "BodyNormal", "BodyThin"),
        "role": ("Customer", "Clerk"),
    },
    "rapv2": {
        "age": ("AgeLess16", "Age17-30", "Age31-45", "Age46-60"),
        "build": ("BodyFat", "BodyNormal", "BodyThin"),
        "role": ("Customer", "Employee"),
    },
}

# Labels the caption grammar does not describe (views, roles, "other"): hand-written prompts.
_PHRASES: dict[str, tuple[str, ...]] = {
    "Front": ("A person seen from the front.", "A person facing the camera.", "The front of a person."),
    "Side": ("A person seen from the side.", "A side view of a person.", "A person walking sideways."),
    "Back": ("A person seen from behind.", "The back of a person.", "A person walking away from the camera."),
    "accessoryNothing": ("A person with no hat or accessory.", "A person wearing nothing on the head."),
    "carryingNothing": ("A person carrying nothing.", "A person with empty hands.", "A person without a bag."),
    "upperBodyOther": ("A person wearing an unusual top.", "A person in an uncommon upper garment."),
    "BodyNormal": ("A person of average build.", "A person of normal build."),
    "Customer": ("A customer in a shop.", "A shopper."),
    "Clerk": ("A shop clerk at work.", "A clerk in a uniform."),
    "Employee": ("An employee at work.", "A shop assistant in a uniform."),
    "ub-Others": ("A person wearing an unusual top.", "A person in an uncommon upper garment."),
    "shoes-Other": ("A person wearing unusual shoes.", "A person in uncommon footwear."),
    "action-Other": ("A person doing something.", "A person busy with something."),
    # "adult" has no adjective in the captions; say it
    "Age18-60": ("This is an adult.", "An adult pedestrian.", "A grown-up person."),
    "personalLess45": ("This is an adult.", "An adult in their thirties or early forties.", "A grown-up person."),
    "Age31-45": ("This is an adult.", "An adult in their thirties or early forties.", "A grown-up person."),
}
_SNEAKERS = ("This is a person. They are wearing a pair of sneakers.", "A person wearing sports shoes.",
             "A pedestrian in trainers.")
_PHRASES.update({"footwearSneaker": _SNEAKERS, "shoes-Sport": _SNEAKERS, "shoes-Sports": _SNEAKERS})


def _value_for_label(label: str, label_set: str, name: str | None = None) -> AttributeValue:
    from ..data.attribute_vocab import describe_labels

    fragment, _ = describe_labels({label: 1}, label_set)
    prompts = _PHRASES.get(label) or tuple(fragment_prompts(fragment))
    if not prompts:  # pragma: no cover - every evaluated label is covered by the tables above
        raise ConfigError(f"{label_set} label {label!r} has no phrasing")
    return AttributeValue(name or label, tuple(prompts), label, fragment)


def _negative_for_label(label: str, label_set: str) -> AttributeValue:
    from ..data.attribute_vocab import describe_labels

    fragment, _ = describe_labels({label: 0}, label_set)  # Female=0 says "male"; most say nothing
    prompts = tuple(fragment_prompts(fragment)) or NEUTRAL_PROMPTS
    return AttributeValue(f"not {label}", prompts, None, fragment)


def dataset_schema(label_set: str) -> AttributeSchema:
    """The schema of a benchmark's evaluated labels (``pa100k``, ``peta``, ``rapv1``, ``rapv2``)."""
    from ..data.attribute_vocab import label_names

    groups = _GROUPS[label_set]
    group_of = {label: group for group, labels in groups.items() for label in labels}
    attributes: list[SchemaAttribute] = []
    for label in label_names(label_set):
        group = group_of.get(label)
        if group is None:
            values = (_value_for_label(label, label_set), _negative_for_label(label, label_set))
            attributes.append(SchemaAttribute(label, BINARY, values))
        elif label == groups[group][0]:
            values = tuple(_value_for_label(member, label_set) for member in groups[group])
            attributes.append(SchemaAttribute(group, GROUP, values))
    return AttributeSchema(label_set, tuple(attributes))


for _label_set in _GROUPS:
    register_schema(_label_set)(lambda label_set=_label_set: dataset_schema(label_set))


# ---------------------------------------------------------------------------------------
# Built-in schema: the caption vocabulary ("person")
# ---------------------------------------------------------------------------------------

_COLOURS = ("black", "white", "grey", "red", "blue", "green", "yellow", "orange", "pink", "purple", "brown")

# attribute -> (fact field, values); a value None means "none of these" (neutral prompts).
_PERSON: tuple[tuple[str, str, tuple[str | None, ...]], ...] = (
    ("gender", "gender", ("male", "female")),
    ("hair length", "hair_length", ("short", "long", "bald")),
    ("hair colour", "hair_colour", ("black", "brown", "blonde", "grey", "red")),
    ("upper garment", "upper.kind", ("t-shirt", "shirt", "sweater", "jacket", "coat", "tank top", "dress")),
    ("sleeves", "upper.sleeve", ("short", "long", "none")),
    ("upper colour", "upper.colour", _COLOURS),
    ("lower garment", "lower.kind", ("trousers", "shorts", "skirt", "dress")),
    ("lower colour", "lower.colour", _COLOURS),
    ("shoes colour", "shoes.colour", ("black", "white", "grey", "brown", "red", "blue")),
    ("bag", "belongings", ("backpack", "handbag", None)),
    ("cap", "head_items", ("cap",)),
)


def _fact_value(attribute: str, field: str, value: str | None) -> AttributeValue:
    if value is None:
        return AttributeValue("none", NEUTRAL_PROMPTS, f"{attribute}=none", EMPTY)
    fragment = parse_fact(f"{field}={value}", where=f"person schema, {attribute}")
    return AttributeValue(value, tuple(fragment_prompts(fragment)), f"{attribute}={value}", fragment)


@register_schema("person")
def person_schema() -> AttributeSchema:
    """Gender, hair, garments and colours, shoes colour, bag and cap: the appearance the
    SYNTH-PEDES-style captions (and ``plip synth``) describe. Columns ``"<attribute>=<value>"``
    (``"upper colour=red"``); the binary ``cap`` column is ``"cap"``."""
    attributes = []
    for name, field, values in _PERSON:
        if len(values) == 1:
            positive = _fact_value(name, field, values[0])
            positive = AttributeValue(values[0], positive.prompts, name, positive.fragment)
            negative = AttributeValue(f"no {values[0]}", NEUTRAL_PROMPTS, None, EMPTY)
            attributes.append(SchemaAttribute(name, BINARY, (positive, negative)))
        else:
            attributes.append(SchemaAttribute(name, GROUP, tuple(_fact_value(name, field, v) for v in values)))
    return AttributeSchema("person", tuple(attributes))


# ---------------------------------------------------------------------------------------
# Custom schemas from YAML / JSON
# ---------------------------------------------------------------------------------------

_TOP_KEYS = {"name", "base", "templates", "attributes"}
_BINARY_KEYS = {"name", "positive", "negative", "fact", "column", "templates"}
_GROUP_KEYS = {"name", "values", "templates"}
_VALUE_KEYS = {"phrases", "fact", "column"}


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{where}: expected a non-empty list of phrases (strings), got {value!r}")
    return tuple(v.strip() for v in value)


def _templates(value: Any, where: str, default: tuple[str, ...]) -> tuple[str, ...]:
    if value is None:
        return default
    return tuple(check_template(t, f"{where}, templates") for t in _strings(value, f"{where}, templates"))


def _check_keys(entry: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _custom_value(
    name: str, phrases: Any, fact: Any, column: str | None, templates: tuple[str, ...], where: str
) -> AttributeValue:
    fragment = parse_fact(fact, where) if fact is not None else EMPTY
    if phrases is not None:
        prompts = tuple(dict.fromkeys(t.format(p) for p in _strings(phrases, where) for t in templates))
    elif fact is not None:
        prompts = tuple(fragment_prompts(fragment))
    else:
        raise ConfigError(f"{where}: give phrases or a fact (e.g. 'upper.colour=red')")
    return AttributeValue(name, prompts, column, fragment)


def _custom_attribute(entry: Any, index: int, base: AttributeSchema | None, templates: tuple[str, ...],
                      where: str) -> SchemaAttribute:  # fmt: skip
    here = f"{where}, attributes[{index}]"
    if isinstance(entry, str):
        if base is None:
            raise ConfigError(f"{here}: {entry!r} names a built-in attribute, but the schema has no 'base' "
                              f"(one of {', '.join(list_schemas())})")  # fmt: skip
        try:
            return base.attribute(entry)
        except ConfigError as error:
            raise ConfigError(f"{here}: {error}") from None
    if not isinstance(entry, dict):
        raise ConfigError(f"{here}: expected a name or a mapping, got {type(entry).__name__}")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{here}: missing 'name'")
    here = f"{where}, attribute {name!r}"
    local = _templates(entry.get("templates"), here, templates)
    if "values" in entry:
        _check_keys(entry, _GROUP_KEYS, here)
        values = entry["values"]
        if not isinstance(values, dict) or len(values) < 2:
            raise ConfigError(f"{here}: 'values' must map at least two value names to phrases, got {values!r}")
        out = []
        for value_name, spec in values.items():
            vhere = f"{here}, value {value_name!r}"
            if isinstance(spec, dict):
                _check_keys(spec, _VALUE_KEYS, vhere)
                column = spec.get("column", f"{name}={value_name}")
                out.append(_custom_value(str(value_name), spec.get("phrases"), spec.get("fact"), column, local, vhere))
            else:
                out.append(_custom_value(str(value_name), spec, None, f"{name}={value_name}", local, vhere))
        return SchemaAttribute(name, GROUP, tuple(out))
    _check_keys(entry, _BINARY_KEYS, here)
    if "positive" not in entry and "fact" not in entry:
        raise ConfigError(f"{here}: a binary attribute needs 'positive' phrases or a 'fact'; a group needs 'values'")
    positive = _custom_value(name, entry.get("positive"), entry.get("fact"), entry.get("column", name), local, here)
    if "negative" in entry:
        negative = _custom_value(f"not {name}", entry["negative"], None, None, local, f"{here}, negative")
    else:
        negative = AttributeValue(f"not {name}", NEUTRAL_PROMPTS, None, EMPTY)
    return SchemaAttribute(name, BINARY, (positive, negative))


def schema_from_dict(data: Any, where: str = "schema") -> AttributeSchema:
    """A schema from the parsed content of a schema file (see :func:`load_schema`)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping with 'attributes', got {type(data).__name__}")
    _check_keys(data, _TOP_KEYS, where)
    base = get_schema(data["base"]) if data.get("base") is not None else None
    templates = _templates(data.get("templates"), where, DEFAULT_TEMPLATES)
    entries = data.get("attributes")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{where}: 'attributes' must be a non-empty list")
    attributes = tuple(_custom_attribute(e, i, base, templates, where) for i, e in enumerate(entries))
    name = str(data.get("name") or where)
    try:
        return AttributeSchema(name, attributes)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def load_schema(path: str | Path) -> AttributeSchema:
    """Read a custom schema from a YAML (``.yaml``/``.yml``) or JSON file.

    Format (YAML shown)::

        name: bags-and-colours
        base: pa100k            # optional: attributes given by name come from this schema
        templates: ["{}.", "a photo of {}."]   # optional; for the phrases below
        attributes:
          - Backpack            # a built-in attribute of `base`, by name
          - name: umbrella      # binary: positive (and optional negative) phrases
            positive: ["a person holding an umbrella"]
            fact: belongings=umbrella          # optional: used by describe()
          - name: top colour    # group: exactly one value, scored one-vs-rest
            values:
              red: ["a person in a red top"]
              blue: {fact: upper.colour=blue}  # prompts from the caption grammar

    Errors (:class:`ConfigError`) name the file and the attribute at fault.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read schema file {path}: {error.strerror or error}") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}: not valid JSON ({error})") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({error})") from None
    data = dict(data) if isinstance(data, dict) else data
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
    return schema_from_dict(data, where=str(path))


def column_labels(schema: AttributeSchema, descriptions: Sequence[PersonDescription]) -> list[list[int]]:
    """0/1 labels of ``schema.columns`` for people with known descriptions (the synthetic
    persons' ground truth): a value is 1 when the description states its fact; a group's
    fact-less value ("none") is 1 when no other value of the group is."""
    from .zero_shot_facts import contains_fragment

    rows = []
    for desc in descriptions:
        row = []
        for attribute in schema.attributes:
            hits = {v.name: v.fragment != EMPTY and contains_fragment(desc, v.fragment) for v in attribute.values}
            for value in attribute.values:
                if value.column is None:
                    continue
                if value.fragment == EMPTY:
                    if attribute.kind == BINARY:
                        raise ConfigError(f"schema {schema.name!r}: attribute {attribute.name!r} states no fact")
                    row.append(int(not any(hits.values())))
                else:
                    row.append(int(hits[value.name]))
        rows.append(row)
    return rows
