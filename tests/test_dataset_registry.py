"""The dataset registry: every registered dataset builds, normalises its names and agrees
with ``plip eval``'s dispatch; annotation paths cannot leave the dataset root.

Oracles: each dataset is built from a tiny fixture in its distributed format, written here
(the attribute .mat files by the writers of ``test_attribute_data``, which check them
against the reference scripts' indexing); the expected sizes are those of the fixture.
Hostile paths: the expected outcome is the one issue #18 states (an error naming the
annotation file, the entry and the path; accepted with ``allow_outside_root=True``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from test_attribute_data import _write_pa100k, _write_peta, _write_rapv1, _write_rapv2

from plip.data.attributes import AttributeDataset, read_pa100k
from plip.data.datasets import (
    ATTRIBUTES,
    IMAGE_REID,
    TEXT_RETRIEVAL,
    find_dataset,
    get_dataset,
    list_datasets,
    normalize_name,
    register_dataset,
)
from plip.data.image_reid import ImageReIDSplit, read_market1501, read_msmt17
from plip.data.textreid import TextReIDSplit, load_text_reid
from plip.errors import DataError
from plip.evaluation.dispatch import dataset_task


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def _pedes(root: Path, annotation: str, path_field: str, splits=("train", "test")) -> dict:
    entries = [
        {"split": split, "id": pid, path_field: f"cam{pid}/{split}_{pid}.jpg", "captions": [f"person {pid}", f"a person {pid}"]}
        for split in splits
        for pid in (1, 2)
    ]
    (root / annotation).write_text(json.dumps(entries))
    for e in entries:
        _touch(root / "imgs" / e[path_field])
    return {"split": "test", "expect": (2, 4)}  # images, captions of the test split


def _synth(root: Path) -> dict:
    entries = [{"id": i, "file_path": f"Part1/{i}.jpg", "captions": [f"person {i}"], "prompt_caption": "p"} for i in range(3)]
    (root / "synthpedes_dataset.json").write_text(json.dumps(entries))
    return {"split": "train", "expect": (3, 3)}


def _generic(root: Path) -> dict:
    (root / "annotations.csv").write_text("image,person_id,caption\na.jpg,1,one\nb.jpg,2,two\na.jpg,1,uno\n")
    return {"split": "test", "expect": (2, 3)}


def _market(root: Path) -> dict:
    for folder, names in {
        "bounding_box_train": ["0002_c1s1_000451_03.jpg", "0007_c6s3_085667_01.jpg"],
        "query": ["0007_c1s1_000001_00.jpg"],
        "bounding_box_test": ["0007_c3s1_000551_02.jpg", "0000_c1s1_000000_01.jpg"],
    }.items():
        for name in names:
            _touch(root / folder / name)
    return {"expect": (2, 1, 2)}


def _duke(root: Path) -> dict:
    for folder, name in (("bounding_box_train", "0001_c2_f0046182.jpg"), ("query", "0005_c1_f0000001.jpg"),
                         ("bounding_box_test", "0005_c8_f0000002.jpg")):
        _touch(root / folder / name)
    return {"expect": (1, 1, 1)}


def _msmt(root: Path) -> dict:
    (root / "train").mkdir()
    (root / "test").mkdir()
    (root / "list_train.txt").write_text("0000/0000_000_01_0303morning_0008_0.jpg 0\n")
    (root / "list_val.txt").write_text("")
    (root / "list_query.txt").write_text("0000/0000_000_02_0113morning_0001_0.jpg 0\n")
    (root / "list_gallery.txt").write_text("0000/0000_001_05_0113morning_0003_0.jpg 0\n0003/0003_000_10_0113noon_0005_0.jpg 3\n")
    return {"expect": (1, 1, 2)}


def _attributes(writer, num_images: int):
    def write(root: Path) -> dict:
        writer(root, np.random.default_rng(0))
        return {"expect": num_images}

    return write


# One tiny fixture per registered dataset: a dataset registered without one fails
# test_every_dataset_has_a_fixture, so the suite grows with the registry.
FIXTURES = {
    "cuhk-pedes": lambda root: _pedes(root, "reid_raw.json", "file_path", ("train", "val", "test")),
    "icfg-pedes": lambda root: _pedes(root, "ICFG_PEDES.json", "file_path"),
    "rstpreid": lambda root: _pedes(root, "data_captions.json", "img_path", ("train", "val", "test")),
    "synth-pedes": _synth,
    "generic": _generic,
    "market1501": _market,
    "dukemtmc": _duke,
    "msmt17": _msmt,
    "pa100k": _attributes(_write_pa100k, 10),
    "peta": _attributes(_write_peta, 12),
    "rapv1": _attributes(_write_rapv1, 10),
    "rapv2": _attributes(_write_rapv2, 9),
}
SPLIT_TYPES = {TEXT_RETRIEVAL: TextReIDSplit, IMAGE_REID: ImageReIDSplit, ATTRIBUTES: AttributeDataset}


def test_every_dataset_has_a_fixture():
    assert set(list_datasets()) == set(FIXTURES)
    assert list_datasets(IMAGE_REID) == ["market1501", "dukemtmc", "msmt17"]


@pytest.mark.parametrize("name", list_datasets())
def test_dataset_conformance(name, tmp_path):
    """Builds from its fixture through the registry, returns its task's split type, and every
    spelling of its name and aliases dispatches to the same (task, name)."""
    spec = get_dataset(name)
    root = tmp_path / "data"
    root.mkdir()
    fixture = FIXTURES[name](root)
    options = {"split": fixture["split"]} if "split" in fixture else {}
    data = spec.load(root, **options)
    assert isinstance(data, SPLIT_TYPES[spec.task])
    if spec.task == TEXT_RETRIEVAL:
        assert (data.num_images, data.num_captions) == fixture["expect"]
        assert all(os.path.isabs(p) for p in data.gallery().image_paths)
    elif spec.task == IMAGE_REID:
        assert (len(data.train), len(data.query), len(data.gallery)) == fixture["expect"]
    else:
        assert len(data.image_names) == fixture["expect"] and data.labels.shape[0] == fixture["expect"]
    spellings = {name, name.upper(), name.replace("-", "_"), f" {spec.title} ", *spec.aliases, *(a.upper() for a in spec.aliases)}
    for spelling in spellings:
        assert find_dataset(spelling) is spec, spelling
        assert dataset_task(spelling) == (spec.task, spec.name), spelling
    other = next(t for t in SPLIT_TYPES if t != spec.task)
    assert find_dataset(name, other) is None


def test_one_normaliser_and_unknown_names():
    assert normalize_name("CUHK_PEDES") == normalize_name("cuhk-pedes") == normalize_name("Cuhk Pedes") == "cuhkpedes"
    with pytest.raises(DataError, match="unknown dataset 'imagenet'.*image ReID: market1501"):
        dataset_task("imagenet")
    with pytest.raises(DataError, match="unknown dataset 'market1501'; known: pa100k"):
        get_dataset("market1501", ATTRIBUTES)


def test_registration_rejects_taken_names_and_bad_tasks():
    with pytest.raises(DataError, match="'market' is already registered by 'market1501'"):
        register_dataset("other-market", task=IMAGE_REID, aliases=("Market",))(lambda root: None)
    with pytest.raises(DataError, match="task must be one of"):
        register_dataset("x", task="detection")
    assert find_dataset("other-market") is None


# --------------------------------------------------------------------------- hostile paths


@pytest.fixture
def outside(tmp_path):
    """A real image outside the dataset root (the dataset is tmp_path/data)."""
    path = tmp_path / "secret" / "victim.jpg"
    _touch(path)
    return path


def _cuhk_with(root: Path, file_path: str) -> Path:
    entries = [
        {"split": "test", "id": 1, "file_path": "a/1.jpg", "captions": ["one"]},
        {"split": "test", "id": 2, "file_path": file_path, "captions": ["two"]},
    ]
    root.mkdir(parents=True, exist_ok=True)
    (root / "reid_raw.json").write_text(json.dumps(entries))
    _touch(root / "imgs" / "a" / "1.jpg")
    return root


def _hostile_paths(tmp_path: Path, outside: Path) -> dict[str, str]:
    root = tmp_path / "data"
    (root / "imgs" / "a").mkdir(parents=True)
    os.symlink(outside, root / "imgs" / "a" / "link.jpg")
    os.symlink(outside.parent, root / "imgs" / "linkdir")
    return {
        "relative": "../../secret/victim.jpg",
        "deep-relative": "a/../../../../../../../../etc/passwd",
        "absolute": str(outside),
        "symlink": "a/link.jpg",
        "symlinked-folder": "linkdir/victim.jpg",
    }


@pytest.mark.parametrize("case", ["relative", "deep-relative", "absolute", "symlink", "symlinked-folder"])
def test_text_paths_outside_the_root_are_refused(tmp_path, outside, case):
    value = _hostile_paths(tmp_path, outside)[case]
    root = _cuhk_with(tmp_path / "data", value)
    with pytest.raises(DataError) as info:
        load_text_reid("cuhk-pedes", root, "test")
    message = str(info.value)
    assert str(root / "reid_raw.json") in message and "entry 1, field 'file_path'" in message
    assert repr(value) in message and "outside the dataset root" in message and "allow_outside_root" in message
    split = load_text_reid("cuhk-pedes", root, "test", allow_outside_root=True)
    assert split.num_images == 2
    if case != "deep-relative":  # the explicit allow opens exactly the outside image
        assert os.path.realpath(split.gallery().image_paths[1]) == str(outside.resolve())


def test_symlinks_inside_the_root_are_fine(tmp_path):
    """The layout `plip synth` writes: imgs/PartN -> ../PartN, inside the root."""
    root = tmp_path / "data"
    _touch(root / "Part1" / "x.jpg")
    (root / "imgs").mkdir()
    os.symlink(Path("..") / "Part1", root / "imgs" / "Part1", target_is_directory=True)
    _cuhk_with(root, "Part1/x.jpg")
    assert load_text_reid("cuhk-pedes", root, "test").num_images == 2


def test_generic_absolute_path_outside(tmp_path, outside):
    root = tmp_path / "data"
    root.mkdir()
    (root / "annotations.jsonl").write_text(json.dumps({"image": str(outside), "id": 3, "caption": "c"}) + "\n")
    with pytest.raises(DataError, match=r"annotations.jsonl: entry 0, field 'image': path .*victim.jpg"):
        load_text_reid("generic", root)
    assert load_text_reid("generic", root, allow_outside_root=True).num_images == 1


def test_image_reid_symlink_and_list_escape(tmp_path, outside):
    market = tmp_path / "data"
    _market(market)
    os.symlink(outside, market / "query" / "0002_c2s1_000001_00.jpg")
    with pytest.raises(DataError, match=r"image query/0002_c2s1_000001_00.jpg: path .* outside the dataset root"):
        read_market1501(market)
    assert len(read_market1501(market, allow_outside_root=True).query) == 2

    msmt = tmp_path / "msmt"
    msmt.mkdir()
    _msmt(msmt)
    (msmt / "list_query.txt").write_text("../../secret/victim_000_02_x.jpg 0\n")
    with pytest.raises(DataError, match=r"list_query.txt: line 1: path '../../secret/victim_000_02_x.jpg'"):
        read_msmt17(msmt)
    assert len(read_msmt17(msmt, allow_outside_root=True).query) == 1


def test_attribute_image_names_outside(tmp_path):
    from scipy.io import loadmat, savemat

    root = tmp_path / "data"
    root.mkdir()
    _write_pa100k(root, np.random.default_rng(0))
    mat = {k: v for k, v in loadmat(root / "annotation.mat").items() if not k.startswith("__")}
    names = mat["test_images_name"].copy()
    names[1, 0] = np.array(["/etc/passwd"])
    mat["test_images_name"] = names
    savemat(root / "annotation.mat", mat)
    with pytest.raises(DataError, match=r"annotation.mat: image 8: path '/etc/passwd' resolves to /etc/passwd"):
        read_pa100k(root)
    assert read_pa100k(root, allow_outside_root=True).image_names[8] == "/etc/passwd"
