"""The ``plip`` command end to end on a tiny model: models, convert, encode, search."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import plip
from plip.app.cli.main import main
from plip.inference.embedding_files import load_embeddings


def test_models_lists_the_architectures(capsys):
    """`plip models --architectures --json` is plip.models.ARCHITECTURES (names, sizes, tower)."""
    from plip.models import ARCHITECTURES

    assert main(["models", "--architectures", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(ARCHITECTURES)
    assert rows["swin-b"]["tower"] == "swin_base_patch4_window7_224" and rows["rn50"]["tower"] == "Modified ResNet"
    assert rows["swin-b"]["input"] == [256, 128] and rows["swin-b"]["dim"] == 768


def test_models_lists_the_registry(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "plip-rn50" in out and "hf-hub:plip-person/plip-rn50" in out


def test_convert_official_checkpoint(tiny_official_checkpoint, tiny_model, tmp_path, capsys):
    out = tmp_path / "converted"
    assert main(["convert", str(tiny_official_checkpoint), str(out)]) == 0
    model = plip.load(out)
    for key, value in tiny_model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)
    assert "Converted unchanged" in (out / "README.md").read_text()
    assert main(["convert", str(tiny_official_checkpoint), str(out)]) == 2
    assert "--force" in capsys.readouterr().err


def test_encode_then_search_with_html(tiny_folder, person_images, tmp_path, capsys):
    gallery_dir = person_images[0].parent
    out = tmp_path / "gallery.safetensors"
    assert main(["encode", "--model", str(tiny_folder), "--images", str(gallery_dir), "--out", str(out),
                 "--workers", "0", "--no-progress"]) == 0
    gallery = load_embeddings(out)
    assert sorted(gallery.ids) == sorted(p.name for p in person_images)
    expected = plip.load(tiny_folder).encode_image([gallery.path_of(i) for i in range(len(gallery.ids))])
    torch.testing.assert_close(gallery.embeddings, expected, rtol=0, atol=1e-5)

    html_path, json_path = tmp_path / "hits.html", tmp_path / "hits.json"
    assert main(["search", "--model", str(tiny_folder), "--gallery", str(out), "a woman in a red coat",
                 "--top-k", "3", "--html", str(html_path), "--json", str(json_path)]) == 0
    hits = json.loads(json_path.read_text())[0]["hits"]
    assert [h["rank"] for h in hits] == [1, 2, 3]
    page = html_path.read_text()
    assert page.count("<img ") == 3 and all(h["id"] in page for h in hits)
    import re

    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == 3 and all((html_path.parent / src).resolve().is_file() for src in sources)


def test_encode_optimize_modes(tiny_folder, person_images, tmp_path, capsys):
    """--optimize auto (the default, a frozen image graph) and none give the same gallery;
    an explicit mode on a bfloat16 model is a one-line error naming the dtype."""
    gallery_dir = person_images[0].parent
    files = {}
    for mode in ("auto", "none"):
        files[mode] = tmp_path / f"{mode}.safetensors"
        assert main(["encode", "--model", str(tiny_folder), "--images", str(gallery_dir), "--out", str(files[mode]),
                     "--workers", "0", "--no-progress", "--optimize", mode]) == 0
    torch.testing.assert_close(load_embeddings(files["auto"]).embeddings, load_embeddings(files["none"]).embeddings,
                               rtol=0, atol=1e-5)
    capsys.readouterr()
    assert main(["encode", "--model", str(tiny_folder), "--images", str(gallery_dir), "--out", str(tmp_path / "x.st"),
                 "--workers", "0", "--dtype", "bfloat16", "--optimize", "trace"]) == 2
    assert "torch.bfloat16" in capsys.readouterr().err


def test_encode_bad_image_fails_or_is_skipped(tiny_folder, person_images, tmp_path, capsys):
    bad = person_images[0].parent / "broken.jpg"
    bad.write_bytes(b"\x00garbage")
    out = tmp_path / "g.safetensors"
    args = ["encode", "--model", str(tiny_folder), "--images", str(bad.parent), "--out", str(out), "--workers", "0",
            "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "broken.jpg" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    assert main(args + ["--skip-bad"]) == 0
    assert "skipped 1 unreadable image" in capsys.readouterr().err
    assert "broken.jpg" not in load_embeddings(out).ids


def test_missing_inputs_give_one_line_errors(tiny_folder, tmp_path, capsys):
    assert main(["encode", "--model", str(tiny_folder), "--images", str(tmp_path / "nope"), "--out", "x.safetensors"]) == 2
    assert "nope: no such file or folder" in capsys.readouterr().err
    assert main(["search", "--model", str(tiny_folder), "--gallery", str(tmp_path / "none.safetensors"), "q"]) == 2
    assert "embedding file not found" in capsys.readouterr().err


def test_console_script_help():
    result = subprocess.run([sys.executable, "-m", "plip.app.cli.main", "encode", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--skip-bad" in result.stdout
