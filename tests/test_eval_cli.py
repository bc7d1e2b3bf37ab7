"""``plip eval`` and ``evaluate_text_to_image`` end to end on a tiny model and a tiny
CUHK-PEDES-format dataset written by the test.

Reference: the metrics of the same split computed directly from ``model.encode_image`` /
``model.encode_text`` embeddings (the protocol: every caption a query, every test image the
gallery, match = same person id), and hand-known values for an oracle model.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import plip
from plip.app.cli.main import main
from plip.data.textreid import load_text_reid
from plip.evaluation.retrieval_metrics import retrieval_metrics
from plip.evaluation.text_retrieval import evaluate_text_to_image, model_fingerprint


@pytest.fixture
def cuhk_tiny(tmp_path):
    """4 test persons x 2 images x 2 captions, plus train entries that must be ignored."""
    root = tmp_path / "CUHK-PEDES"
    rng = np.random.default_rng(0)
    entries = []
    for pid, split in [(1, "train"), (2, "test"), (3, "test"), (4, "test"), (5, "test"), (6, "val")]:
        base = rng.integers(0, 256, 3)
        for k in range(2):
            rel = f"CUHK01/{pid:04d}_{k}.png"
            pixels = np.clip(base + rng.integers(-40, 40, (48, 24, 3)), 0, 255).astype(np.uint8)
            (root / "imgs" / "CUHK01").mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / "imgs" / rel)
            colour = ["red", "blue", "green", "black", "white", "grey"][pid - 1]
            entries.append({
                "split": split, "id": pid, "file_path": rel,
                "captions": [f"a person in a {colour} coat, view {k}", f"the {colour} jacket and dark trousers {k}"],
                "processed_tokens": [],
            })
    (root / "reid_raw.json").write_text(json.dumps(entries))
    return root


def reference(model, split, legacy_ap=False):
    gallery, queries = split.gallery(), split.queries()
    images = model.encode_image(gallery.image_paths)
    texts = model.encode_text(queries.captions)
    return (
        retrieval_metrics(texts @ images.T, queries.person_ids, gallery.person_ids, legacy_ap=legacy_ap),
        retrieval_metrics(images @ texts.T, gallery.person_ids, queries.person_ids, legacy_ap=legacy_ap),
    )


def test_plip_eval_end_to_end(tiny_folder, cuhk_tiny, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    code = main(["eval", "--model", str(tiny_folder), "--dataset", "cuhk-pedes", "--root", str(cuhk_tiny),
                 "--workers", "1", "--batch-size", "3", "--text-batch-size", "5", "--i2t", "--out", str(out),
                 "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "CUHK-PEDES test: 8 images, 16 queries, 4 identities" in printed
    assert "R@1" in printed and "mINP" in printed and "t2i" in printed and "i2t" in printed

    report = json.loads(out.read_text())
    assert report["counts"] == {"images": 8, "queries": 16, "identities": 4, "unmatched_queries": 0, "skipped_captions": 0}
    assert (report["model"], report["dataset"], report["split"]) == (str(tiny_folder), "cuhk-pedes", "test")
    assert set(report["versions"]) >= {"plip", "torch", "numpy", "python"}
    assert report["seconds"]["total"] > 0 and "encode_images" in report["seconds"]
    assert report["settings"]["device"] == "cpu" and report["settings"]["dtype"] == "float32"

    model = plip.load(tiny_folder)
    t2i, i2t = reference(model, load_text_reid("cuhk-pedes", cuhk_tiny, "test"))
    for name, expected in (("t2i", t2i), ("i2t", i2t)):
        got = report["metrics"][name]
        for key in ("R@1", "R@5", "R@10", "mAP", "mINP"):
            assert got[key] == pytest.approx(expected.as_dict()[key], abs=1e-4), (name, key)


def test_save_embeddings_are_reused_for_the_same_model_only(tiny_folder, tiny_model, cuhk_tiny, tmp_path):
    cache = tmp_path / "cache"
    args = ["eval", "--model", str(tiny_folder), "--dataset", "cuhk-pedes", "--root", str(cuhk_tiny), "--workers", "0",
            "--save-embeddings", str(cache), "--no-progress", "--legacy-ap"]
    reports = []
    for run in range(2):
        out = tmp_path / f"run{run}.json"
        assert main(args + ["--out", str(out)]) == 0
        reports.append(json.loads(out.read_text()))
    assert reports[0]["embeddings_cache"]["images"] == "written"
    assert reports[1]["embeddings_cache"] == {"dir": str(cache), "images": "reused", "texts": "reused"}
    assert reports[0]["metrics"] == reports[1]["metrics"]
    t2i, _ = reference(plip.load(tiny_folder), load_text_reid("cuhk-pedes", cuhk_tiny), legacy_ap=True)
    assert reports[1]["metrics"]["t2i"]["mAP"] == pytest.approx(t2i.mAP, abs=1e-4)

    # Other weights: a different fingerprint, so nothing is reused.
    other = plip.load(tiny_folder)
    with torch.no_grad():
        other.visual.attnpool.c_proj.bias.add_(0.5)
    assert model_fingerprint(other) != model_fingerprint(tiny_model)
    other.save_pretrained(tmp_path / "other")
    out = tmp_path / "other.json"
    assert main(["eval", "--model", str(tmp_path / "other"), "--dataset", "cuhk-pedes", "--root", str(cuhk_tiny),
                 "--workers", "0", "--save-embeddings", str(cache), "--no-progress", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["embeddings_cache"]["images"] == "written"


def test_missing_images_fail_before_encoding(tiny_folder, cuhk_tiny, capsys):
    (cuhk_tiny / "imgs" / "CUHK01" / "0003_1.png").unlink()
    assert main(["eval", "--model", str(tiny_folder), "--dataset", "cuhk-pedes", "--root", str(cuhk_tiny)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "1 of 8 images of CUHK-PEDES (test) are missing" in err and "0003_1.png" in err
    assert main(["eval", "--model", str(tiny_folder), "--dataset", "nope", "--root", str(cuhk_tiny)]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err


def test_python_api_restores_training_mode(tiny_model, cuhk_tiny):
    """Inside training: eval mode during the evaluation, training mode again afterwards."""
    split = load_text_reid("cuhk-pedes", cuhk_tiny, "test")
    tiny_model.train()
    try:
        result = evaluate_text_to_image(tiny_model, split, batch_size=4, image_to_text=True, return_embeddings=True)
        assert tiny_model.training
    finally:
        tiny_model.eval()
    t2i, i2t = reference(tiny_model, split)
    assert result["t2i"]["R@1"] == pytest.approx(t2i.recall[1]) and result["t2i"]["mAP"] == pytest.approx(t2i.mAP, abs=1e-4)
    assert result["i2t"]["mAP"] == pytest.approx(i2t.mAP, abs=1e-4)
    assert result["embeddings"]["images"].shape == (8, tiny_model.embed_dim)


class OracleModel:
    """Duck-typed model: embeds an image or caption as the one-hot vector of its person."""

    def __init__(self, image_person: dict[str, int], caption_person: dict[str, int]):
        self.image_person, self.caption_person = image_person, caption_person
        self.training = True
        self.calls = []

    def train(self, mode=True):
        self.training = mode

    def eval(self):
        self.training = False

    def _one_hot(self, people):
        assert not self.training
        return torch.nn.functional.one_hot(torch.tensor(people), 10).float()

    def encode_image(self, paths, **kwargs):
        self.calls.append(("images", kwargs))
        return self._one_hot([self.image_person[p] for p in paths])

    def encode_text(self, texts, **kwargs):
        self.calls.append(("texts", kwargs))
        return self._one_hot([self.caption_person[t] for t in texts])


def test_oracle_model_scores_perfectly(cuhk_tiny):
    """A model that separates persons perfectly: R@1 = mAP = mINP = 100 in both directions,
    and the encoders receive the batch size, workers and progress settings."""
    split = load_text_reid("cuhk-pedes", cuhk_tiny, "test")
    gallery, queries = split.gallery(), split.queries()
    model = OracleModel(dict(zip(gallery.image_paths, gallery.person_ids.tolist())),
                        dict(zip(queries.captions, queries.person_ids.tolist())))
    result = evaluate_text_to_image(model, split, batch_size=5, num_workers=2, image_to_text=True, progress=False)
    for direction in ("t2i", "i2t"):
        assert {k: result[direction][k] for k in ("R@1", "mAP", "mINP")} == {"R@1": 100.0, "mAP": 100.0, "mINP": 100.0}
    assert model.training
    assert model.calls[0] == ("images", {"batch_size": 5, "normalize": True, "progress": False, "num_workers": 2})
    assert model.calls[1][0] == "texts" and model.calls[1][1]["batch_size"] == 256


def test_plip_eval_reports_skipped_captions_and_denominators(tiny_folder, cuhk_tiny, tmp_path, capsys):
    """Blank captions are not queries (issue #18 item 6): the run says how many were skipped
    and what the metrics divide by; the metrics equal those of the split without them."""
    entries = json.loads((cuhk_tiny / "reid_raw.json").read_text())
    test = [e for e in entries if e["split"] == "test"]
    test[0]["captions"][0] = "  "
    (cuhk_tiny / "reid_raw.json").write_text(json.dumps(entries))
    out = tmp_path / "m.json"
    assert main(["eval", "--model", str(tiny_folder), "--dataset", "cuhk-pedes", "--root", str(cuhk_tiny),
                 "--workers", "0", "--out", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "skipped 1 empty caption(s), not queries (entry 2 caption 0)" in err
    assert "denominators: R@K over 15 queries, mAP/mINP over 15" in err
    report = json.loads(out.read_text())
    assert report["counts"]["queries"] == 15 and report["counts"]["skipped_captions"] == 1
    t2i, _ = reference(plip.load(tiny_folder), load_text_reid("cuhk-pedes", cuhk_tiny, "test"))
    assert report["metrics"]["t2i"]["R@5"] == pytest.approx(t2i.as_dict()["R@5"], abs=1e-4)


def test_plip_eval_refuses_paths_outside_the_root(tiny_folder, cuhk_tiny, tmp_path, capsys):
    """Issue #18 item 1: an annotation naming /etc/passwd-like paths outside the root is an
    error naming file, entry and path, before any model loads; --allow-outside-root accepts it."""
    entries = json.loads((cuhk_tiny / "reid_raw.json").read_text())
    outside = tmp_path / "elsewhere.png"
    (cuhk_tiny / "imgs" / entries[2]["file_path"]).rename(outside)
    entries[2]["file_path"] = "../../elsewhere.png"
    (cuhk_tiny / "reid_raw.json").write_text(json.dumps(entries))
    args = ["eval", "--model", str(tiny_folder), "--dataset", "cuhk-pedes", "--root", str(cuhk_tiny),
            "--workers", "0", "--no-progress"]
    assert main(args) != 0
    err = capsys.readouterr().err
    assert "reid_raw.json: entry 2, field 'file_path': path '../../elsewhere.png'" in err and "--allow-outside-root" in err
    assert main(args + ["--allow-outside-root"]) == 0
    assert "8 images, 16 queries" in capsys.readouterr().out
