"""Attribute captions (plip.data.captions) and attribute label sets (plip.data.attribute_vocab).

References: the SYNTH-PEDES annotation format and prompt-caption template of the PLIP paper
(shared/reference/PLIP_FACTS.md: six comma-joined fields, "unknown" for missing; "A
[person] with [head] is wearing a [up] with [down]. He is also wearing [shoes] and
carrying a [others]."); the standard attribute lists of PA-100K (26), RAP v1 (51), RAP v2
(54) and PETA (35 of 105) as distributed with the datasets.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from plip.app.cli.main import main
from plip.data.attribute_vocab import (
    LABEL_SETS,
    PA100K_ATTRIBUTES,
    PETA_ATTRIBUTES,
    PETA_EXTRA_ATTRIBUTES,
    RAPV1_ATTRIBUTES,
    RAPV2_ATTRIBUTES,
    caption_attribute_table,
    describe_labels,
    detect_label_set,
    label_names,
)
from plip.data.captions import (
    CAPTION_STYLES,
    IMPLIED_SLEEVES,
    Garment,
    Item,
    PersonDescription,
    attribute_fields,
    attribute_string,
    caption,
    caption_tokens,
    generate_captions,
    prompt_caption,
)
from plip.data.synthetic import sample_identities
from plip.errors import ConfigError, DataError

COLOUR_WORDS = {
    "black",
    "white",
    "grey",
    "red",
    "blue",
    "green",
    "yellow",
    "orange",
    "pink",
    "purple",
    "brown",
    "blonde",
    "multicoloured",
    "silver",
}


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+(?:-[a-z]+)*", text.lower())


def colours_in(text: str) -> set[str]:
    return COLOUR_WORDS & set(words(text))


# ------------------------------------------------------------------------------- prompts


def test_prompt_caption_matches_the_paper_template():
    """Hand-written expectation from the PLIP template and the issue's example."""
    desc = PersonDescription(
        gender="male",
        hair_colour="black",
        upper=Garment("shirt", "black"),
        lower=Garment("shorts", "pink"),
        shoes=Garment("shoes", "black"),
    )
    assert prompt_caption(desc) == (
        "A man with black hair is wearing a black shirt with pink shorts. He is also wearing a pair of black shoes."
    )
    desc = PersonDescription(gender="female", upper=Garment("t-shirt", "orange"), belongings=(Item("backpack", "red"),))
    assert prompt_caption(desc) == "A woman is wearing an orange t-shirt. She is also carrying a red backpack."


def test_attribute_fields_are_six_comma_free_phrases_with_unknown():
    """SYNTH-PEDES stores one comma-joined string of 6 fields; missing ones are "unknown"."""
    desc = PersonDescription(gender="female", upper=Garment("t-shirt", "red", "short", details=("logo",)))
    fields = attribute_fields(desc)
    assert fields == ("woman", "unknown", "red short-sleeved t-shirt with a logo", "unknown", "unknown", "unknown")
    assert attribute_string(desc).split(",") == list(fields)
    assert attribute_fields(PersonDescription()) == ("unknown",) * 6


def test_prompt_caption_contains_every_known_synthetic_attribute():
    """Each attribute of 300 sampled identities appears with its canonical word."""
    for ident in sample_identities(300, seed=5):
        desc = ident.description()
        text = prompt_caption(desc).lower()
        tokens = set(words(text))
        assert {"male": "man", "female": "woman"}[ident.gender] in tokens
        if ident.hair_length == "bald":
            assert "bald" in tokens
        else:
            assert f"{ident.hair_length} {ident.hair_colour} hair" in text
        if ident.cap_colour:
            assert f"{ident.cap_colour} cap" in text
        assert ident.upper_colour in tokens and ident.upper_kind in text
        if IMPLIED_SLEEVES.get(ident.upper_kind) != ident.sleeve:
            assert {"short": "short-sleeved", "long": "long-sleeved", "none": "sleeveless"}[ident.sleeve] in tokens
        assert ident.lower_colour in tokens and ident.lower_kind in text
        assert f"{ident.shoes_colour} shoes" in text
        if ident.bag_kind:
            assert f"{ident.bag_colour} {ident.bag_kind}" in text
        else:
            assert "carrying" not in tokens


# ------------------------------------------------------------------------------ captions


def test_every_caption_names_upper_and_lower_colours_in_every_style():
    """The issue's requirement, over 300 identities x all styles x 2 wordings."""
    rng = np.random.default_rng(0)
    for ident in sample_identities(300, seed=11):
        desc = ident.description()
        for style in CAPTION_STYLES:
            for _ in range(2):
                text = caption(desc, style, rng)
                found = colours_in(text)
                assert ident.upper_colour in found and ident.lower_colour in found, (style, text)
                # no colour is invented: every colour word belongs to some attribute
                allowed = {
                    ident.upper_colour,
                    ident.lower_colour,
                    ident.shoes_colour,
                    ident.hair_colour,
                    ident.cap_colour,
                    ident.bag_colour,
                }
                assert found <= allowed, (style, text)


def test_captions_of_one_identity_differ_in_wording_but_agree_in_content():
    """Several images' captions: more than one wording, the same garment colours."""
    ident = sample_identities(1, seed=3)[0]
    desc = ident.description()
    captions = [c for n in range(4) for c in generate_captions(desc, np.random.default_rng([3, 2, 1, n]), 3)]
    assert len(set(captions)) >= 8
    for text in captions:
        assert {ident.upper_colour, ident.lower_colour} <= colours_in(text)
    # the captions of one image use distinct styles, so they differ from each other
    one_image = generate_captions(desc, np.random.default_rng(0), 3)
    assert len(set(one_image)) == 3


def test_generate_captions_is_reproducible_for_a_seed():
    desc = sample_identities(1, seed=0)[0].description()
    a = generate_captions(desc, np.random.default_rng([1, 2]), 3)
    b = generate_captions(desc, np.random.default_rng([1, 2]), 3)
    c = generate_captions(desc, np.random.default_rng([1, 3]), 3)
    assert a == b and a != c
    with pytest.raises(ConfigError):
        generate_captions(desc, np.random.default_rng(0), 0)


def test_grammar_unknown_gender_and_articles():
    """Noun subjects take "is", "they" takes "are"; "an" before vowels."""
    desc = PersonDescription(age="elderly", upper=Garment("jacket", "orange"), belongings=(Item("umbrella"),))
    text = prompt_caption(desc)
    assert text.startswith("An elderly person is wearing an orange jacket.")
    assert "They are also carrying an umbrella." in text
    for style in CAPTION_STYLES:
        out = caption(desc, style, np.random.default_rng(1))
        assert " they is " not in out.lower() and " person are " not in out.lower(), out
        assert " a orange " not in out.lower() and " a elderly " not in out.lower(), out


def test_dress_is_named_once():
    desc = PersonDescription(gender="female", upper=Garment("dress", "red", "none"), lower=Garment("dress", "red"))
    assert prompt_caption(desc) == "A woman is wearing a red sleeveless dress."
    for style in CAPTION_STYLES:
        assert caption(desc, style, np.random.default_rng(2)).lower().count("dress") == 1


def test_caption_tokens_like_cuhk_processed_tokens():
    assert caption_tokens("A man's red T-shirt, and jeans.") == ["a", "man's", "red", "t-shirt", "and", "jeans"]


def test_invalid_description_values_are_rejected():
    with pytest.raises(ConfigError, match="gender"):
        PersonDescription(gender="robot")
    with pytest.raises(ConfigError, match="sleeve"):
        Garment(sleeve="half")


# ------------------------------------------------------------------------- label sets


def test_label_sets_have_the_standard_sizes():
    """PA-100K 26, RAP v1 51, RAP v2 54, PETA 35 (105 with the extra labels)."""
    assert len(PA100K_ATTRIBUTES) == len(set(PA100K_ATTRIBUTES)) == 26
    assert len(RAPV1_ATTRIBUTES) == len(set(RAPV1_ATTRIBUTES)) == 51
    assert len(RAPV2_ATTRIBUTES) == len(set(RAPV2_ATTRIBUTES)) == 54
    assert len(PETA_ATTRIBUTES) == len(set(PETA_ATTRIBUTES)) == 35
    assert len(set(PETA_ATTRIBUTES + PETA_EXTRA_ATTRIBUTES)) == 105


@pytest.mark.parametrize("label_set", LABEL_SETS)
def test_every_label_alone_gives_a_sensible_description(label_set):
    """Each label flagged on its own is understood (no 'unknown' note) and yields text."""
    for name in label_names(label_set, extended=True):
        desc, notes = describe_labels({name: 1}, label_set)
        assert notes == [], (name, notes)
        text = prompt_caption(desc)
        assert text.endswith(".") and "  " not in text and "None" not in text, (name, text)


def test_binary_labels_speak_when_zero():
    """PA-100K Female=0 means male; PETA hairLong=0 means short hair."""
    desc, _ = describe_labels({"Female": 0}, "pa100k")
    assert desc.gender == "male"
    desc, _ = describe_labels({"hairLong": 0, "personalMale": 1}, "peta")
    assert (desc.hair_length, desc.gender) == ("short", "male")
    # a positive flag beats the weaker claim of a zero
    desc, notes = describe_labels({"hs-LongHair": 0, "hs-BaldHead": 1}, "rapv2")
    assert desc.hair_length == "bald" and notes == []


def test_contradictions_are_skipped_with_a_note():
    """Male and female, two exclusive upper colours, trousers and shorts: left out."""
    labels = {
        "personalMale": 1,
        "personalFemale": 1,
        "upperBodyBlack": 1,
        "upperBodyRed": 1,
        "lowerBodyBlue": 1,
        "lowerBodyTrousers": 1,
        "lowerBodyShorts": 1,
    }
    desc, notes = describe_labels(labels, "peta")
    assert desc.gender is None and desc.upper.colour is None and desc.lower.kind is None
    assert desc.lower.colour == "blue"
    joined = " | ".join(notes)
    assert "personalMale=1" in joined and "personalFemale=1" in joined
    assert "upperBodyBlack=1" in joined and "upperBodyRed=1" in joined
    assert "lowerBodyTrousers=1" in joined
    for style in CAPTION_STYLES:
        text = caption(desc, style, np.random.default_rng(0)).lower()
        assert not {"black", "red", "man", "woman", "shorts", "trousers"} & set(words(text)), text
    text = prompt_caption(desc).lower()
    assert "blue" in text and "black" not in text and "red" not in text


def test_sleeve_contradiction_and_nothing_with_items():
    desc, notes = describe_labels({"ShortSleeve": 1, "LongSleeve": 1, "Backpack": 1}, "pa100k")
    assert desc.upper.sleeve is None and any("ShortSleeve=1" in n for n in notes)
    desc, notes = describe_labels({"carryingNothing": 1, "carryingBackpack": 1}, "peta")
    assert [i.kind for i in desc.belongings] == ["backpack"]
    assert any("carryingNothing" in n for n in notes)


def test_refinements_and_layers_are_not_contradictions():
    """Jeans are trousers (no note); a jacket over a t-shirt describes the jacket."""
    desc, notes = describe_labels({"lb-LongTrousers": 1, "lb-Jeans": 1}, "rapv2")
    assert desc.lower.kind == "jeans" and notes == []
    desc, notes = describe_labels({"ub-TShirt": 1, "ub-Jacket": 1}, "rapv2")
    assert desc.upper.kind == "jacket" and len(notes) == 1 and "outermost" in notes[0]


def test_rap_dress_covers_the_upper_body():
    """RAPv2 spells its gender label "Femal" in the released annotation."""
    desc, _ = describe_labels({"Femal": 1, "lb-Dress": 1, "lb-ColorRed": 1}, "rapv2")
    assert describe_labels({"Female": 1, "lb-Dress": 1, "lb-ColorRed": 1}, "rapv2")[0] == desc  # common respelling
    assert prompt_caption(desc) == "A woman is wearing a red dress."


def test_unknown_labels_and_bad_values():
    desc, notes = describe_labels({"Female": 1, "Wings": 1}, "pa100k")
    assert desc.gender == "female" and notes == ["unknown attribute 'Wings' for pa100k: skipped"]
    # a RAP v2 name is not silently understood as RAP v1
    _, notes = describe_labels({"attachment-Backpack": 1}, "rapv1")
    assert len(notes) == 1
    with pytest.raises(DataError, match="'Female'.*2"):
        describe_labels({"Female": 2}, "pa100k")
    with pytest.raises(DataError, match="label set"):
        describe_labels({}, "market1501")


def test_detect_label_set():
    assert detect_label_set(list(PA100K_ATTRIBUTES)) == "pa100k"
    assert detect_label_set(list(RAPV1_ATTRIBUTES)) == "rapv1"
    assert detect_label_set(list(RAPV2_ATTRIBUTES)) == "rapv2"
    assert detect_label_set(list(PETA_ATTRIBUTES)) == "peta"
    with pytest.raises(DataError):
        detect_label_set(["x", "y"])


# ------------------------------------------------------------------------------- tables


def write_csv(path, header, rows):
    path.write_text("\n".join(",".join(map(str, r)) for r in [header] + rows) + "\n")
    return path


def test_caption_attribute_table(tmp_path):
    header = [
        "image",
        "Female",
        "AgeOver60",
        "Age18-60",
        "AgeLess18",
        "ShortSleeve",
        "LongSleeve",
        "Trousers",
        "Shorts",
        "Backpack",
        "Colourful",
    ]
    rows = [["a.jpg", 1, 0, 1, 0, 1, 0, 0, 1, 1, 1], ["b.jpg", 0, 1, 0, 0, 1, 1, 1, 0, "", 0]]
    path = write_csv(tmp_path / "pa.csv", header, rows)
    entries, file_notes = caption_attribute_table(path, "auto", captions_per_image=3)
    assert file_notes == ["column 'Colourful' is not a pa100k attribute: ignored"]
    assert [e.file_path for e in entries] == ["a.jpg", "b.jpg"]
    assert entries[0].attributes == ["woman,unknown,short-sleeved top,shorts,unknown,backpack"]
    assert entries[0].notes == [] and len(entries[0].captions) == 3
    assert entries[1].prompt_caption == "An elderly man is wearing trousers."
    assert entries[1].notes and "ShortSleeve=1" in entries[1].notes[0]
    again, _ = caption_attribute_table(path, "pa100k", captions_per_image=3)
    assert [e.to_json() for e in again] == [e.to_json() for e in entries]


def test_caption_attribute_table_errors_name_the_place(tmp_path):
    path = write_csv(tmp_path / "bad.csv", ["image", "Female"], [["a.jpg", 1], ["b.jpg", "maybe"]])
    with pytest.raises(DataError, match=r"line 3, column 'Female'.*'maybe'"):
        caption_attribute_table(path, "pa100k")
    path = write_csv(tmp_path / "noimg.csv", ["file", "Female"], [["a.jpg", 1]])
    with pytest.raises(DataError, match="no image column 'image'"):
        caption_attribute_table(path, "pa100k")
    with pytest.raises(DataError, match="cannot read"):
        caption_attribute_table(tmp_path / "missing.csv", "pa100k")


def test_caption_cli(tmp_path, capsys):
    path = write_csv(
        tmp_path / "rap.csv", ["image", "Female", "hs-LongHair", "ub-TShirt", "lb-Jeans"], [["x.png", 1, 1, 1, 1]]
    )
    out = tmp_path / "out" / "captions.json"
    assert main(["caption", "--attributes", str(path), "--format", "rapv2", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data[0]["file_path"] == "x.png"
    assert data[0]["prompt_caption"] == "A woman with long hair is wearing a t-shirt with jeans."
    assert len(data[0]["captions"]) == 2
    bad = write_csv(tmp_path / "bad.csv", ["image", "Female"], [["x.png", 3]])
    assert main(["caption", "--attributes", str(bad), "--format", "pa100k", "--out", str(out)]) == 2
    assert "line 2" in capsys.readouterr().err
    assert main(["caption", "--attributes", str(bad), "--out", str(out)]) == 2  # one column: set unclear
    assert "pass the format explicitly" in capsys.readouterr().err
