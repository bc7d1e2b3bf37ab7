"""``plip synth --format market1501 / pa100k``.

Oracles: plip's own readers (:func:`plip.data.image_reid.read_market1501`,
:func:`plip.data.attributes.read_pa100k`), the Market-1501 naming rule of the release
(``PPPP_cCsS_FFFFFF_00.jpg``; 0000 distractors and -1 junk in the gallery only) and the
identity attributes the renderer drew.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from plip.app.cli.main import main
from plip.data.attribute_names import PA100K_ATTRIBUTES
from plip.data.attributes import read_pa100k
from plip.data.image_reid import read_market1501
from plip.data.synthetic import sample_identities
from plip.data.synthetic.formats import write_market1501, write_pa100k
from plip.errors import ConfigError, DataError

NAME = re.compile(r"^(-1|\d{4})_c([1-6])s([1-6])_(\d{6})_00\.jpg$")


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return h.hexdigest()


def test_market1501_layout_and_reader(tmp_path):
    out = tmp_path / "market"
    assert main(["synth", "--format", "market1501", "--out", str(out), "--identities", "12",
                 "--images-per-id", "4", "--no-progress"]) == 0  # fmt: skip
    names = {sub: sorted(p.name for p in (out / sub).iterdir()) for sub in ("bounding_box_train", "query", "bounding_box_test")}
    for sub, files in names.items():
        for name in files:
            assert NAME.match(name), (sub, name)
    pids = {sub: {NAME.match(n).group(1) for n in files} for sub, files in names.items()}
    assert "0000" in pids["bounding_box_test"] and "-1" in pids["bounding_box_test"]
    assert not {"0000", "-1"} & (pids["bounding_box_train"] | pids["query"])
    assert not pids["bounding_box_train"] & pids["query"]  # disjoint train / test people
    split = read_market1501(out)
    # 12 people, split 0.7/0.1/0.2 -> 10 train (val joins train), 2 test; 1 query of 4 shots
    assert split.num_train_ids == 10 and len(split.train) == 40
    assert len(split.query) == 2 and split.excluded == {"gallery_junk": 2}
    assert len(split.gallery) == 2 * 3 + 2  # other shots + distractors
    for q in split.query:  # every query has a same-person gallery shot from another camera
        assert any(g.person_id == q.person_id and g.camera_id != q.camera_id for g in split.gallery)
    from PIL import Image

    assert Image.open(split.train[0].image_path).size == (64, 128)


def test_market1501_deterministic_and_overwrite(tmp_path):
    a = write_market1501(tmp_path / "a", identities=6, images_per_id=3, seed=3, progress=False)
    write_market1501(tmp_path / "b", identities=6, images_per_id=3, seed=3, progress=False)
    assert _digest(a.root) == _digest(tmp_path / "b")
    with pytest.raises(DataError, match="overwrite"):
        write_market1501(a.root, identities=6, images_per_id=3, seed=3, progress=False)
    write_pa100k(a.root, identities=4, progress=False, overwrite=True)  # another format replaces it
    assert not (a.root / "bounding_box_train").exists() and (a.root / "annotation.mat").is_file()


@pytest.mark.parametrize(
    "kwargs, needle",
    [(dict(images_per_id=1), "images_per_id >= 2"), (dict(identities=1502), "1501"),
     (dict(identities=3, split=(1.0, 0.0, 0.0)), "test identities")],
)
def test_market1501_bad_arguments(tmp_path, kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        write_market1501(tmp_path / "x", **{"identities": 10, **kwargs}, progress=False)
    assert not (tmp_path / "x").exists()


def test_pa100k_reader_and_labels(tmp_path):
    out = tmp_path / "pa"
    assert main(["synth", "--format", "pa100k", "--out", str(out), "--identities", "10",
                 "--images-per-id", "3", "--split", "0.6,0.2,0.2", "--no-progress"]) == 0  # fmt: skip
    data = read_pa100k(out)
    assert data.attribute_names == list(PA100K_ATTRIBUTES)
    assert {k: len(v) for k, v in data.partitions.items()} == {"train": 18, "val": 6, "test": 6, "trainval": 24}
    paths, labels = data.split("train")
    assert all(p.is_file() for p in paths)
    people = sample_identities(10, 0)
    col = {name: i for i, name in enumerate(PA100K_ATTRIBUTES)}
    for row, person in zip(labels.reshape(6, 3, -1), people[:6]):  # train: people 1..6, 3 shots each
        assert (row[:, col["Female"]] == (person.gender == "female")).all()
        assert (row[:, col["Backpack"]] == (person.bag_kind == "backpack")).all()
        assert (row[:, col["Skirt&Dress"]] == (person.lower_kind in ("skirt", "dress"))).all()
        assert (row[:, col["Front"]] + row[:, col["Side"]] + row[:, col["Back"]] == 1).all()  # one view per image
    assert labels[:, col["Age18-60"]].all() and not labels[:, col["Glasses"]].any()
    assert set(np.unique(data.labels)) <= {0, 1}
