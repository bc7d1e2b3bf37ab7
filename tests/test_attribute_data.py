"""Attribute dataset readers on tiny files in the distributed formats, written here.

References: how valencebond/Rethinking_of_PAR (``dataset/pedes_attr/preprocess/
format_*.py``) and dangweili's strong baseline (``script/dataset/transform_*.py``) index
these files. Each .mat written below is first checked with the reference scripts'
indexing expressions (``_reference_view``), so the tests exercise the real structures;
the reader must then return the same names, labels and 0-based splits.
"""

from __future__ import annotations

import os
import pickle
import sys
import types

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from plip.data.attribute_names import (
    PA100K_ATTRIBUTES,
    PETA_ATTRIBUTES,
    RAPV1_ATTRIBUTES,
    RAPV2_ATTRIBUTES,
    RETHINKING_GROUP_ORDER,
)
from plip.data.attributes import (
    read_attribute_dataset,
    read_pa100k,
    read_partition_pickle,
    read_peta,
    read_rapv1,
    read_rapv2,
)
from plip.data.safe_pickle import load_data_pickle
from plip.errors import DataError


def _cell(strings, row=False):
    """A MATLAB cell array of strings, (n, 1) as in the releases, or (1, n)."""
    cell = np.empty((1, len(strings)) if row else (len(strings), 1), dtype=object)
    for i, text in enumerate(strings):
        cell[(0, i) if row else (i, 0)] = text
    return cell


def _cell_of(items, row=False):
    cell = np.empty((1, len(items)) if row else (len(items), 1), dtype=object)
    for i, item in enumerate(items):
        cell[(0, i) if row else (i, 0)] = item
    return cell


# --------------------------------------------------------------------------- PA-100K


def _write_pa100k(root, rng):
    sizes = {"train": 5, "val": 2, "test": 3}
    content = {"attributes": _cell(PA100K_ATTRIBUTES)}
    labels = {}
    start = 1
    for split, n in sizes.items():
        content[f"{split}_images_name"] = _cell([f"{start + i:06d}.jpg" for i in range(n)])
        labels[split] = rng.integers(0, 2, (n, 26)).astype(np.uint8)
        content[f"{split}_label"] = labels[split]
        start += n
    savemat(root / "annotation.mat", content)
    return labels


def test_pa100k(tmp_path):
    labels = _write_pa100k(tmp_path, np.random.default_rng(0))
    mat = loadmat(tmp_path / "annotation.mat")  # reference indexing (format_pa100k.py)
    assert [mat["attributes"][i][0][0] for i in range(26)] == list(PA100K_ATTRIBUTES)
    ds = read_pa100k(tmp_path)
    assert ds.attribute_names == list(PA100K_ATTRIBUTES)
    assert ds.image_names == [f"{i:06d}.jpg" for i in range(1, 11)]
    np.testing.assert_array_equal(
        ds.labels, np.concatenate([labels["train"], labels["val"], labels["test"]])
    )
    assert ds.partitions["train"].tolist() == [0, 1, 2, 3, 4]
    assert ds.partitions["val"].tolist() == [5, 6]
    assert ds.partitions["test"].tolist() == [7, 8, 9]
    assert ds.partitions["trainval"].tolist() == list(range(7))
    paths, split_labels = ds.split("test")
    assert paths[0] == tmp_path / "data" / "000008.jpg"
    np.testing.assert_array_equal(split_labels, labels["test"])
    assert read_attribute_dataset("PA-100K", tmp_path).labels.shape == (10, 26)


def test_pa100k_errors_name_the_file(tmp_path):
    _write_pa100k(tmp_path, np.random.default_rng(0))
    mat = loadmat(tmp_path / "annotation.mat")
    del mat["val_label"]
    savemat(tmp_path / "annotation.mat", {k: v for k, v in mat.items() if not k.startswith("__")})
    with pytest.raises(DataError, match=r"annotation\.mat.*val_label"):
        read_pa100k(tmp_path)
    with pytest.raises(DataError, match="not found"):
        read_pa100k(tmp_path / "nowhere")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "annotation.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(DataError, match="annotation.mat"):
        read_pa100k(tmp_path / "bad")


def test_label_values_are_checked(tmp_path):
    _write_pa100k(tmp_path, np.random.default_rng(0))
    mat = loadmat(tmp_path / "annotation.mat")
    mat["test_label"][1, 4] = 3
    savemat(tmp_path / "annotation.mat", {k: v for k, v in mat.items() if not k.startswith("__")})
    with pytest.raises(DataError, match=r"test_label\[1, 4\] = 3"):
        read_pa100k(tmp_path)


# --------------------------------------------------------------------------- PETA

PETA_ALL = list(PETA_ATTRIBUTES) + [f"extra{i}" for i in range(70)]  # 105 names


def _write_peta(root, rng, num_images=12):
    data = np.zeros((num_images, 4 + 105))
    data[:, 0] = np.arange(1, num_images + 1)  # image index
    data[:, 1] = rng.integers(1, 5, num_images)  # person id
    data[:, 4:] = rng.integers(0, 2, (num_images, 105))
    splits = []
    for _ in range(5):
        perm = rng.permutation(num_images) + 1  # 1-based, column vectors as released
        splits.append({"train": perm[:6, None], "val": perm[6:8, None], "test": perm[8:, None]})
    savemat(root / "PETA.mat", {"peta": {
        "data": data, "attribute": _cell(PETA_ALL),
        "selected_attribute": np.arange(1, 36)[None, :], "partition_attribute": _cell_of(splits),
    }})  # fmt: skip
    return data, splits


def test_peta(tmp_path):
    data, splits = _write_peta(tmp_path, np.random.default_rng(1))
    peta = loadmat(tmp_path / "PETA.mat")["peta"]  # reference indexing (format_peta.py)
    assert [i[0][0] for i in peta[0][0][1]] == PETA_ALL
    np.testing.assert_array_equal(
        peta[0][0][3][2][0][0][0][0][:, 0] - 1, splits[2]["train"][:, 0] - 1
    )
    ds = read_peta(tmp_path, partition=2)
    assert ds.attribute_names == list(PETA_ATTRIBUTES)
    np.testing.assert_array_equal(ds.labels, data[:, 4:39])
    assert ds.labels.dtype == np.uint8
    assert ds.image_names[:2] == ["00001.png", "00002.png"]
    assert ds.partitions["train"].tolist() == (splits[2]["train"][:, 0] - 1).tolist()
    assert ds.partitions["test"].tolist() == (splits[2]["test"][:, 0] - 1).tolist()
    trainval = np.concatenate([splits[2]["train"][:, 0], splits[2]["val"][:, 0]]) - 1
    assert ds.partitions["trainval"].tolist() == trainval.tolist()
    assert ds.split("val")[0][0].parent == tmp_path / "images"
    with pytest.raises(DataError, match="partition 5 requested"):
        read_peta(tmp_path, partition=5)


def test_peta_index_out_of_range(tmp_path):
    _write_peta(tmp_path, np.random.default_rng(1))
    mat = loadmat(tmp_path / "PETA.mat")
    mat["peta"][0][0][3][0][0][0][0][0][0, 0] = 99  # image 99 of 12
    savemat(tmp_path / "PETA.mat", {"peta": mat["peta"]})
    with pytest.raises(DataError, match="outside 1..12"):
        read_peta(tmp_path)


# --------------------------------------------------------------------------- RAPv1

RAPV1_ALL = list(RAPV1_ATTRIBUTES) + [f"color{i}" for i in range(41)]  # 92 names


def _write_rapv1(root, rng, num_images=10):
    label = rng.integers(0, 2, (num_images, 92)).astype(np.float64)
    names = [f"CAM01_2014-02-15_tarid{i}_frame{i}_line1.png" for i in range(num_images)]
    parts = []
    for _ in range(5):
        perm = rng.permutation(num_images) + 1
        parts.append({"trainval": perm[None, :7], "test": perm[None, 7:]})  # row vectors
    folder = root / "RAP_annotation"
    folder.mkdir()
    # Field order of the release; the reference scripts index fields by position.
    savemat(folder / "RAP_annotation.mat", {"RAP_annotation": {
        "partion": _cell_of(parts), "label": label,
        "attribute_chinese": _cell([f"zh{i}" for i in range(92)]),
        "attribute_eng": _cell(RAPV1_ALL), "position": np.zeros((num_images, 16)),
        "imagesname": _cell(names), "attribute_exp": _cell([f"short{i}" for i in range(51)]),
    }})  # fmt: skip
    return label, names, parts


def test_rapv1(tmp_path):
    label, names, parts = _write_rapv1(tmp_path, np.random.default_rng(2))
    rap = loadmat(tmp_path / "RAP_annotation" / "RAP_annotation.mat")["RAP_annotation"]
    assert [rap[0][0][3][i][0][0] for i in range(92)] == RAPV1_ALL  # format_rap.py indexing
    assert rap[0][0][5][3][0][0] == names[3]
    np.testing.assert_array_equal(rap[0][0][0][1][0][0][0][0][0, :], parts[1]["trainval"][0])
    ds = read_rapv1(tmp_path, partition=1)
    assert ds.attribute_names == list(RAPV1_ATTRIBUTES)
    assert ds.image_names == names
    np.testing.assert_array_equal(ds.labels, label[:, :51])
    assert set(ds.partitions) == {"trainval", "test"}
    assert ds.partitions["test"].tolist() == (parts[1]["test"][0] - 1).tolist()
    assert ds.image_root == tmp_path / "RAP_dataset"


# --------------------------------------------------------------------------- RAPv2


def _write_rapv2(root, rng, num_images=9):
    extra = [f"other{i}" for i in range(10)]
    all_names = list(RAPV2_ATTRIBUTES[:20]) + extra[:5] + list(RAPV2_ATTRIBUTES[20:]) + extra[5:]
    selected = [all_names.index(name) + 1 for name in RAPV2_ATTRIBUTES]  # 1-based, as released
    data = rng.integers(0, 3, (num_images, len(all_names))).astype(np.float64)  # 2 = uncertain
    parts = []
    for _ in range(5):
        perm = rng.permutation(num_images) + 1
        parts.append(
            {
                "train_index": perm[None, :5],
                "val_index": perm[None, 5:7],
                "test_index": perm[None, 7:],
            }
        )
    folder = root / "RAP_annotation"
    folder.mkdir()
    savemat(folder / "RAP_annotation.mat", {"RAP_annotation": {
        "name": _cell([f"img{i:03d}.png" for i in range(num_images)]), "data": data,
        "attribute": _cell(all_names), "selected_attribute": np.array([selected]),
        "partition_attribute": _cell_of(parts, row=True),
    }})  # fmt: skip
    return data, selected, parts


def test_rapv2_selected_attributes_and_uncertain_labels(tmp_path):
    data, selected, parts = _write_rapv2(tmp_path, np.random.default_rng(3))
    rap = loadmat(tmp_path / "RAP_annotation" / "RAP_annotation.mat")["RAP_annotation"]
    ref_train = rap["partition_attribute"][0][0][0][4]["train_index"][0][0][0] - 1  # format_rap2.py
    ds = read_rapv2(tmp_path, partition=4)
    assert ds.attribute_names == list(RAPV2_ATTRIBUTES)
    expected = data[:, np.array(selected) - 1]
    expected[expected == 2] = 0  # Rethinking-of-PAR reads "uncertain" as negative
    np.testing.assert_array_equal(ds.labels, expected)
    assert ds.partitions["train"].tolist() == ref_train.tolist()
    assert (
        ds.partitions["trainval"].tolist()
        == (np.concatenate([parts[4]["train_index"][0], parts[4]["val_index"][0]]) - 1).tolist()
    )
    assert (
        ds.select(list(reversed(RAPV2_ATTRIBUTES))).labels[:, 0].tolist()
        == expected[:, -1].tolist()
    )


def test_missing_struct_field_is_reported(tmp_path):
    folder = tmp_path / "RAP_annotation"
    folder.mkdir()
    savemat(folder / "RAP_annotation.mat", {"RAP_annotation": {"name": _cell(["a.png"])}})
    with pytest.raises(DataError, match=r"RAP_annotation\.mat.*no field data"):
        read_rapv2(tmp_path)


# --------------------------------------------------------------------------- pickles


@pytest.fixture
def fake_easydict(monkeypatch):
    """A module ``easydict`` with an ``EasyDict`` behaving like the real one (items and
    attributes kept in sync), present only while pickles are written."""
    module = types.ModuleType("easydict")

    class EasyDict(dict):
        def __init__(self, d=None, **kwargs):
            super().__init__()
            for key, value in dict(d or {}, **kwargs).items():
                setattr(self, key, value)

        def __setattr__(self, name, value):
            if isinstance(value, dict) and not isinstance(value, EasyDict):
                value = EasyDict(value)
            super().__setattr__(name, value)
            super().__setitem__(name, value)

        __setitem__ = __setattr__

    EasyDict.__module__ = "easydict"
    EasyDict.__qualname__ = "EasyDict"
    module.EasyDict = EasyDict
    monkeypatch.setitem(sys.modules, "easydict", module)
    return EasyDict


def _rethinking_pa100k_pickle(EasyDict, rng):
    """What format_pa100k.py writes (reorder=True), on 10 images."""
    dataset = EasyDict()
    dataset.description = "pa100k"
    dataset.reorder = "group_order"
    dataset.root = "/mnt/data1/someone/PA100k/data"
    dataset.image_name = [np.str_(f"{i:06d}.jpg") for i in range(1, 11)]  # loadmat gives np.str_
    dataset.label = rng.integers(0, 2, (10, 26)).astype(np.uint8)
    dataset.attr_name = [np.str_(name) for name in PA100K_ATTRIBUTES]
    dataset.label_idx = EasyDict()
    dataset.label_idx.eval = list(RETHINKING_GROUP_ORDER["pa100k"])
    dataset.partition = EasyDict()
    dataset.partition.train = np.arange(0, 6)
    dataset.partition.val = np.arange(6, 8)
    dataset.partition.test = np.arange(8, 10)
    dataset.partition.trainval = np.arange(0, 8)
    dataset.weight_train = np.mean(dataset.label[dataset.partition.train], axis=0).astype(
        np.float32
    )
    return dataset


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_partition_pickle(tmp_path, fake_easydict, monkeypatch, protocol):
    dataset = _rethinking_pa100k_pickle(fake_easydict, np.random.default_rng(4))
    path = tmp_path / "dataset_all.pkl"
    path.write_bytes(pickle.dumps(dataset, protocol=protocol))
    monkeypatch.delitem(sys.modules, "easydict")  # the reader must not need easydict
    ds = read_partition_pickle(path)
    order = list(RETHINKING_GROUP_ORDER["pa100k"])
    assert ds.name == "pa100k"
    assert ds.attribute_names == [PA100K_ATTRIBUTES[i] for i in order]
    np.testing.assert_array_equal(ds.labels, dataset.label[:, order])
    assert ds.partitions["test"].tolist() == [8, 9]
    assert ds.image_root == tmp_path / "data"  # the stored root does not exist here
    back = ds.select(PA100K_ATTRIBUTES)
    np.testing.assert_array_equal(back.labels, dataset.label)
    assert read_partition_pickle(path, labels="all").attribute_names == list(PA100K_ATTRIBUTES)
    assert read_partition_pickle(path, image_root=tmp_path / "imgs").image_root == tmp_path / "imgs"
    raw = load_data_pickle(path)
    assert type(raw) is dict and type(raw["partition"]) is dict


def test_partition_pickle_with_random_splits(tmp_path, fake_easydict, monkeypatch):
    """PETA-style: lists of 5 partitions, a ``range`` in label_idx, empty unused splits."""
    rng = np.random.default_rng(5)
    dataset = fake_easydict()
    dataset.description = "peta"
    dataset.root = str(tmp_path / "images")
    (tmp_path / "images").mkdir()
    dataset.image_name = [f"{i + 1:05}.png" for i in range(12)]
    dataset.label = rng.integers(0, 2, (12, 105))
    dataset.attr_name = PETA_ALL
    dataset.label_idx = fake_easydict()
    dataset.label_idx.eval = list(RETHINKING_GROUP_ORDER["peta"])
    dataset.label_idx.color = list(range(35, 79))
    dataset.label_idx.extra = range(79, 105)
    dataset.partition = fake_easydict()
    dataset.partition.train = [rng.permutation(12)[:6] for _ in range(5)]
    dataset.partition.test = [rng.permutation(12)[:4] for _ in range(5)]
    dataset.partition.val = []
    path = tmp_path / "dataset_all.pkl"
    path.write_bytes(pickle.dumps(dataset))
    monkeypatch.delitem(sys.modules, "easydict")
    ds = read_partition_pickle(path, partition=3)
    assert ds.name == "peta" and ds.image_root == tmp_path / "images"
    assert sorted(ds.attribute_names) == sorted(PETA_ATTRIBUTES)
    assert ds.partitions["train"].tolist() == dataset.partition.train[3].tolist()
    assert "val" not in ds.partitions
    np.testing.assert_array_equal(ds.select(PETA_ATTRIBUTES).labels, dataset.label[:, :35])


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


class _EvalCall:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("payload", ["mkdir", "eval"])
def test_malicious_pickle_is_refused_without_running(tmp_path, payload):
    marker = tmp_path / "pwned"
    evil = _Evil(str(marker)) if payload == "mkdir" else _EvalCall()
    path = tmp_path / "dataset_all.pkl"
    path.write_bytes(pickle.dumps({"image_name": ["a.png"], "label": evil}))
    with pytest.raises(DataError, match=r"dataset_all\.pkl.*refusing to load global"):
        read_partition_pickle(path)
    assert not marker.exists()


def test_truncated_pickle(tmp_path):
    path = tmp_path / "dataset_all.pkl"
    path.write_bytes(pickle.dumps({"image_name": list(range(100))})[:30])
    with pytest.raises(DataError, match="dataset_all.pkl"):
        read_partition_pickle(path)


def test_unknown_field_names_fall_back_to_reference_positions(tmp_path):
    """The reference scripts index PETA.mat fields by position (data 0, attribute 1,
    partition 3; train/val/test 0/1/2): a file with other field names still reads."""
    rng = np.random.default_rng(6)
    data = np.zeros((6, 4 + 105))
    data[:, 4:] = rng.integers(0, 2, (6, 105))
    split = {"a": np.array([[1], [2], [3]]), "b": np.array([[4]]), "c": np.array([[5], [6]])}
    savemat(tmp_path / "PETA.mat", {"peta": {
        "d": data, "names": _cell(PETA_ALL), "sel": np.arange(1, 36)[None, :],
        "parts": _cell_of([split] * 5),
    }})  # fmt: skip
    ds = read_peta(tmp_path)
    assert ds.partitions["test"].tolist() == [4, 5]
    np.testing.assert_array_equal(ds.labels, data[:, 4:39])
