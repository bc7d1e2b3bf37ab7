"""External caption sets (``data.captions_file``): formats, the join by path, its report, errors,
and a pre-training run on re-captioned ``plip synth`` data.

Oracles: every parser is checked against hand-written expected output for a hand-written
file (formats as HAM's ``caption.py`` and MLLM4Text-ReID's ``datasets/luperson.py`` read and
write them); join counts against hand-counted splits; the training samples against the
tokenizer's own encoding of the external captions; the attribute units against the lexicon
file's entries (``plip/assets/attribute_lexicon.txt``), listed by hand.
"""

from __future__ import annotations

import json
import logging

import pytest

from plip.data.external_captions import CaptionSet, join_captions, normalize_key, read_caption_set
from plip.data.textreid import PersonSample, TextReIDSplit
from plip.errors import ConfigError, DataError
from plip.tokenizer import PLIPTokenizer

ROOT = "/data/synth"


def _write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def _split(paths_ids: list[tuple[str, int]], dataset: str = "SYNTH-PEDES", root: str = ROOT) -> TextReIDSplit:
    samples = [PersonSample(f"{root}/{p}", pid, (f"own {p}",)) for p, pid in paths_ids]
    return TextReIDSplit(dataset, "train", root, f"{root}/annotations.json", samples)


# ----------------------------------------------------------------------------- formats
def test_normalize_key_is_textual_and_keeps_case():
    assert normalize_key("./Part1/7/1.jpg") == "Part1/7/1.jpg"
    assert normalize_key("Part1\\7\\1.jpg") == "Part1/7/1.jpg"
    assert normalize_key(".\\Part1//7/./1.jpg ") == "Part1/7/1.jpg"
    assert normalize_key("Part1/x/../7/1.JPG") == "Part1/7/1.JPG"
    assert normalize_key("/abs/Part1/1.jpg") == "/abs/Part1/1.jpg"


def test_ham_pedes_file(tmp_path):
    """HAM's caption.py writes ``{synth-pedes path: [captions]}`` (json.dump of a dict of lists)."""
    path = _write(tmp_path / "random100w_2HAMcaptions.json", json.dumps({
        "Part1/1/1.jpg": ["A man in a black coat.", "The man wears black."],
        "./Part2\\9\\3.jpg": ["A woman with a red bag.", "  "],
        "Part1/2/1.jpg": [],
    }))
    got = read_caption_set(path)
    assert got.formats == ("ham-pedes",) and got.files == (str(path),)
    assert got.captions == {
        "Part1/1/1.jpg": ["A man in a black coat.", "The man wears black."],
        "Part2/9/3.jpg": ["A woman with a red bag."],
        "Part1/2/1.jpg": [],
    }
    assert got.blank == 1 and got.num_captions == 3
    assert got.where["Part2/9/3.jpg"] == f"{path}, entry 1 ('./Part2\\\\9\\\\3.jpg')"


def test_luperson_mllm_files_merge_in_order(tmp_path):
    """MLLM4Text-ReID: one ``{path: caption}`` file per captioner / instruction, merged."""
    qwen = _write(tmp_path / "Ts-qwen.json", json.dumps({"LUPerson-MLLM/a.jpg": "qwen a", "LUPerson-MLLM/b.jpg": "qwen b"}))
    shikra = _write(tmp_path / "Ts-shikra.json", json.dumps({"LUPerson-MLLM/b.jpg": "shikra b"}))
    got = read_caption_set([qwen, shikra])
    assert got.formats == ("luperson-mllm", "luperson-mllm")
    assert got.captions == {"LUPerson-MLLM/a.jpg": ["qwen a"], "LUPerson-MLLM/b.jpg": ["qwen b", "shikra b"]}


def test_generic_json_and_jsonl(tmp_path):
    rows = [
        {"file_path": "imgs/a.jpg", "captions": ["one", "two"], "id": 3},
        {"path": "imgs/b.jpg", "caption": "three"},
        {"image": "imgs/a.jpg", "captions": "four"},
    ]
    listed = read_caption_set(_write(tmp_path / "caps.json", json.dumps(rows)))
    lines = read_caption_set(_write(tmp_path / "caps.jsonl", "\n".join(map(json.dumps, rows)) + "\n\n"))
    expected = {"imgs/a.jpg": ["one", "two", "four"], "imgs/b.jpg": ["three"]}
    assert listed.captions == expected and listed.formats == ("json",)
    assert lines.captions == expected and lines.formats == ("json",)
    assert lines.where["imgs/b.jpg"].endswith("line 2")


def test_csv_and_tsv_rows_add_up(tmp_path):
    csv_file = _write(tmp_path / "caps.csv", 'path,caption,extra\nPart1/1/1.jpg,"a man, in black",x\n'
                                             "Part1/1/2.jpg,a woman,y\n./Part1/1/1.jpg,second,z\nPart1/1/2.jpg,,w\n")
    got = read_caption_set(csv_file)
    assert got.formats == ("csv",)
    assert got.captions == {"Part1/1/1.jpg": ["a man, in black", "second"], "Part1/1/2.jpg": ["a woman"]}
    assert got.blank == 1 and got.where["Part1/1/2.jpg"] == f"{csv_file}, line 3"
    tsv = read_caption_set(_write(tmp_path / "caps.tsv", "file_path\ttext\nx.jpg\thello, there\n"))
    assert tsv.captions == {"x.jpg": ["hello, there"]}
    # an explicit format overrides the name
    as_csv = read_caption_set(_write(tmp_path / "caps.txt", "image,captions\nq.jpg,hi\n"), format="csv")
    assert as_csv.captions == {"q.jpg": ["hi"]}


@pytest.mark.parametrize("name, text, fmt, message", [
    ("bad.json", '{"a.jpg": ["x"],}', "auto", r"bad\.json: not valid JSON \(.* at line 1, column 17\)"),
    ("dup.json", '{"a.jpg": ["x"], "a.jpg": ["y"]}', "auto", r"dup\.json: key 'a\.jpg' appears twice"),
    ("ham.json", '{"a.jpg": ["x"], "b.jpg": "y"}', "auto",
     r"ham\.json: entry 1 \('b\.jpg'\): expected a list of captions \(format 'ham-pedes'\), got a string"),
    ("ham2.json", '{"a.jpg": ["x", 3]}', "auto", r"entry 0 \('a\.jpg'\), field 'captions': caption 1 is a int"),
    ("lup.json", '{"a.jpg": "x", "b.jpg": ["y"]}', "auto",
     r"entry 1 \('b\.jpg'\): expected one caption string \(format 'luperson-mllm'\), got a list"),
    ("lup2.json", '{"a.jpg": ["x"]}', "luperson-mllm", r"entry 0 \('a\.jpg'\): expected one caption string"),
    ("empty_key.json", '{" ": ["x"]}', "auto", r"entry 0 \(' '\): the image path \(the key\) is empty"),
    ("list.json", '[{"path": "a.jpg", "caption": "x"}, ["b.jpg"]]', "auto", r"list\.json: entry 1 is a list, expected an object"),
    ("nopath.json", '[{"caption": "x"}]', "auto", r"entry 0, field 'path': missing \(also looked for 'file_path'"),
    ("nocap.json", '[{"path": "a.jpg"}]', "auto", r"entry 0, field 'captions': missing \(also looked for 'caption'\)"),
    ("badcap.json", '[{"path": "a.jpg", "caption": ["x"]}]', "auto", r"entry 0, field 'caption': expected a string, got a list"),
    ("badpath.json", '[{"file_path": 7, "caption": "x"}]', "auto", r"entry 0, field 'file_path': expected a non-empty image path, got 7"),
    ("obj.json", '{"a.jpg": ["x"]}', "json", r"obj\.json: expected a JSON list of entries \(format 'json'\), found a object"),
    ("scalar.json", '"hello"', "auto", r"scalar\.json: expected a JSON object .* found a string"),
    ("bad.jsonl", '{"path": "a.jpg", "caption": "x"}\nnot json\n', "auto", r"bad\.jsonl: line 2 is not valid JSON"),
    ("nohead.csv", "file,caption\na.jpg,x\n", "auto", r"nohead\.csv: line 1 \(header\): no path column \(one of path, file_path"),
    ("nocapcol.csv", "path,words\na.jpg,x\n", "auto", r"line 1 \(header\): no caption column \(one of caption, captions, text\)"),
    ("short.csv", "path,caption\na.jpg,x\nb.jpg\n", "auto", r"short\.csv: line 3, column 'caption': missing"),
    ("emptypath.csv", "path,caption\n ,x\n", "auto", r"emptypath\.csv: line 2, column 'path': empty image path"),
    ("caps.txt", "whatever", "auto", r"caps\.txt: cannot tell the caption format from the name"),
])
def test_malformed_files_name_file_entry_and_field(tmp_path, name, text, fmt, message):
    with pytest.raises(DataError, match=message):
        read_caption_set(_write(tmp_path / name, text), format=fmt)


def test_missing_file_unknown_format_and_not_utf8(tmp_path):
    with pytest.raises(DataError, match=r"caption file .*nothere\.json not found"):
        read_caption_set(tmp_path / "nothere.json")
    with pytest.raises(ConfigError, match="caption format must be one of"):
        read_caption_set(tmp_path / "x.json", format="hamm")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("path,caption\na.jpg,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.csv: not UTF-8 text"):
        read_caption_set(latin)


# ----------------------------------------------------------------------------- the join
def _captions(tmp_path, mapping: dict, name: str = "caps.json"):
    return read_caption_set(_write(tmp_path / name, json.dumps(mapping)))


def test_join_replace_counts_exactly(tmp_path):
    split = _split([("Part1/1/1.jpg", 1), ("Part1/1/2.jpg", 1), ("Part1/2/1.jpg", 2), ("Part1/3/1.jpg", 3)])
    caps = _captions(tmp_path, {
        "Part1/1/1.jpg": ["a", "b", "c"],
        f"{ROOT}/Part1/1/2.jpg": ["d"],          # absolute, inside the root
        "Part1\\2\\1.jpg": ["e", " ", "f"],      # backslashes; one blank
        "Part9/9/9.jpg": ["stray"],
        "../synth/Part1/3/1.jpg": ["outside"],   # lexically outside: matches nothing
    })
    joined, report = join_captions(split, caps, unmatched="skip", missing="keep")
    assert [s.captions for s in joined.samples] == [("a", "b", "c"), ("d",), ("e", "f"), ("own Part1/3/1.jpg",)]
    assert [s.person_id for s in joined.samples] == [1, 1, 2, 3]
    assert (report.images, report.matched, report.without, report.kept, report.dropped) == (4, 3, 1, 1, 0)
    assert (report.entries, report.unmatched, report.unmatched_examples) == (5, 2, ("Part9/9/9.jpg", "../synth/Part1/3/1.jpg"))
    assert report.without_examples == ("Part1/3/1.jpg",)
    assert (report.external_captions, report.blank_captions, report.per_image) == (6, 1, (1, 2.0, 3))
    assert report.samples == 4
    text = str(report)
    assert "images matched: 3 of 4" in text
    assert "images without external captions: 1 (1 kept with their own captions, 0 dropped): Part1/3/1.jpg" in text
    assert "external entries matching no image: 2 of 5 (skipped): Part9/9/9.jpg, ../synth/Part1/3/1.jpg" in text
    assert "external captions per matched image: min 1, mean 2.00, max 3 (6 captions; 1 blank skipped)" in text
    assert split.samples[0].captions == ("own Part1/1/1.jpg",)  # the input split is left alone


def test_join_drop_and_append(tmp_path):
    split = _split([("a.jpg", 1), ("b.jpg", 1), ("c.jpg", 2)])
    caps = _captions(tmp_path, {"a.jpg": ["x"], "c.jpg": ["y", "z"]})
    dropped, report = join_captions(split, caps, missing="drop")
    assert [(s.image_path.rsplit("/", 1)[1], s.captions) for s in dropped.samples] == [("a.jpg", ("x",)), ("c.jpg", ("y", "z"))]
    assert (report.matched, report.without, report.kept, report.dropped, report.samples) == (2, 1, 0, 1, 2)
    assert "(0 kept with their own captions, 1 dropped): b.jpg" in str(report)
    appended, report = join_captions(split, caps, mode="append")  # missing='error' does not apply to append
    assert [s.captions for s in appended.samples] == [("own a.jpg", "x"), ("own b.jpg",), ("own c.jpg", "y", "z")]
    assert (report.mode, report.kept, report.samples) == ("append", 1, 3)
    appended, _ = join_captions(split, caps, mode="append", missing="drop")
    assert len(appended.samples) == 2


def test_an_image_listed_twice_gets_the_captions_once(tmp_path):
    split = _split([("a.jpg", 1), ("b.jpg", 2), ("a.jpg", 1)])
    caps = _captions(tmp_path, {"a.jpg": ["x"], "b.jpg": ["y"]})
    replaced, report = join_captions(split, caps)
    assert [s.captions for s in replaced.samples] == [("x",), ("y",)] and report.images == 2
    appended, _ = join_captions(split, caps, mode="append")
    assert [s.captions for s in appended.samples] == [("own a.jpg", "x"), ("own b.jpg", "y"), ("own a.jpg",)]


def test_cuhk_pedes_keys_relative_to_root_or_to_imgs(tmp_path):
    split = _split([("imgs/CUHK01/0001.png", 1), ("imgs/Market/0002.jpg", 2)], dataset="CUHK-PEDES")
    caps = _captions(tmp_path, {"CUHK01/0001.png": ["x"], "imgs/Market/0002.jpg": ["y"]})
    joined, report = join_captions(split, caps)
    assert [s.captions for s in joined.samples] == [("x",), ("y",)] and report.unmatched == 0


def test_case_is_kept():
    split = _split([("Part1/A.jpg", 1)])
    caps = CaptionSet(files=("mem",), formats=("json",))
    caps.add("part1/a.jpg", ["x"], "mem, entry 0")
    with pytest.raises(DataError, match="1 of 1 entries of mem name no image"):
        join_captions(split, caps)


def test_join_by_filename(tmp_path):
    """MLLM4Text-ReID's loader joins LUPerson-MLLM captions by file name (``k.split('/')[-1]``)."""
    split = _split([("LUPerson/part1/a.jpg", 1), ("LUPerson/part2/b.jpg", 2)])
    caps = read_caption_set(_write(tmp_path / "Td-qwen.json", json.dumps(
        {"/data0/someone/LUPerson-MLLM/a.jpg": "qa", "/data0/someone/LUPerson-MLLM/b.jpg": "qb"})))
    with pytest.raises(DataError, match="2 of 2 entries"):
        join_captions(split, caps)
    joined, report = join_captions(split, caps, match="filename")
    assert [s.captions for s in joined.samples] == [("qa",), ("qb",)] and report.match == "filename"
    twins = _split([("p1/a.jpg", 1), ("p2/a.jpg", 2)])
    with pytest.raises(DataError, match=r"two images named 'a\.jpg' .*join by path"):
        join_captions(twins, caps, match="filename", unmatched="skip")


def test_join_errors(tmp_path):
    split = _split([(f"{i}.jpg", i) for i in range(8)])
    stray = {f"x{i}.jpg": ["s"] for i in range(7)}
    caps = _captions(tmp_path, {**{f"{i}.jpg": ["c"] for i in range(8)}, **stray})
    with pytest.raises(DataError, match=r"7 of 15 entries of .*caps\.json name no image of SYNTH-PEDES \(train, root "
                                        r"/data/synth\): 'x0\.jpg' \(.*caps\.json, entry 8 \('x0\.jpg'\)\);.* and 2 more; "
                                        r".*data\.captions_unmatched: skip"):
        join_captions(split, caps)
    partial = _captions(tmp_path, {"0.jpg": ["c"]}, "partial.json")
    with pytest.raises(DataError, match=r"7 of 8 images of SYNTH-PEDES \(train\) have no caption in .*partial\.json: "
                                        r"1\.jpg, 2\.jpg, 3\.jpg, 4\.jpg, 5\.jpg and 2 more; .*data\.captions_missing"):
        join_captions(split, partial)
    none = _captions(tmp_path, {"0.jpg": [" "]}, "blank.json")
    with pytest.raises(DataError, match="no image of SYNTH-PEDES .* is left"):
        join_captions(split, none, missing="drop")
    with pytest.raises(ConfigError, match="mode must be one of 'replace', 'append'"):
        join_captions(split, partial, mode="merge")
    with pytest.raises(ConfigError, match="missing must be one of"):
        join_captions(split, partial, missing="skip")


def test_config_keys_are_typed():
    from plip.training import load_config
    from plip.training.tasks.pretrain import PretrainConfig

    cfg = load_config(PretrainConfig, None, ["data.captions_file=[a.json,b.json]", "data.captions_mode=append"])
    assert cfg.data.captions_file == ["a.json", "b.json"] and cfg.data.captions_mode == "append"
    assert load_config(PretrainConfig, None, ["data.captions_file=c.csv"]).data.captions_file == "c.csv"
    with pytest.raises(ConfigError, match="data.captions_missing"):
        load_config(PretrainConfig, None, ["data.captions_missing=ignore"])


# ----------------------------------------------------------------------------- IAP
def test_attribute_masker_finds_units_in_an_external_caption():
    """A caption set has no attribute field: IAP masks the lexicon words of the caption itself."""
    import torch

    from plip.training.masking import AttributeMasker

    tokenizer = PLIPTokenizer()
    masker = AttributeMasker(tokenizer.hf)
    caption = "A woman with long brown hair wears a denim jacket over a white t-shirt, black jeans and sneakers; she carries a red handbag."
    ids = tokenizer.encode([caption])[0]
    pieces = tokenizer.hf.convert_ids_to_tokens(ids)
    words = ["".join(pieces[p].removeprefix("##") for p in unit) for unit in masker.attribute_units(ids)]
    assert words == ["woman", "long", "brown", "hair", "denim", "jacket", "white", "t-shirt", "black", "jeans",
                     "sneakers", "red", "handbag"]
    masked, target = masker(torch.tensor([ids]), None, 1.0)
    assert int(target.sum()) == sum(len(u) for u in masker.attribute_units(ids))


# ----------------------------------------------------------------------------- end to end
def test_plip_train_pretrain_on_recaptioned_synth_data(tmp_path, monkeypatch, caplog):
    """``plip synth`` + ``plip train pretrain --config pretrain_tiny_synth data.captions_file=...``:
    the report is printed and the training samples hold the external captions (the tokenizer's
    own encoding of them is what the dataset holds)."""
    from plip.app.cli.main import main
    from plip.data.textreid import load_text_reid
    from plip.training.tasks import pretrain

    data = tmp_path / "synth"
    assert main(["synth", "--out", str(data), "--identities", "10", "--images-per-id", "2", "--seed", "5"]) == 0
    train = load_text_reid("synth-pedes", data, "train")
    rel = [s.image_path[len(train.root) + 1:] for s in train.samples]
    rows = [{"file_path": p, "captions": [f"a person number {i} in a red coat", f"black trousers and a bag {i}"]}
            for i, p in enumerate(rel)]
    captions = _write(tmp_path / "external.json", json.dumps(rows))

    seen = []

    class Spy(pretrain.CaptionedImages):
        def __init__(self, samples, *args, **kwargs):
            seen.append(list(samples))
            super().__init__(samples, *args, **kwargs)
            seen.append(self)

    monkeypatch.setattr(pretrain, "CaptionedImages", Spy)
    caplog.set_level(logging.INFO, logger="plip.training")
    code = main(["train", "pretrain", "--config", "pretrain_tiny_synth", f"data.root={data}",
                 f"data.captions_file={captions}", "model.name=tiny", "model.fpn_channels=8", "train.epochs=1",
                 "train.max_steps=2", "train.batch_size=4", "eval.every_epochs=0", "logging.progress=false",
                 "logging.every_steps=1", f"output_dir={tmp_path / 'run'}"])
    assert code == 0
    log = caplog.text
    n = len(rel)
    assert f"images matched: {n} of {n}" in log and "external entries matching no image: 0 of" in log
    assert "external captions per matched image: min 2, mean 2.00, max 2" in log
    samples, dataset = seen
    assert [s.captions for s in samples] == [tuple(r["captions"]) for r in rows]
    tokenizer = PLIPTokenizer()
    expected = [tuple(tuple(t) for t in tokenizer.encode(r["captions"])) for r in rows]
    assert [item.captions for item in dataset.items] == expected
    steps = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any(s["kind"] == "step" and s["iap"] > 0 for s in steps)


@pytest.mark.parametrize("task_name", ["pretrain", "finetune"])
@pytest.mark.parametrize("key, value, message", [
    ("data.captions_file", "{tmp}/nothere.json", r"config key 'data.captions_file': caption file .*nothere\.json not found"),
    ("data.root", "{tmp}/no_dataset", r"config key 'data.root': .*no_dataset does not exist"),
])
def test_missing_inputs_fail_before_the_model_is_built(tmp_path, monkeypatch, capsys, task_name, key, value, message):
    """A missing caption file or dataset is reported by ``plip train`` before any model is built
    (the engine calls ``Task.check_inputs`` first): exit status 2, the key and path named."""
    import re

    from plip.app.cli.main import main
    from plip.training.tasks import finetune, pretrain

    for module in (pretrain, finetune):
        monkeypatch.setattr(module, "build_plip_model", lambda *a, **k: pytest.fail("the model was built"))
    (tmp_path / "data").mkdir()
    settings = {"data.root": str(tmp_path / "data"), key: value.format(tmp=tmp_path)}
    recipe = "pretrain_tiny_synth" if task_name == "pretrain" else "finetune_cmpmc"
    code = main(["train", task_name, "--config", recipe, *(f"{k}={v}" for k, v in settings.items()),
                 "logging.progress=false", f"output_dir={tmp_path / 'run'}"])
    assert code == 2
    assert re.search(message, capsys.readouterr().err)


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    from plip.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("synth") / "persons"
    generate_dataset(root, identities=10, images_per_id=2, seed=7, workers=0, progress=False)
    return root


def test_finetune_counts_identities_after_the_join_and_evaluation_keeps_its_captions(synth_root, tmp_path, monkeypatch):
    """CMPM/C fine-tuning reads the joined split (``drop`` leaves out people); evaluation reads
    the dataset's own captions (its split compared with ``load_text_reid``'s)."""
    from plip.data.textreid import load_text_reid
    from plip.evaluation import text_retrieval
    from plip.training import load_config
    from plip.training.tasks._plip import evaluate_plip
    from plip.training.tasks.finetune import FinetuneConfig, FinetuneTask

    train = load_text_reid("cuhk-pedes", synth_root, "train")
    keep = sorted({s.person_id for s in train.samples})[:3]
    rows = [{"path": s.image_path[len(train.root) + 1:], "caption": f"person {s.person_id} in a blue coat"}
            for s in train.samples if s.person_id in keep]
    captions = _write(tmp_path / "some.json", json.dumps(rows))
    cfg = load_config(FinetuneConfig, None, [
        "model.name=tiny", "model.freeze_text_layers=0", "data.image_size=[64,32]", "data.dataset=cuhk-pedes",
        f"data.root={synth_root}", f"data.captions_file={captions}", "data.captions_missing=drop", "data.num_workers=0",
    ])
    task = FinetuneTask()
    task.build_model(cfg)
    assert task._num_classes == 3
    data = task.build_train_data(cfg)
    assert {c for s in data.dataset.items for c in s.captions} == {
        tuple(t) for t in PLIPTokenizer().encode([r["caption"] for r in rows])}

    seen = []
    monkeypatch.setattr(text_retrieval, "evaluate_text_to_image",
                        lambda model, split, **kw: seen.append(split) or {"t2i": {"R@1": 0.0}})
    cfg.data.eval_split = "test"
    evaluate_plip(None, cfg)
    own = load_text_reid("cuhk-pedes", synth_root, "test")
    assert [s.captions for s in seen[0].samples] == [s.captions for s in own.samples]
