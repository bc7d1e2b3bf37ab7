"""Attribute-phrase masking (IAP) and the masking-ratio schedule.

References: the PLIP paper's schedule 0.2 + 0.6·sqrt(e/E) (and its linear / square /
constant ablations); BERT WordPiece conventions (``##`` continues a word; [CLS], [SEP],
[PAD] are special). Expected positions below are read off the tokenised captions by hand.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import pytest
import torch
from transformers import BertTokenizerFast

from plip.errors import ConfigError, DataError
from plip.training.masking import (
    AttributeLexicon,
    AttributeMasker,
    mask_attribute_tokens,
    mask_ratio_schedule,
)

VOCAB = Path(__file__).resolve().parents[1] / "plip" / "assets" / "bert-base-uncased-vocab.txt"


@pytest.fixture(scope="module")
def tokenizer():
    # transformers >= 5 names the argument `vocab` and silently ignores `vocab_file` (the
    # 4.x name), and vice versa: try both and keep the one that loaded the real vocabulary.
    for argument in ("vocab", "vocab_file"):
        tok = BertTokenizerFast(**{argument: str(VOCAB)}, do_lower_case=True)
        if tok.convert_tokens_to_ids("[MASK]") == 103:
            return tok
    raise AssertionError(f"could not build a WordPiece tokenizer from {VOCAB}")


@pytest.fixture(scope="module")
def masker(tokenizer):
    return AttributeMasker(tokenizer)


def encode(tokenizer, captions):
    return tokenizer(captions, padding=True, truncation=True, max_length=64, return_tensors="pt")


CAPTION = "A man in a black T-shirt and pinkish shorts walks."
# [CLS] a man in a black t - shirt and pink ##ish shorts walks . [SEP]
#   0   1  2   3  4   5   6 7   8    9   10   11    12     13  14  15
CAPTION_UNITS = [[2], [5], [6, 7, 8], [10, 11], [12]]


def test_tokenisation_assumed_by_the_tests(tokenizer):
    tokens = tokenizer.convert_ids_to_tokens(encode(tokenizer, [CAPTION])["input_ids"][0])
    assert tokens == ["[CLS]", "a", "man", "in", "a", "black", "t", "-", "shirt", "and",
                      "pink", "##ish", "shorts", "walks", ".", "[SEP]"]


def test_attribute_units_are_whole_words_and_multiword_phrases(masker, tokenizer):
    ids = encode(tokenizer, [CAPTION])["input_ids"][0].tolist()
    assert masker.attribute_units(ids) == CAPTION_UNITS


def test_full_ratio_masks_exactly_the_attribute_tokens(masker, tokenizer):
    batch = encode(tokenizer, [CAPTION])
    masked, target = masker(batch["input_ids"], batch["attention_mask"], 1.0)
    expected = torch.zeros_like(target)
    expected[0, [p for unit in CAPTION_UNITS for p in unit]] = True
    assert torch.equal(target, expected)
    assert torch.equal(masked[target], torch.full((int(expected.sum()),), tokenizer.mask_token_id))
    assert torch.equal(masked[~target], batch["input_ids"][~target])  # nothing else changed


@pytest.mark.parametrize("ratio, units", [(0.2, 1), (0.4, 2), (0.5, 3), (0.8, 4), (0.05, 1)])
def test_ratio_counts_whole_phrases(masker, tokenizer, ratio, units):
    """5 phrases: round(ratio * 5) of them (at least one), each masked with all its pieces."""
    batch = encode(tokenizer, [CAPTION])
    for seed in range(5):
        _, target = masker(batch["input_ids"], batch["attention_mask"], ratio, torch.Generator().manual_seed(seed))
        hit = [unit for unit in CAPTION_UNITS if target[0, unit].any()]
        assert len(hit) == units
        assert all(target[0, unit].all() for unit in hit)  # never a partial word or phrase
        assert int(target.sum()) == sum(len(u) for u in hit)  # nothing outside the phrases


def test_specials_and_padding_are_never_masked(masker, tokenizer):
    batch = encode(tokenizer, ["red bag", CAPTION, "a person walking on the street"])
    ids, attention = batch["input_ids"], batch["attention_mask"]
    special = (ids == tokenizer.cls_token_id) | (ids == tokenizer.sep_token_id) | (ids == tokenizer.pad_token_id)
    assert (attention == 0).any()  # the batch is padded
    for seed in range(10):
        _, target = masker(ids, attention, 1.0, torch.Generator().manual_seed(seed))
        assert not (target & special).any()
        assert not (target & (attention == 0)).any()
        assert target.any(dim=1).all()  # every caption contributes


def test_caption_without_attributes_falls_back_to_random_words(masker, tokenizer):
    caption = "a person walking on the street, slowly."
    batch = encode(tokenizer, [caption])
    ids = batch["input_ids"][0].tolist()
    assert masker.attribute_units(ids) == []
    punctuation = {tokenizer.convert_tokens_to_ids(","), tokenizer.convert_tokens_to_ids(".")}
    _, target = masker(batch["input_ids"], batch["attention_mask"], 0.2)
    masked_ids = [ids[p] for p in target[0].nonzero().flatten().tolist()]
    # 7 content words -> round(0.2 * 7) = 1 word; never punctuation or specials
    assert len(masked_ids) == 1 and not set(masked_ids) & (punctuation | set(tokenizer.all_special_ids))


def test_zero_ratio_masks_nothing_and_bad_ratio_is_rejected(masker, tokenizer):
    batch = encode(tokenizer, [CAPTION])
    masked, target = masker(batch["input_ids"], batch["attention_mask"], 0.0)
    assert not target.any() and torch.equal(masked, batch["input_ids"])
    with pytest.raises(ConfigError, match="ratio"):
        masker(batch["input_ids"], batch["attention_mask"], 1.5)


def test_generator_makes_masks_reproducible_and_input_untouched(tokenizer):
    batch = encode(tokenizer, [CAPTION] * 4)
    before = batch["input_ids"].clone()
    a = mask_attribute_tokens(batch["input_ids"], batch["attention_mask"], tokenizer, 0.4, torch.Generator().manual_seed(3))
    b = mask_attribute_tokens(batch["input_ids"], batch["attention_mask"], tokenizer, 0.4, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert torch.equal(batch["input_ids"], before)
    # different rows draw different phrases at some point over the batch
    assert len({tuple(row.tolist()) for row in a[1]}) > 1


def test_custom_lexicon_and_categories(tokenizer):
    batch = encode(tokenizer, [CAPTION])
    colours = AttributeLexicon.default(categories=["colour"])
    _, target = mask_attribute_tokens(batch["input_ids"], batch["attention_mask"], tokenizer, 1.0, lexicon=colours)
    assert target[0].nonzero().flatten().tolist() == [5, 10, 11]  # black, pink ##ish
    lexicon = AttributeLexicon.from_phrases(["walks"])
    _, target = mask_attribute_tokens(batch["input_ids"], batch["attention_mask"], tokenizer, 1.0, lexicon=lexicon)
    assert target[0].nonzero().flatten().tolist() == [13]
    with pytest.raises(ConfigError, match="unknown attribute categories"):
        AttributeLexicon.default(categories=["colour", "nonsense"])


def test_shipped_lexicon_covers_the_attribute_groups():
    lexicon = AttributeLexicon.default()
    for category in ("colour", "upper_body", "lower_body", "shoes", "belongings", "accessory", "head_hair"):
        assert lexicon.categories[category], category
    for word in ("black", "jacket", "jeans", "sneakers", "backpack", "hat", "ponytail", "t-shirt"):
        assert word in lexicon.phrases


def test_lexicon_file_errors_name_the_line(tmp_path):
    bad = tmp_path / "lex.txt"
    bad.write_text("red\n[colour]\nblue\n")
    with pytest.raises(DataError, match=r"lex.txt:1"):
        AttributeLexicon.from_file(str(bad))
    with pytest.raises(DataError, match="cannot read"):
        AttributeLexicon.from_file(str(tmp_path / "missing.txt"))


def test_masker_pickles_for_dataloader_workers(masker, tokenizer):
    clone = pickle.loads(pickle.dumps(masker))
    ids = encode(tokenizer, [CAPTION])["input_ids"][0].tolist()
    assert clone.attribute_units(ids) == CAPTION_UNITS


@pytest.mark.parametrize("kind, quarter", [
    ("sqrt", 0.2 + 0.6 * 0.5), ("linear", 0.2 + 0.6 * 0.25), ("square", 0.2 + 0.6 * 0.0625), ("constant", 0.2),
])
def test_mask_ratio_schedule_values(kind, quarter):
    """Paper: 0.2 + 0.6·f(e/E); sqrt gives 0.2, 0.5, 0.8 at e = 0, E/4, E."""
    epochs = 70
    assert mask_ratio_schedule(0, epochs, kind=kind) == pytest.approx(0.2)
    assert mask_ratio_schedule(epochs / 4, epochs, kind=kind) == pytest.approx(quarter)
    end = 0.2 if kind == "constant" else 0.8
    assert mask_ratio_schedule(epochs, epochs, kind=kind) == pytest.approx(end)
    assert mask_ratio_schedule(2 * epochs, epochs, kind=kind) == pytest.approx(end)  # clipped


def test_mask_ratio_schedule_default_is_paper_sqrt_and_validates():
    assert mask_ratio_schedule(17.5, 70) == pytest.approx(0.5)
    assert mask_ratio_schedule(35, 70) == pytest.approx(0.2 + 0.6 * math.sqrt(0.5))
    with pytest.raises(ConfigError, match="kind"):
        mask_ratio_schedule(1, 10, kind="cubic")
    with pytest.raises(ConfigError, match="epochs"):
        mask_ratio_schedule(1, 0)
