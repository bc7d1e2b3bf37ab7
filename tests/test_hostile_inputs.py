"""Hostile inputs (issue #18): each case a hostile tester found, with the behaviour it must have.

Oracles: the model the files were written from (outputs compared with ``torch.testing``),
PIL's own reading of the image header, :func:`urllib.parse.unquote` for HTML links, the
tokenizer's vocabulary, and the file system (what exists before and after a command).
The dataset-path cases of the issue live with the dataset readers' tests.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import runpy
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
import torch
from PIL import Image

import plip
from plip.app.cli.main import SUBCOMMANDS, main
from plip.errors import CheckpointError, ConfigError, ImageLoadError, ModelNotFoundError, PlipError
from plip.inference.embedding_files import load_embeddings
from plip.models import PLIPConfig

REPO = Path(__file__).resolve().parents[1]


def _images(folder: Path, count: int = 3) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"p{i}.png"
        Image.fromarray(rng.integers(0, 256, (64, 32, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory) -> Path:
    """A 20000 x 20000 PNG (400 M pixels; 1-bit, so cheap to write), as in the issue."""
    path = tmp_path_factory.mktemp("huge") / "huge.png"
    Image.new("1", (20000, 20000)).save(path)
    return path


def _one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


# --------------------------------------------------------------------------- 2: huge images


def test_huge_image_is_skipped_and_counted_and_the_rest_is_written(tiny_folder, huge_png, tmp_path, capsys):
    folder = tmp_path / "imgs"
    _images(folder)
    os.symlink(huge_png, folder / "huge.png")
    out = tmp_path / "g.safetensors"
    args = ["encode", "-m", str(tiny_folder), "-i", str(folder), "-o", str(out), "--workers", "0", "--no-progress"]
    assert main(args) == 2
    assert "huge.png" in _one_line(capsys.readouterr().err) and not out.exists()
    assert main(args + ["--skip-bad"]) == 0
    err = capsys.readouterr().err
    assert "skipped 1 unreadable image(s) of 4" in err and "huge.png" in err and "400000000 pixels" in err
    assert load_embeddings(out).ids == ["p0.png", "p1.png", "p2.png"]


def test_search_by_a_huge_image_prints_one_line(tiny_folder, huge_png, tmp_path, capsys):
    folder = tmp_path / "imgs"
    _images(folder)
    out = tmp_path / "g.safetensors"
    assert main(["encode", "-m", str(tiny_folder), "-i", str(folder), "-o", str(out), "--workers", "0",
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["search", "-m", str(tiny_folder), "-g", str(out), "--image", str(huge_png)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "refused to decode" in line and str(huge_png) in line


def test_max_pixels_refuses_from_the_header_before_decoding(tiny_folder, tmp_path, capsys):
    """The limit compares with the size PIL reads from the header (64 x 32 = 2048 pixels)."""
    paths = _images(tmp_path / "imgs", 2)
    with Image.open(paths[0]) as handle:
        assert handle.size[0] * handle.size[1] == 2048
    out = tmp_path / "g.safetensors"
    base = ["encode", "-m", str(tiny_folder), "-i", str(tmp_path / "imgs"), "-o", str(out), "--workers", "0",
            "--no-progress", "--skip-bad"]
    assert main(base + ["--max-pixels", "2047"]) == 2  # every image refused: nothing to write
    assert "exceeds the limit of 2047 pixels" in capsys.readouterr().err and not out.exists()
    assert main(base + ["--max-pixels", "2048"]) == 0 and len(load_embeddings(out).ids) == 2


# --------------------------------------------------------------------------- 3: demo output folder


def test_demo_never_deletes_files_it_did_not_write(tiny_model, tmp_path):
    from plip.app.demo import run_demo

    out = tmp_path / "demo"
    kwargs = dict(identities=2, images_per_id=1, num_queries=1, top_k=1, progress=False, log=lambda _: None)
    run_demo(tiny_model, out, **kwargs)
    mine = out / "notes.txt"
    mine.write_text("my notes")
    (out / "gallery" / "extra").mkdir()
    with pytest.raises(ConfigError, match=r"2 file\(s\) plip demo did not write \(gallery/extra, notes.txt\)"):
        run_demo(tiny_model, out, **kwargs)
    assert mine.read_text() == "my notes" and (out / "gallery" / "extra").is_dir()
    mine.unlink()
    (out / "gallery" / "extra").rmdir()
    run_demo(tiny_model, out, **kwargs)  # only its own files: replaced
    assert (out / "demo.html").is_file()


def test_demo_refuses_a_folder_from_an_older_demo_without_a_file_list(tiny_model, tmp_path):
    from plip.app.demo import MARKER, run_demo

    out = tmp_path / "old"
    out.mkdir()
    (out / MARKER).write_text("written by plip demo; a later run may replace this folder\n")
    (out / "photo.jpg").write_bytes(b"x")
    with pytest.raises(ConfigError, match="kept no list of its files"):
        run_demo(tiny_model, out, identities=2, images_per_id=1, num_queries=1, progress=False, log=lambda _: None)
    assert (out / "photo.jpg").read_bytes() == b"x"


# --------------------------------------------------------------------------- 4: config absent vs default


def test_a_missing_config_field_names_the_file_and_key(tiny_model, tmp_path):
    folder = tmp_path / "m"
    tiny_model.save_pretrained(folder)
    data = json.loads((folder / "config.json").read_text())
    del data["text"]["pooling"]
    (folder / "config.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=re.escape(f"{folder / 'config.json'}: missing field 'text.pooling'")):
        plip.load(folder)
    del data["text"]
    (folder / "config.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=re.escape(f"{folder / 'config.json'}: missing section 'text'")):
        plip.load(folder)


def test_fields_of_a_later_format_version_are_defaulted_with_a_warning(tiny_config, monkeypatch):
    """A field listed in FIELDS_ADDED may be absent from files written before its version only."""
    from plip.models import config as config_module

    monkeypatch.setattr(config_module, "FIELDS_ADDED", {"vision.last_stride": "0.2.0"})
    data = {"_plip_version": "0.1.0", **tiny_config.to_dict()}
    del data["vision"]["last_stride"]
    with pytest.warns(UserWarning, match=r"vision.last_stride \(added in 0.2.0\) = 2"):
        assert PLIPConfig.from_dict(data, "old.json") == tiny_config
    data["_plip_version"] = "0.2.0"
    with pytest.raises(ConfigError, match="new.json: missing field 'vision.last_stride'"):
        PLIPConfig.from_dict(data, "new.json")


# --------------------------------------------------------------------------- 4: convert needs evidence


@pytest.fixture(scope="module")
def unregistered_official(tmp_path_factory):
    """An official-layout checkpoint of an architecture no registry entry has (3 BERT layers,
    4 pool heads, 4 BERT heads, mean pooling), and the model it was written from."""
    base = PLIPConfig.tiny()
    config = dataclasses.replace(
        base, vision=dataclasses.replace(base.vision, heads=4),
        text=dataclasses.replace(base.text, num_hidden_layers=3, num_attention_heads=4, pooling="mean"),
    ).validate()
    torch.manual_seed(3)
    model = plip.create_model(config).eval()
    path = tmp_path_factory.mktemp("official") / "PLIP_OTHER.pth.tar"
    torch.save({"ImgEncoder_state_dict": model.visual.state_dict(), "TxtEncoder_state_dict": model.text.state_dict()},
               path)
    return path, model


def test_convert_asks_for_heads_and_pooling_it_cannot_see(unregistered_official, tmp_path, capsys):
    path, model = unregistered_official
    out = tmp_path / "converted"
    assert main(["convert", str(path), str(out)]) == 2
    line = _one_line(capsys.readouterr().err)
    for option in ("vision_heads", "text_heads", "pooling", "--vision-heads", "--pooling"):
        assert option in line
    assert not out.exists()
    assert main(["convert", str(path), str(out), "--vision-heads", "4", "--text-heads", "4", "--pooling", "mean"]) == 0
    converted = plip.load(out)
    captions = ["a man in a black shirt", "a woman with a red bag"]
    torch.testing.assert_close(converted.encode_text(captions), model.encode_text(captions), rtol=0, atol=1e-6)
    images = torch.randn(2, 3, 64, 32)
    torch.testing.assert_close(converted.encode_image(images), model.encode_image(images), rtol=0, atol=1e-5)


def test_load_of_an_unregistered_official_checkpoint_asks_too(unregistered_official):
    path, model = unregistered_official
    with pytest.raises(CheckpointError, match="shapes match no registered architecture"):
        plip.load(path)
    torch.testing.assert_close(plip.load(path, config=model.config).encode_text("a man"), model.encode_text("a man"))


# --------------------------------------------------------------------------- 5: gallery fingerprints


def test_search_refuses_a_gallery_of_another_model_of_the_same_width(tiny_folder, tiny_config, tmp_path, capsys):
    torch.manual_seed(7)
    other = tmp_path / "other"
    plip.create_model(tiny_config).save_pretrained(other)  # same width, other weights
    _images(tmp_path / "imgs")
    gallery = tmp_path / "g.safetensors"
    assert main(["encode", "-m", str(tiny_folder), "-i", str(tmp_path / "imgs"), "-o", str(gallery), "--workers", "0",
                 "--no-progress"]) == 0
    assert main(["search", "-m", str(tiny_folder), "-g", str(gallery), "a man"]) == 0
    capsys.readouterr()
    assert main(["search", "-m", str(other), "-g", str(gallery), "a man"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "was encoded by" in line and "--allow-model-mismatch" in line
    assert main(["search", "-m", str(other), "-g", str(gallery), "a man", "--allow-model-mismatch"]) == 0
    assert "searching anyway" in capsys.readouterr().err


# --------------------------------------------------------------------------- 6: unusable captions


@pytest.mark.parametrize("caption, reason", [
    ("", "is empty"), ("   \t\n", "is whitespace only"), ("\U00020000\U00020001", "has only unknown tokens"),
    ("\U0001f600 \U0001f680", "has only unknown tokens"),
])
def test_unusable_captions_are_an_error_naming_the_index(tiny_model, caption, reason):
    ids = tiny_model.tokenizer.encode([caption])[0]
    content = ids[1:-1]  # the tokenizer's own verdict: nothing but [UNK] between [CLS] and [SEP]
    assert all(t == tiny_model.tokenizer.unk_token_id for t in content)
    with pytest.raises(PlipError, match=f"caption at index 1 {reason}"):
        tiny_model.encode_text(["a man in a red coat", caption])
    with pytest.raises(PlipError, match=f"caption at index 0 {reason}"):
        tiny_model.retrieve(caption, gallery=torch.randn(3, tiny_model.embed_dim))


def test_a_caption_with_some_known_words_is_embedded(tiny_model):
    assert tiny_model.encode_text(["a man \U0001f600", "你好世界"]).shape == (2, tiny_model.embed_dim)  # 世 is known


# --------------------------------------------------------------------------- 7: non-finite weights and embeddings


def _poisoned_state(model) -> dict[str, torch.Tensor]:
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["visual.layer1.0.bn1.running_var"][0] = float("nan")
    return state


def test_nan_weights_are_refused_at_load_naming_the_tensor(tiny_model, tmp_path):
    from safetensors.torch import save_file

    folder = tmp_path / "nan"
    tiny_model.save_pretrained(folder)
    save_file(_poisoned_state(tiny_model), str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"'visual.layer1.0.bn1.running_var' holds 1 non-finite"):
        plip.load(folder)
    official = tmp_path / "nan.pth.tar"
    text = {k: v.clone() for k, v in tiny_model.text.state_dict().items()}
    text["encoder.pooler.dense.bias"][0] = float("inf")
    torch.save({"ImgEncoder_state_dict": tiny_model.visual.state_dict(), "TxtEncoder_state_dict": text}, official)
    with pytest.raises(CheckpointError, match=r"TxtEncoder_state_dict\]: tensor 'encoder.pooler.dense.bias'"):
        plip.load(official)


def test_nan_weights_give_an_error_not_scores_eager_and_traced(tiny_model):
    model = plip.create_model(tiny_model.config)
    model.load_state_dict(_poisoned_state(tiny_model))
    model.eval()
    images = torch.randn(2, 3, 64, 32)
    with pytest.raises(PlipError, match="embedding of image 0 is not finite"):
        model.encode_image(images)
    with pytest.raises(CheckpointError, match="running_var"):
        model.optimize_for_inference(image="trace")


def test_a_non_finite_input_tensor_is_named(tiny_model):
    images = torch.randn(3, 3, 64, 32)
    images[2, 0, 0, 0] = float("nan")
    with pytest.raises(PlipError, match=r"embedding of image 2 is not finite \(NaN or inf\), as are 0 other"):
        tiny_model.encode_image(images)


# --------------------------------------------------------------------------- 8: workers


def test_a_bad_image_with_workers_is_the_one_line_message(tiny_model, tmp_path):
    paths = _images(tmp_path / "imgs", 3)
    bad = tmp_path / "imgs" / "broken.jpg"
    bad.write_bytes(b"\x00not an image")
    with pytest.raises(ImageLoadError) as caught:
        tiny_model.encode_image(paths + [bad], num_workers=2, batch_size=2)
    message = str(caught.value)
    assert "\n" not in message and "broken.jpg" in message and "Traceback" not in message
    with pytest.raises(ImageLoadError) as single:
        tiny_model.encode_image(paths + [bad], num_workers=0, batch_size=2)
    assert str(single.value).split(":", 1)[1] == message.split(":", 1)[1]


# --------------------------------------------------------------------------- 9: names and folders


def test_a_local_folder_named_like_a_registry_entry_wins_with_a_note(tiny_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the Hub must not be asked
    tiny_model.save_pretrained(tmp_path / "plip-rn50")
    with pytest.warns(UserWarning, match="loading the local folder .*plip-rn50.*not the registered model"):
        model = plip.load("plip-rn50")
    images = torch.randn(2, 3, 64, 32)
    torch.testing.assert_close(model.encode_image(images), tiny_model.encode_image(images))


def test_offline_hint_names_hf_download_with_the_revision(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelNotFoundError) as caught:
        plip.load("hf-hub:some-org/some-model@v2", cache_dir=tmp_path / "cache")
    assert "`hf download some-org/some-model --revision v2`" in str(caught.value)
    assert "huggingface-cli" not in str(caught.value)


# --------------------------------------------------------------------------- 10: the smaller ones


def test_a_symlinked_image_folder_is_followed(tiny_folder, tmp_path, capsys):
    real = tmp_path / "real"
    _images(real / "part0", 2)
    tree = tmp_path / "tree"
    _images(tree, 1)
    os.symlink(real / "part0", tree / "imgs")  # the layout plip synth writes
    os.symlink(tree, tree / "imgs" / "loop")  # a cycle is walked once
    from plip.data.images import find_images

    root, rel = find_images([str(tree)])
    assert root == str(tree) and rel == ["imgs/p0.png", "imgs/p1.png", "p0.png"]
    out = tmp_path / "g.safetensors"
    assert main(["encode", "-m", str(tiny_folder), "-i", str(tree), "-o", str(out), "--workers", "0",
                 "--no-progress"]) == 0
    assert load_embeddings(out).ids == rel


def test_out_pointing_at_a_folder_fails_before_encoding(tiny_folder, tmp_path, capsys, monkeypatch):
    from plip.app.cli import common

    _images(tmp_path / "imgs")
    monkeypatch.setattr(common, "load_model_from_args", lambda args: pytest.fail("loaded the model first"))
    assert main(["encode", "-m", str(tiny_folder), "-i", str(tmp_path / "imgs"), "-o", str(tmp_path)]) == 2
    assert "is a folder; give a file name" in _one_line(capsys.readouterr().err)
    assert main(["encode", "-m", str(tiny_folder), "-i", str(tmp_path / "imgs"), "-o",
                 str(tmp_path / "missing" / "g.safetensors")]) == 2
    assert "does not exist" in capsys.readouterr().err


class _Sources(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


def test_a_hash_in_a_file_name_survives_in_the_html(tmp_path):
    from plip.app.visualize import QueryRow, RetrievedImage, relative_src, render_retrieval_html

    image = tmp_path / "imgs" / "cam#1 ?x%.png"
    _images(tmp_path / "imgs", 1)[0].rename(image)
    page = render_retrieval_html([QueryRow("q", [RetrievedImage(1, str(image), 0.5, "cam#1")])], title="t",
                                 image_src=relative_src(tmp_path / "html"))
    parser = _Sources()
    parser.feed(page)
    (src,) = parser.sources
    assert "#" not in src and "?" not in src
    assert (tmp_path / "html" / unquote(src)).resolve() == image.resolve()


def test_contact_sheet_labels_cannot_be_misread_and_it_has_a_legend(tmp_path, monkeypatch):
    from PIL import ImageDraw

    from plip.app import visualize

    drawn: list[str] = []
    original = ImageDraw.ImageDraw.text
    monkeypatch.setattr(ImageDraw.ImageDraw, "text",
                        lambda self, xy, text, *a, **k: (drawn.append(text), original(self, xy, text, *a, **k))[1])
    (path,) = _images(tmp_path, 1)
    rows = [visualize.QueryRow("a man", [visualize.RetrievedImage(1, str(path), 0.5, "50", True)])]
    visualize.contact_sheet(rows, title="t")
    assert "#1 0.50" in drawn and "50" in drawn and "#1 50" not in drawn
    assert visualize.LEGEND in drawn and "green" in visualize.LEGEND and "score" in visualize.LEGEND


def test_quickstart_defaults_to_the_embedded_model(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["quickstart.py"])
    runpy.run_path(str(REPO / "examples" / "quickstart.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "model: plip-tiny-synth, embedding size 64" in out and "random" not in out


def test_evaluating_the_embedded_model_on_its_training_seed_warns(tmp_path, capsys):
    from plip.data.synthetic import generate_dataset

    for seed in (1, 2):
        generate_dataset(tmp_path / f"seed{seed}", identities=4, images_per_id=1, seed=seed, progress=False,
                         split=(0.5, 0.0, 0.5), workers=0)
    card = json.loads((REPO / "plip/assets/models/plip-tiny-synth/training_data.json").read_text())
    assert card["seed"] == 1 and "--seed 1" in (REPO / "plip/assets/models/plip-tiny-synth/README.md").read_text()
    base = ["eval", "-m", "plip-tiny-synth", "-d", "cuhk-pedes", "--split", "test", "--workers", "0", "--no-progress"]
    assert main(base + ["--root", str(tmp_path / "seed1")]) == 0
    assert re.search(r"warning: 2 of the 2 persons of this split were in plip-tiny-synth's training",
                     capsys.readouterr().err)
    assert main(base + ["--root", str(tmp_path / "seed2")]) == 0
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("command", [c for c in ("",) + SUBCOMMANDS if c != "train"])
def test_help_imports_no_torch(command):
    """``python -X importtime`` lists every module imported; torch must not be among them.
    (``plip train --help`` still does: its options come from plip.training, which imports torch.)"""
    argv = [sys.executable, "-X", "importtime", "-m", "plip.app.cli.main"] + ([command] if command else []) + ["--help"]
    result = subprocess.run(argv, capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "plip.app.cli.main" in imported or "plip.app.cli" in imported
    assert not {name for name in imported if name == "torch" or name.startswith("torch.")}


def test_the_official_rn50_shapes_are_evidence_for_its_heads_and_pooling():
    """Oracle: the key/shape list of the released PLIP_RN50.pth.tar (tests/data); its shapes
    equal the registered ``rn50`` architecture's, whose 8 pool heads, 12 BERT heads and pooler
    output are the release's (PLIP_FACTS)."""
    from plip.hub.official import infer_config

    entries: dict[str, dict[str, torch.Tensor]] = {"ImgEncoder_state_dict": {}, "TxtEncoder_state_dict": {}}
    for line in (REPO / "tests/data/official_checkpoint_keys.tsv").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        entry, key, shape = line.split("\t")
        entries[entry][key] = torch.empty(ast.literal_eval(shape), device="meta")
    config = infer_config(entries["ImgEncoder_state_dict"], entries["TxtEncoder_state_dict"], "PLIP_RN50.pth.tar")
    assert config == PLIPConfig.rn50()
    assert (config.vision.heads, config.text.num_attention_heads, config.text.pooling) == (8, 12, "pooler")
