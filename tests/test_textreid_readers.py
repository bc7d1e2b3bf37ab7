"""Text ReID dataset readers (plip.data.textreid) on tiny files in the authors' formats.

Reference: the annotation layouts as distributed (CUHK-PEDES ``reid_raw.json``, ICFG-PEDES
``ICFG_PEDES.json``, RSTPReid ``data_captions.json``, SYNTH-PEDES
``synthpedes_dataset.json``) and the test-split protocol: one query per caption, the
gallery = the split's images, person ids kept as given.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from plip.data.textreid import DATASETS, dataset_info, load_text_reid
from plip.errors import DataError


def touch_images(root: Path, relative_paths) -> None:
    for rel in relative_paths:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not decoded by the readers")


def pedes_entries(splits: dict[str, list[int]], image_pattern: str, path_field: str = "file_path"):
    """Entries like CUHK-PEDES / ICFG-PEDES: two images per person, two captions per image."""
    entries = []
    for split, ids in splits.items():
        for pid in ids:
            for k in range(2):
                entries.append(
                    {
                        "split": split,
                        "id": pid,
                        path_field: image_pattern.format(pid=pid, k=k, split=split),
                        "captions": [f"person {pid} image {k} caption 0", f"person {pid} image {k} caption 1"],
                        "processed_tokens": [["person"], ["person"]],
                    }
                )
    return entries


@pytest.fixture
def cuhk_root(tmp_path):
    root = tmp_path / "CUHK-PEDES"
    entries = pedes_entries({"train": [1, 2, 3], "val": [4], "test": [5, 6]}, "CUHK0{k}/{pid:04d}_{k}.png")
    root.mkdir()
    (root / "reid_raw.json").write_text(json.dumps(entries))
    touch_images(root / "imgs", [e["file_path"] for e in entries])
    return root


def test_cuhk_pedes_splits_ids_and_captions(cuhk_root):
    counts = {}
    for split in ("train", "val", "test"):
        data = load_text_reid("cuhk-pedes", cuhk_root, split)
        counts[split] = (data.num_images, data.num_captions, data.num_identities)
        data.check_files()
    assert counts == {"train": (6, 12, 3), "val": (2, 4, 1), "test": (4, 8, 2)}

    test = load_text_reid("CUHK_PEDES", cuhk_root)  # default split: test; name normalised
    assert (test.dataset, test.split) == ("CUHK-PEDES", "test")
    first = test.samples[0]
    assert first.person_id == 5  # ids kept as given (1-based in the real file)
    assert first.image_path == str((cuhk_root / "imgs" / "CUHK00" / "0005_0.png").resolve())
    assert first.captions == ("person 5 image 0 caption 0", "person 5 image 0 caption 1")

    gallery, queries = test.gallery(), test.queries()
    assert gallery.person_ids.tolist() == [5, 5, 6, 6]
    assert len(queries) == 8 and queries.person_ids.tolist() == [5, 5, 5, 5, 6, 6, 6, 6]
    # every caption names the person and image it belongs to
    for caption, pid, image in zip(queries.captions, queries.person_ids, queries.image_index):
        assert caption.startswith(f"person {pid} image ")
        assert gallery.image_paths[image].endswith(f"{pid:04d}_{caption.split()[3]}.png")
    assert test.label_map() == {5: 0, 6: 1}


def test_icfg_pedes_has_train_and_test_only(tmp_path):
    root = tmp_path / "ICFG"
    entries = pedes_entries({"train": [1, 2], "test": [3, 4, 5]}, "{split}/{pid:04d}/{pid:04d}_{k}.jpg")
    for e in entries:
        e["captions"] = e["captions"][:1]  # one caption per image, as in ICFG-PEDES
    root.mkdir()
    (root / "ICFG_PEDES.json").write_text(json.dumps(entries))
    test = load_text_reid("icfg-pedes", root, "test")
    assert (test.num_images, test.num_captions, test.num_identities) == (6, 6, 3)
    assert test.samples[0].image_path.endswith("imgs/test/0003/0003_0.jpg")
    with pytest.raises(DataError, match=r"no entries of split 'val'.*'test', 'train'"):
        load_text_reid("icfg", root, "val")


def test_rstpreid_uses_img_path(tmp_path):
    root = tmp_path / "RSTPReid"
    root.mkdir()
    entries = pedes_entries({"train": [0, 1], "val": [2], "test": [3, 4]}, "{pid}_c{k}_0001.jpg", "img_path")
    for e in entries:
        del e["processed_tokens"]
    (root / "data_captions.json").write_text(json.dumps(entries))
    touch_images(root / "imgs", [e["img_path"] for e in entries])
    test = load_text_reid("RSTPReid", root, "test")
    assert (test.num_images, test.num_captions, test.num_identities) == (4, 8, 2)
    assert test.samples[-1].image_path == str((root / "imgs" / "4_c1_0001.jpg").resolve())
    assert load_text_reid("rstpreid", root, "val").num_identities == 1
    test.check_files()


def test_synth_pedes_parts_and_prompt_captions(tmp_path):
    root = tmp_path / "SYNTH-PEDES"
    root.mkdir()
    entries = [
        {
            "id": pid,
            "file_path": f"Part{1 + pid % 2}/{pid}/{k}.jpg",
            "attributes": ["man,short black hair,white shirt,black pants,unknown,unknown"],
            "captions": [f"caption a of {pid}/{k}", f"caption b of {pid}/{k}"],
            "prompt_caption": f"A man with short black hair ({pid}/{k}).",
        }
        for pid in range(3)
        for k in range(2)
    ]
    (root / "synthpedes_dataset.json").write_text(json.dumps(entries))
    touch_images(root, [e["file_path"] for e in entries])
    data = load_text_reid("synth-pedes", root, "train")
    assert (data.split, data.num_images, data.num_captions, data.num_identities) == ("train", 6, 12, 3)
    assert data.samples[3].image_path == str((root / "Part2" / "1" / "1.jpg").resolve())
    data.check_files()
    both = load_text_reid("synth", root, "train", caption_fields=("captions", "prompt_caption"))
    assert both.samples[0].captions == ("caption a of 0/0", "caption b of 0/0", "A man with short black hair (0/0).")
    with pytest.raises(DataError, match="single split"):
        load_text_reid("synth-pedes", root, "test")


def test_generic_csv_json_and_jsonl(tmp_path):
    rows = [
        {"image": "a/1.jpg", "person_id": "10", "caption": "first of 10", "split": "test"},
        {"image": "a/1.jpg", "person_id": "10", "caption": "second of 10", "split": "test"},
        {"image": "b/2.jpg", "person_id": "11", "caption": "only of 11", "split": "test"},
        {"image": "c/3.jpg", "person_id": "12", "caption": "train row", "split": "train"},
    ]
    with open(tmp_path / "annotations.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    data = load_text_reid("generic", tmp_path, "test")  # finds annotations.csv in the folder
    assert [(s.person_id, s.captions) for s in data.samples] == [(10, ("first of 10", "second of 10")), (11, ("only of 11",))]
    assert data.samples[0].image_path == str((tmp_path / "a" / "1.jpg").resolve())

    as_json = [{"image_path": "x.jpg", "id": 3, "captions": ["one", "two"]}, {"file_path": "y.jpg", "pid": 4, "caption": "three"}]
    (tmp_path / "mine.json").write_text(json.dumps(as_json))
    data = load_text_reid("generic", tmp_path / "mine.json", "test")
    assert data.split == "all"  # no split column: the whole file
    assert data.queries().captions == ["one", "two", "three"] and data.gallery().person_ids.tolist() == [3, 4]

    (tmp_path / "mine.jsonl").write_text("\n".join(json.dumps(r) for r in as_json) + "\n")
    assert load_text_reid("generic", tmp_path / "mine.jsonl").num_captions == 3

    (tmp_path / "bad.csv").write_text("image,person_id,caption\nz.jpg,abc,hello\n")
    with pytest.raises(DataError, match=r"bad.csv: entry 0, field 'person_id': expected an integer"):
        load_text_reid("generic", tmp_path / "bad.csv")


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda e: e[3].pop("id"), r"entry 3, field 'id': missing"),
        (lambda e: e[4].update(id="seven"), r"entry 4, field 'id': expected an integer person id, got 'seven'"),
        (lambda e: e[5].update(id=True), r"entry 5, field 'id': expected an integer"),
        (lambda e: e[2].update(captions="a man"), r"entry 2, field 'captions': expected a list of captions"),
        (lambda e: e[2].update(captions=["ok", 3]), r"entry 2, field 'captions': caption 1 is a int"),
        (lambda e: e[6].update(file_path=""), r"entry 6, field 'file_path': expected a non-empty image path"),
        (lambda e: e.__setitem__(1, ["not", "an", "object"]), r"entry 1 is a list, expected an object"),
        (lambda e: e[7].pop("split"), r"entry 7, field 'split': missing"),
        (lambda e: e[2].update(file_path=e[1]["file_path"]), r"entries 1 and 2 list image .* different person ids"),
    ],
)
def test_malformed_entries_are_named(tmp_path, mutate, message):
    """Entries 0-7 are all in the test split; each defect names the entry index and field."""
    entries = pedes_entries({"test": [1, 2, 3, 4]}, "{pid}_{k}.jpg")
    mutate(entries)
    (tmp_path / "reid_raw.json").write_text(json.dumps(entries))
    with pytest.raises(DataError, match=message):
        load_text_reid("cuhk-pedes", tmp_path, "test")


def test_broken_files_and_roots(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_text_reid("cuhk-pedes", tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"reid_raw.json not found .*ROOT/imgs/"):
        load_text_reid("cuhk-pedes", tmp_path)
    (tmp_path / "reid_raw.json").write_text('[{"split": "test",')
    with pytest.raises(DataError, match=r"reid_raw.json: not valid JSON .*line 1"):
        load_text_reid("cuhk-pedes", tmp_path)
    (tmp_path / "reid_raw.json").write_text('{"split": "test"}')
    with pytest.raises(DataError, match="expected a JSON list"):
        load_text_reid("cuhk-pedes", tmp_path)
    with pytest.raises(DataError, match="unknown dataset 'market'.*cuhk-pedes"):
        load_text_reid("market", tmp_path)


def test_missing_images_are_counted_and_listed(cuhk_root):
    test = load_text_reid("cuhk-pedes", cuhk_root, "test")
    gone = [test.samples[1].image_path, test.samples[3].image_path]
    for path in gone:
        Path(path).unlink()
    assert test.missing_images() == gone
    with pytest.raises(DataError, match=r"^2 of 4 images of CUHK-PEDES \(test\) are missing") as err:
        test.check_files()
    assert gone[0] in str(err.value) and gone[1] in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(DataError, match=r"and 1 more$"):
        test.check_files(max_listed=1)


def test_split_file_as_root_and_registry(cuhk_root):
    """The official dataset_split.py output (a list of entries) can be given as ROOT."""
    entries = json.loads((cuhk_root / "reid_raw.json").read_text())
    split_file = cuhk_root / "CUHK-PEDES-test.json"
    split_file.write_text(json.dumps([e for e in entries if e["split"] == "test"]))
    data = load_text_reid("cuhk-pedes", split_file, "test")
    assert data.num_images == 4 and data.annotation_file == str(split_file.resolve())
    data.check_files()
    assert set(DATASETS) == {"cuhk-pedes", "icfg-pedes", "rstpreid", "synth-pedes", "generic"}
    assert dataset_info("ICFG-PEDES").annotation == "ICFG_PEDES.json"
    assert isinstance(data.gallery().person_ids, np.ndarray)


def test_blank_captions_are_counted_skips_not_queries(cuhk_root):
    """Issue #18 item 6: empty / whitespace-only captions are listed and left out of the
    queries; their image stays in the gallery. Oracle: the queries of the file minus the
    blank captions, in file order."""
    entries = json.loads((cuhk_root / "reid_raw.json").read_text())
    test = [i for i, e in enumerate(entries) if e["split"] == "test"]
    entries[test[0]]["captions"][1] = "   \t"
    entries[test[2]]["captions"] = ["", "\n"]  # an image with no caption left
    (cuhk_root / "reid_raw.json").write_text(json.dumps(entries))
    split = load_text_reid("cuhk-pedes", cuhk_root, "test")
    assert split.num_skipped_captions == 3
    assert [(c.entry, c.caption, c.text) for c in split.skipped_captions] == [
        (test[0], 1, "   \t"), (test[2], 0, ""), (test[2], 1, "\n")
    ]
    assert split.skipped_captions[1].image_path.endswith(entries[test[2]]["file_path"])
    expected = [c for i in test for c in entries[i]["captions"] if c.strip()]
    assert split.queries().captions == expected and len(expected) == 5
    assert split.num_images == 4  # the caption-less image is still a gallery item
    assert split.summary()["skipped_captions"] == 3
    assert load_text_reid("cuhk-pedes", cuhk_root, "train").num_skipped_captions == 0
