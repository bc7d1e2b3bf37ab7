"""Image ReID readers on tiny folders and list files in the real release layouts.

Reference: the torchreid / fast-reid readers (``market1501.py``, ``dukemtmcreid.py``,
``msmt17.py``): id and camera from ``([-\\d]+)_c(\\d)`` for Market/Duke, camera =
third ``_`` field of the name (1-based) for MSMT17, junk id -1 ignored, distractor id 0
kept in the gallery, cameras returned 0-based.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from plip.data.image_reid import (
    ReIDImage,
    read_dukemtmc,
    read_image_reid,
    read_market1501,
    read_msmt17,
)
from plip.errors import DataError


def _touch(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def _market(root: Path) -> Path:
    _touch(
        root / "bounding_box_train",
        [
            "0002_c1s1_000451_03.jpg",
            "0002_c2s1_000301_01.jpg",
            "0007_c6s3_085667_01.jpg",
            "Thumbs.db",
        ],
    )
    _touch(root / "query", ["0007_c1s1_000001_00.jpg"])
    _touch(
        root / "bounding_box_test",
        [
            "0007_c3s1_000551_02.jpg",
            "0000_c1s1_000000_01.jpg",
            "-1_c1s1_000401_03.jpg",
            "-1_c5s1_000401_01.jpg",
        ],
    )
    return root


def test_market1501_ids_cameras_junk_and_distractors(tmp_path):
    """Hand-checked: junk (-1) leaves the gallery, distractor 0000 stays, cameras 0-based,
    Thumbs.db ignored, training ids relabelled in increasing id order."""
    split = read_market1501(_market(tmp_path))
    train = {(item.image_path.name, item.person_id, item.camera_id) for item in split.train}
    assert train == {
        ("0002_c1s1_000451_03.jpg", 2, 0),
        ("0002_c2s1_000301_01.jpg", 2, 1),
        ("0007_c6s3_085667_01.jpg", 7, 5),
    }
    assert split.query == [ReIDImage(tmp_path / "query" / "0007_c1s1_000001_00.jpg", 7, 0)]
    assert sorted((i.person_id, i.camera_id) for i in split.gallery) == [(0, 0), (7, 2)]
    assert split.excluded == {"gallery_junk": 2}
    assert split.train_pid_to_label == {2: 0, 7: 1}
    assert sorted(split.train_labels()) == [0, 0, 1]
    assert split.num_train_ids == 2 and split.num_cameras == 4


def test_market1501_release_subfolder_and_dispatch(tmp_path):
    _market(tmp_path / "Market-1501-v15.09.15")
    split = read_image_reid("Market-1501", tmp_path)
    assert len(split.train) == 3 and split.name == "market1501"


def test_market1501_distractor_in_train_is_counted_not_trained(tmp_path):
    root = _market(tmp_path)
    _touch(root / "bounding_box_train", ["0000_c1s1_000000_02.jpg"])
    split = read_market1501(root)
    assert all(item.person_id != 0 for item in split.train)
    assert split.excluded["train_distractors"] == 1


@pytest.mark.parametrize("bad", ["0002_s1_000451_03.jpg", "abcd_c1s1_000451_03.jpg"])
def test_market1501_malformed_name_names_the_file(tmp_path, bad):
    root = _market(tmp_path)
    _touch(root / "query", [bad])
    with pytest.raises(DataError, match=bad):
        read_market1501(root)


def test_market1501_camera_out_of_range(tmp_path):
    root = _market(tmp_path)
    _touch(root / "query", ["0002_c7s1_000451_03.jpg"])
    with pytest.raises(DataError, match="camera 7"):
        read_market1501(root)


def test_missing_folder_is_reported(tmp_path):
    (tmp_path / "query").mkdir()
    with pytest.raises(DataError, match="bounding_box_train"):
        read_market1501(tmp_path)


def test_dukemtmc_names(tmp_path):
    root = tmp_path / "DukeMTMC-reID"
    _touch(root / "bounding_box_train", ["0001_c2_f0046182.jpg", "0005_c8_f0000001.jpg"])
    _touch(root / "query", ["0005_c1_f0000002.jpg"])
    _touch(root / "bounding_box_test", ["0005_c3_f0000003.jpg", "0009_c5_f0000004.jpg"])
    split = read_dukemtmc(tmp_path)
    assert sorted((i.person_id, i.camera_id) for i in split.train) == [(1, 1), (5, 7)]
    assert [(i.person_id, i.camera_id) for i in split.query] == [(5, 0)]
    assert split.excluded == {}
    _touch(root / "bounding_box_test", ["0005_c9_f0000003.jpg"])
    with pytest.raises(DataError, match="camera 9"):
        read_dukemtmc(tmp_path)


def _msmt(root: Path) -> Path:
    base = root / "MSMT17_V1"
    (base / "train").mkdir(parents=True)
    (base / "test").mkdir()
    (base / "list_train.txt").write_text(
        "0000/0000_000_01_0303morning_0008_0.jpg 0\n0001/0001_003_15_0303noon_0010_1.jpg 1\n"
    )
    (base / "list_val.txt").write_text("0002/0002_001_07_0303morning_0020_0.jpg 2\n")
    (base / "list_query.txt").write_text("0000/0000_000_02_0113morning_0001_0.jpg 0\n")
    (base / "list_gallery.txt").write_text(
        "0000/0000_001_05_0113morning_0003_0.jpg 0\n\n0003/0003_000_10_0113noon_0005_0.jpg 3\n"
    )
    return base


def test_msmt17_lists_and_camera_field(tmp_path):
    """Camera = third '_' field, 1-based (torchreid: int(path.split('_')[2]) - 1)."""
    base = _msmt(tmp_path)
    split = read_msmt17(tmp_path)
    assert split.train == [
        ReIDImage(base / "train" / "0000/0000_000_01_0303morning_0008_0.jpg", 0, 0),
        ReIDImage(base / "train" / "0001/0001_003_15_0303noon_0010_1.jpg", 1, 14),
    ]
    assert [(i.person_id, i.camera_id) for i in split.query] == [(0, 1)]
    assert [(i.person_id, i.camera_id) for i in split.gallery] == [(0, 4), (3, 9)]
    assert split.gallery[0].image_path == base / "test" / "0000/0000_001_05_0113morning_0003_0.jpg"
    with_val = read_msmt17(tmp_path, include_val=True)
    assert [i.person_id for i in with_val.train] == [0, 1, 2]
    assert with_val.train_pid_to_label == {0: 0, 1: 1, 2: 2}


@pytest.mark.parametrize(
    "line, message",
    [
        ("0000/0000_000_01_0303morning_0008_0.jpg", "line 2"),
        ("0000/0000_000_01_0303morning_0008_0.jpg x", "not an integer"),
        ("0000/badname.jpg 0", "badname.jpg"),
        ("0000/0000_000_16_0303morning_0008_0.jpg 0", "camera 16"),
    ],
)
def test_msmt17_malformed_lines(tmp_path, line, message):
    base = _msmt(tmp_path)
    with open(base / "list_query.txt", "a") as handle:
        handle.write(line + "\n")
    with pytest.raises(DataError, match=message) as info:
        read_msmt17(tmp_path)
    assert "list_query.txt" in str(info.value)


def test_msmt17_missing(tmp_path):
    with pytest.raises(DataError, match="list_train.txt"):
        read_msmt17(tmp_path)
