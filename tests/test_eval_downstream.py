"""``plip eval`` on BoT / MGN folders (image ReID) and attribute-recognizer folders.

Reference: the metrics in the JSON report must equal (as percentages) a direct call of the
evaluators of :mod:`plip.downstream.evaluate` on the same model and data
(``evaluate_reid_model`` under the Market-1501 protocol, ``evaluate_attribute_model`` with
the strong-baseline PAR metrics); a model of the wrong kind for the dataset is a one-line
error naming both. The data are tiny folders in the real formats written by the tests
(Market-1501 file names; PA-100K ``annotation.mat``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from plip.app.cli.main import main
from plip.data.attributes import read_attribute_dataset
from plip.data.image_reid import read_image_reid
from plip.downstream import AttributeRecognizer, BoT, load_model, save_model
from plip.downstream.evaluate import evaluate_attribute_model, evaluate_reid_model
from plip.evaluation.dispatch import ATTRIBUTES, IMAGE_REID, TEXT_RETRIEVAL, dataset_task


def _person(rng, base, size=(48, 24)):
    """A noisy image around one person's base colour (same person, similar pixels)."""
    return Image.fromarray(np.clip(base + rng.integers(-50, 50, (*size, 3)), 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    """Market-1501 names: 4 test persons, 1 query (camera 1) and 2 gallery images each (cameras
    1 and 2, so same-camera removal matters), a junk (-1) and a distractor (0000, an identity of
    the gallery) image, and a query whose person is absent from the gallery."""
    root = tmp_path_factory.mktemp("market")
    for name in ("bounding_box_train", "query", "bounding_box_test"):
        (root / name).mkdir()
    rng = np.random.default_rng(0)
    bases = {pid: rng.integers(0, 256, 3) for pid in range(1, 7)}
    for pid in (1, 2):
        _person(rng, bases[pid]).save(root / "bounding_box_train" / f"{pid:04d}_c1s1_000001_00.jpg")
    for pid in (3, 4, 5, 6):
        _person(rng, bases[pid]).save(root / "query" / f"{pid:04d}_c1s1_000001_00.jpg")
    for pid in (3, 4, 5):
        for cam in (1, 2):
            _person(rng, bases[pid]).save(root / "bounding_box_test" / f"{pid:04d}_c{cam}s1_00000{cam}_00.jpg")
    _person(rng, bases[1]).save(root / "bounding_box_test" / "-1_c2s1_000009_00.jpg")
    _person(rng, bases[2]).save(root / "bounding_box_test" / "0000_c2s1_000009_00.jpg")
    return root


@pytest.fixture(scope="module")
def pa100k(tmp_path_factory):
    """PA-100K layout (annotation.mat + data/): 3 attributes, 2 images per split and person."""
    from scipy.io import savemat

    root = tmp_path_factory.mktemp("pa100k")
    (root / "data").mkdir()
    rng = np.random.default_rng(1)
    names = ["Female", "Hat", "Backpack"]
    content = {"attributes": np.array([[n] for n in names], dtype=object)}
    for split, count in (("train", 4), ("val", 2), ("test", 6)):
        files = [[f"{split}_{i:03d}.jpg"] for i in range(count)]
        for (name,) in files:
            _person(rng, rng.integers(0, 256, 3)).save(root / "data" / name)
        content[f"{split}_images_name"] = np.array(files, dtype=object)
        content[f"{split}_label"] = rng.integers(0, 2, (count, len(names))).astype(np.uint8)
    savemat(root / "annotation.mat", content)
    return root, names


@pytest.fixture(scope="module")
def bot_folder(tiny_config, tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("runs") / "bot" / "model"
    save_model(BoT(2, tiny_config, pretrained=False).eval(), folder)
    return folder


@pytest.fixture(scope="module")
def mgn_folder(tmp_path_factory):
    from plip.downstream import MGN
    from plip.models import PLIPConfig

    config = PLIPConfig.tiny()
    config.vision.layers = (1, 1, 2, 1)  # MGN's branches copy layer3[1:]
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("runs") / "mgn" / "model"
    save_model(MGN(2, config.validate(), pretrained=False, image_size=(64, 32)).eval(), folder)
    return folder


@pytest.fixture(scope="module")
def par_folder(tiny_config, pa100k, tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("runs") / "par" / "model"
    save_model(AttributeRecognizer(pa100k[1], tiny_config, pretrained=False).eval(), folder)
    return folder


def test_dataset_name_picks_the_task():
    """Names as the readers accept them (case, dashes, aliases) map to their task."""
    assert dataset_task("Market-1501") == (IMAGE_REID, "market1501")
    assert dataset_task("msmt") == (IMAGE_REID, "msmt17")
    assert dataset_task("PA-100K") == (ATTRIBUTES, "pa100k")
    assert dataset_task("rap2") == (ATTRIBUTES, "rapv2")
    assert dataset_task("CUHK_PEDES") == (TEXT_RETRIEVAL, "cuhk-pedes")


@pytest.mark.parametrize("kind", ["BoT", "MGN"])
def test_plip_eval_reid_model_on_market1501(kind, bot_folder, mgn_folder, market, tmp_path, capsys):
    folder = {"BoT": bot_folder, "MGN": mgn_folder}[kind]
    flip = kind == "BoT"  # MGN is slower on CPU: one pass is enough there
    out = tmp_path / "reid.json"
    code = main(["eval", "--model", str(folder), "--dataset", "market1501", "--root", str(market),
                 "--out", str(out), "--batch-size", "3", "--workers", "0", "--device", "cpu"] + ["--flip"] * flip)
    assert code == 0
    printed = capsys.readouterr()
    assert "rank1" in printed.out and "mINP" in printed.out
    assert "1 queries have no gallery image" in printed.err  # person 6
    report = json.loads(out.read_text())
    expected = evaluate_reid_model(load_model(folder), read_image_reid("market1501", market), batch_size=5, flip=flip)
    assert set(report["metrics"]) == {"rank1", "rank5", "rank10", "mAP", "mINP"}
    for key, value in expected.items():
        assert report["metrics"][key] == pytest.approx(100 * value, abs=1e-4)
    assert report["counts"] == {"query_images": 4, "gallery_images": 7, "query_identities": 4,
                                "gallery_identities": 4, "queries_without_match": 1, "excluded": {"gallery_junk": 1}}
    assert report["task"] == "image_reid" and report["model_type"] == kind and report["settings"]["flip"] is flip
    assert {"model", "dataset", "split", "counts", "metrics", "versions", "seconds"} <= set(report)
    assert report["seconds"]["total"] >= report["seconds"]["evaluate"] > 0


def test_plip_eval_attribute_model_on_pa100k(par_folder, pa100k, tmp_path, capsys):
    root, _ = pa100k
    out = tmp_path / "par.json"
    code = main(["eval", "--model", str(par_folder), "--dataset", "pa100k", "--root", str(root), "--out", str(out),
                 "--workers", "0", "--device", "cpu", "--threshold", "0.4", "--split", "val"])
    assert code == 0
    assert "accuracy" in capsys.readouterr().out
    report = json.loads(out.read_text())
    expected = evaluate_attribute_model(load_model(par_folder), read_attribute_dataset("pa100k", root), "val",
                                        threshold=0.4)
    assert set(report["metrics"]) == {"mA", "accuracy", "precision", "recall", "f1"}
    for key, value in expected.items():
        assert report["metrics"][key] == pytest.approx(100 * value, abs=1e-4)
    assert report["counts"] == {"images": 2, "attributes": 3}
    assert report["split"] == "val" and report["settings"]["threshold"] == 0.4
    assert {"model", "dataset", "split", "counts", "metrics", "versions", "seconds"} <= set(report)


@pytest.mark.parametrize("case", ["plip_on_market", "bot_on_pa100k", "par_on_market", "bot_on_cuhk"])
def test_model_dataset_mismatch_is_a_one_line_error(case, tiny_folder, bot_folder, par_folder, market, pa100k, capsys):
    """The error names the model and the dataset, and comes before any data is read."""
    model, dataset, root = {
        "plip_on_market": (tiny_folder, "market1501", market),
        "bot_on_pa100k": (bot_folder, "pa100k", pa100k[0]),
        "par_on_market": (par_folder, "market1501", market),
        "bot_on_cuhk": (bot_folder, "cuhk-pedes", "/nonexistent"),
    }[case]
    assert main(["eval", "--model", str(model), "--dataset", dataset, "--root", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(model) in err and dataset in err


def test_attribute_names_must_match_the_dataset(tiny_config, pa100k, tmp_path, capsys):
    """A recognizer trained on other attributes (e.g. PETA's) is refused on PA-100K by name."""
    folder = tmp_path / "other"
    save_model(AttributeRecognizer(["Male", "Hat", "Backpack"], tiny_config, pretrained=False), folder)
    assert main(["eval", "--model", str(folder), "--dataset", "pa100k", "--root", str(pa100k[0]),
                 "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "Male" in err and "Female" in err


def test_options_of_another_task_are_refused(bot_folder, market, capsys):
    assert main(["eval", "--model", str(bot_folder), "--dataset", "market1501", "--root", str(market),
                 "--legacy-ap"]) == 2
    assert "--legacy-ap applies to text-based person retrieval only" in capsys.readouterr().err
