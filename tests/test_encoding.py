"""Inference API: preprocessing, tokenisation, batching, order, odd inputs.

References: torchvision's ``Resize(bicubic) + ToTensor + Normalize`` on a PIL image (the
official preprocessing); per-item encoding (batching and padding must not change results).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from plip.errors import ImageLoadError, PlipError


def test_preprocess_equals_the_official_torchvision_pipeline(tiny_model, person_images):
    from torchvision import transforms as T

    cfg = tiny_model.config.preprocess
    official = T.Compose([
        T.Resize(cfg.image_size, interpolation=T.InterpolationMode.BICUBIC),
        T.ToTensor(),
        T.Normalize(cfg.mean, cfg.std),
    ])
    for path in person_images:
        image = Image.open(path).convert("RGB")
        torch.testing.assert_close(tiny_model.preprocess(path), official(image), rtol=0, atol=1e-6)


def test_image_order_and_batching(tiny_model, person_images):
    single = torch.cat([tiny_model.encode_image([p]) for p in person_images])
    batched = tiny_model.encode_image(person_images, batch_size=3)
    reversed_ = tiny_model.encode_image(person_images[::-1], batch_size=2)
    torch.testing.assert_close(batched, single, rtol=0, atol=1e-5)
    torch.testing.assert_close(reversed_.flip(0), single, rtol=0, atol=1e-5)
    assert batched.dtype == torch.float32 and batched.shape == (4, 32)
    torch.testing.assert_close(batched.norm(dim=1), torch.ones(4))


def test_workers_give_the_same_result(tiny_model, person_images):
    torch.testing.assert_close(
        tiny_model.encode_image(person_images, num_workers=2, batch_size=2),
        tiny_model.encode_image(person_images), rtol=0, atol=1e-6,
    )


def test_mixed_image_inputs(tiny_model):
    rgb = np.random.default_rng(0).integers(0, 256, (100, 50, 3), dtype=np.uint8)
    inputs = [
        Image.fromarray(rgb), Image.fromarray(rgb).convert("L"), Image.fromarray(rgb).convert("RGBA"),
        Image.fromarray(rgb).convert("P"), Image.fromarray(rgb).convert("CMYK"), rgb, rgb[:, :, 0],
        np.zeros((1, 1, 3), dtype=np.uint8),
    ]
    emb = tiny_model.encode_image(inputs)
    assert emb.shape == (len(inputs), 32) and torch.isfinite(emb).all()
    # An array and the PIL image made from it are the same input.
    torch.testing.assert_close(emb[0], emb[5])


def test_preprocessed_tensor_input(tiny_model, person_images):
    tensor = torch.stack([tiny_model.preprocess(p) for p in person_images])
    torch.testing.assert_close(tiny_model.encode_image(tensor), tiny_model.encode_image(person_images), rtol=0, atol=1e-5)
    with pytest.raises(PlipError, match=r"must be \(N, 3, 64, 32\)"):
        tiny_model.encode_image(torch.zeros(2, 3, 10, 10))


def test_non_image_file_is_named(tiny_model, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("this is not an image")
    with pytest.raises(ImageLoadError, match="notes.jpg"):
        tiny_model.encode_image([bad])
    with pytest.raises(ImageLoadError, match="file not found"):
        tiny_model.encode_image([tmp_path / "absent.png"])
    with pytest.raises(ImageLoadError, match="dtype float64"):
        tiny_model.encode_image([np.zeros((4, 4, 3))])


def test_empty_inputs(tiny_model):
    assert tiny_model.encode_image([]).shape == (0, 32)
    assert tiny_model.encode_text([]).shape == (0, 32)
    with pytest.raises(PlipError, match="caption at index 0 is empty"):  # issue 18: nothing to embed
        tiny_model.encode_text([""])


def test_text_padding_and_length_sorting_do_not_change_results(tiny_model):
    captions = [
        "a man", "a woman in a long red coat carrying a black leather handbag and wearing white shoes",
        "bag", "a child", "a man with short black hair, black shirt, pink shorts",
    ]
    one_by_one = torch.cat([tiny_model.encode_text([c]) for c in captions])
    together = tiny_model.encode_text(captions, batch_size=2)
    torch.testing.assert_close(together, one_by_one, rtol=0, atol=1e-5)


def test_tokenizer_matches_bert_base_uncased_ids(tiny_model):
    """Reference ids: bert-base-uncased ([CLS]=101, a=1037, man=2158, in=1999, black=2304,
    shirt=3797, [SEP]=102); a word outside the vocabulary splits into WordPiece pieces
    whose ids are their line numbers in the vocabulary file."""
    from plip.tokenizer import default_vocab_file, read_vocab

    vocab = read_vocab(default_vocab_file())
    ids = tiny_model.tokenizer.encode(["A man in a BLACK shirt", "handbags"])
    assert ids[0] == [101, 1037, 2158, 1999, 1037, 2304, 3797, 102]
    assert ids[1] == [101, vocab["hand"], vocab["##bags"], 102]
    assert tiny_model.tokenizer.decode(ids[0]) == "a man in a black shirt"


def test_tokenizer_pads_to_longest_and_lowercases(tiny_model):
    batch = tiny_model.tokenizer(["A MAN", "a man in black"])
    assert batch["input_ids"].shape == (2, 6)
    assert batch["input_ids"][0].tolist()[:4] == batch["input_ids"][1].tolist()[:3] + [102]
    assert batch["attention_mask"].sum(1).tolist() == [4, 6]


def test_long_caption_is_truncated_with_one_warning(tiny_model):
    from plip.tokenizer import PLIPTokenizer

    tokenizer = PLIPTokenizer(max_length=64)
    long_caption = " ".join(["person"] * 500)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ids = tokenizer.encode([long_caption, long_caption])
        tokenizer.encode([long_caption])
    assert [len(x) for x in ids] == [64, 64] and ids[0][-1] == tokenizer.sep_token_id
    assert sum("truncated" in str(w.message) for w in caught) == 1


def test_non_string_caption_is_named(tiny_model):
    with pytest.raises(PlipError, match="text at index 1 is a int"):
        tiny_model.encode_text(["a man", 3])


def test_retrieve_with_text_and_images(tiny_model, person_images):
    gallery = tiny_model.encode_image(person_images)
    hits = tiny_model.retrieve("a man in a black shirt", gallery=gallery, top_k=3)
    assert hits.indices.shape == (3,) and hits.scores.shape == (3,)
    assert (hits.scores[:-1] >= hits.scores[1:]).all()
    by_image = tiny_model.retrieve([person_images[2]], gallery=gallery, top_k=4)
    query = tiny_model.encode_image([person_images[2]])
    expected = torch.sort(query @ gallery.T, dim=1, descending=True, stable=True).indices
    assert by_image.indices.tolist() == expected.tolist()
