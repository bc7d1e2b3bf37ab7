"""Zero-shot attribute recognition and description (plip.inference.zero_shot*).

Oracles: the schemas' columns are the benchmarks' label lists (plip.data.attribute_names);
probabilities are recomputed by hand from ``encode_image`` / ``encode_text`` (softmax of
``scale * cosine + bias`` over an attribute's values, with the mean-of-normalised prompt
embeddings); metrics against ``evaluate_attributes`` on the decisions; the synthetic
persons' ground truth comes from their generator's own descriptions; "above chance" is a
label-permutation test (the trained model's mA must beat every one of 200 shuffles) plus a
randomly initialised model of the same size as the floor.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

import plip
from plip.data.attribute_names import ATTRIBUTE_NAMES
from plip.data.captions import Garment, Item, PersonDescription, prompt_caption
from plip.errors import ConfigError, DataError
from plip.evaluation.attribute_metrics import evaluate_attributes, pedestrian_metrics
from plip.inference.zero_shot import (
    DEFAULT_LOGIT_SCALE,
    AttributePrediction,
    Calibration,
    calibrate,
    classify_attributes,
    prompt_embeddings,
)
from plip.inference.zero_shot_facts import contains_fragment, merge_fragments, parse_fact
from plip.inference.zero_shot_schema import BINARY, GROUP, column_labels, get_schema, list_schemas, load_schema


def _render(person, shot, seed=11):
    from plip.data.synthetic import render_image, sample_variation

    return render_image(person, sample_variation(np.random.default_rng([seed, person.person_id, shot])))


@pytest.fixture(scope="module")
def trained():
    return plip.load("plip-tiny-synth")


@pytest.fixture(scope="module")
def random_model(trained):
    torch.manual_seed(0)
    return plip.create_model(trained.config).eval()


@pytest.fixture(scope="module")
def people():
    from plip.data.synthetic import sample_identities

    group = sample_identities(360, seed=123)
    return group, [_render(p, 0) for p in group]


# -- schemas ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pa100k", "peta", "rapv1", "rapv2"])
def test_dataset_schemas_predict_exactly_the_benchmark_columns(name):
    schema = get_schema(name)
    # every evaluated label once (groups list their labels together, so the order may differ)
    assert sorted(schema.columns) == sorted(ATTRIBUTE_NAMES[name]) and len(set(schema.columns)) == len(schema.columns)
    if name == "pa100k":
        assert schema.columns == ATTRIBUTE_NAMES[name]  # its groups are contiguous
    for attribute in schema.attributes:
        assert all(v.prompts for v in attribute.values)
        if attribute.kind == BINARY:
            assert len(attribute.values) == 2 and attribute.values[1].column is None
        else:
            assert attribute.kind == GROUP and len(attribute.values) >= 2 and all(v.column for v in attribute.values)


def test_schema_names_aliases_and_groups():
    assert {"pa100k", "peta", "rapv1", "rapv2", "person"} <= set(list_schemas())
    assert get_schema("RAP") is get_schema("rapv1") and get_schema("rap2") is get_schema("rapv2")
    pa = get_schema("pa100k")
    assert pa.attribute("lower garment").columns == ("Trousers", "Shorts", "Skirt&Dress")
    assert pa.attribute("Shorts").name == "lower garment"  # found by its column
    female = pa.attribute("Female")
    assert female.values[1].fragment == PersonDescription(gender="male")  # Female = 0 states "male"
    assert "woman" in female.values[0].prompts[0]
    with pytest.raises(ConfigError, match="no attribute or column 'Wings'"):
        pa.select(["Female", "Wings"])
    with pytest.raises(ConfigError, match="unknown attribute schema 'pa1000k'"):
        get_schema("pa1000k")


def test_custom_yaml_schema(tmp_path):
    path = tmp_path / "bags.yaml"
    path.write_text(
        "name: bags\nbase: pa100k\ntemplates: ['{}.', 'a photo of {}.']\nattributes:\n"
        "  - Backpack\n"
        "  - name: umbrella\n    positive: [a person holding an umbrella]\n    fact: belongings=umbrella\n"
        "  - name: top colour\n    values:\n      red: [a person in a red top]\n      blue: {fact: upper.colour=blue}\n"
    )
    schema = load_schema(path)
    assert schema.name == "bags" and schema.columns == ("Backpack", "umbrella", "top colour=red", "top colour=blue")
    umbrella = schema.attribute("umbrella")
    assert umbrella.values[0].prompts == ("a person holding an umbrella.", "a photo of a person holding an umbrella.")
    assert umbrella.values[0].fragment == PersonDescription(belongings=(Item("umbrella"),))
    blue = schema.attribute("top colour").values[1]
    assert blue.prompts[0] == prompt_caption(PersonDescription(upper=Garment(colour="blue")))
    assert get_schema(str(path)) == schema
    json_path = tmp_path / "s.json"
    json_path.write_text(json.dumps({"attributes": [{"name": "cap", "positive": "a person with a cap"}]}))
    assert load_schema(json_path).columns == ("cap",)


@pytest.mark.parametrize(
    "text, match",
    [
        ("attributes: []", "'attributes' must be a non-empty list"),
        ("attributes: [Backpack]", "names a built-in attribute, but the schema has no 'base'"),
        ("base: pa100k\nattributes: [Wings]", "attributes\\[0\\]: schema 'pa100k' has no attribute or column 'Wings'"),
        ("attributes:\n  - name: x\n    positive: [p]\n    colour: red", "unknown key\\(s\\) \\['colour'\\]"),
        ("attributes:\n  - name: x\n    fact: shirt.colour=red", "unknown fact field 'shirt.colour'"),
        ("attributes:\n  - name: x\n    fact: gender=robot", "gender must be one of"),
        ("attributes:\n  - name: x\n    values: {a: [p]}", "at least two value names"),
        ("attributes:\n  - name: x\n    positive: [p]\n    templates: ['no placeholder']", "exactly one '\\{\\}'"),
        ("attributes:\n  - name: x\n    positive: [p]\n  - name: x\n    positive: [q]", "'x' appears twice"),
        ("attributes:\n  - name: x\n", "needs 'positive' phrases or a 'fact'"),
        ("attributes: [\n", "not valid YAML"),
        ("- just a list", "expected a mapping"),
    ],
)
def test_bad_schema_files_are_clear_errors(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        load_schema(path)
    assert str(path) in str(info.value)  # names the file


def test_facts_parse_merge_and_match():
    assert parse_fact("upper.colour=Gray") == PersonDescription(upper=Garment(colour="grey"))
    merged = merge_fragments([parse_fact("gender=female"), parse_fact("gender=male"), parse_fact("lower.kind=dress"),
                              parse_fact("upper.colour=red"), parse_fact("belongings=backpack")])
    assert merged.gender == "female"  # the first (most confident) wins
    assert merged.wears_dress and merged.lower.colour == "red"  # a dress covers both halves
    person = PersonDescription(gender="male", upper=Garment("t-shirt", "red", "short"), belongings=(Item("backpack", "blue"),))
    assert contains_fragment(person, parse_fact("upper.colour=red"))
    assert contains_fragment(person, parse_fact("belongings=backpack"))  # items by kind, colour aside
    assert not contains_fragment(person, parse_fact("upper.sleeve=long"))


# -- classification ---------------------------------------------------------------------------


def _schema_file(tmp_path):
    path = tmp_path / "mini.json"
    path.write_text(json.dumps({"name": "mini", "templates": ["{}.", "the image shows {}."], "attributes": [
        {"name": "bag", "positive": ["a person carrying a backpack"], "negative": ["a person"]},
        {"name": "top", "values": {"red": ["a person in a red top"], "blue": ["a person in a blue top"],
                                   "black": ["a person in a black top"]}},
    ]}))  # fmt: skip
    return path


def test_probabilities_match_a_hand_computation(trained, people, tmp_path):
    _, images = people
    images = images[:6]
    schema = load_schema(_schema_file(tmp_path))
    prediction = classify_attributes(trained, images, schema)
    image = trained.encode_image(images)

    def value_embedding(texts):
        mean = trained.encode_text(texts).mean(0)
        return mean / mean.norm()

    bag = torch.stack([value_embedding(["a person carrying a backpack.", "the image shows a person carrying a backpack."]),
                       value_embedding(["a person.", "the image shows a person."])])  # fmt: skip
    top = torch.stack([value_embedding([f"a person in a {c} top.", f"the image shows a person in a {c} top."])
                       for c in ("red", "blue", "black")])  # fmt: skip
    expected_bag = (DEFAULT_LOGIT_SCALE * image @ bag.T).softmax(1)
    expected_top = (DEFAULT_LOGIT_SCALE * image @ top.T).softmax(1)
    torch.testing.assert_close(prediction.distributions["bag"], expected_bag, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(prediction.probs, torch.cat([expected_bag[:, :1], expected_top], 1), atol=1e-5, rtol=1e-4)
    assert prediction.columns == ("bag", "top=red", "top=blue", "top=black")
    decisions = prediction.decisions()
    assert torch.equal(decisions[:, 0].bool(), expected_bag[:, 0] > 0.5)
    assert (decisions[:, 1:].sum(1) == 1).all() and torch.equal(decisions[:, 1:].argmax(1), expected_top.argmax(1))
    # a calibration shifts the logits by its biases and rescales them
    cal = Calibration("mini", 20.0, {"bag": (1.5, 0.0), "top": (0.0, -2.0, 0.5)})
    calibrated = classify_attributes(trained, images, schema, calibration=cal)
    torch.testing.assert_close(calibrated.distributions["top"], (20.0 * image @ top.T + torch.tensor([0.0, -2.0, 0.5])).softmax(1),
                               atol=1e-5, rtol=1e-4)  # fmt: skip
    with pytest.raises(ConfigError, match="attribute 'top' has 2 biases"):
        classify_attributes(trained, images, schema, calibration=Calibration("mini", 20.0, {"top": (0.0, 1.0)}))


def test_prompts_are_encoded_once_per_schema_and_images_once(trained, people, tmp_path, monkeypatch):
    _, images = people
    schema = load_schema(_schema_file(tmp_path))
    calls = {"text": 0, "image": 0}
    model = plip.create_model(trained.config)
    model.load_state_dict(trained.state_dict())
    encode_text, encode_image = model.encode_text, model.encode_image

    def counting_text(texts, **kw):
        calls["text"] += len(texts)
        return encode_text(texts, **kw)

    def counting_image(items, **kw):
        calls["image"] += len(items)
        return encode_image(items, **kw)

    monkeypatch.setattr(model, "encode_text", counting_text)
    monkeypatch.setattr(model, "encode_image", counting_image)
    num_prompts = sum(len(v.prompts) for a in schema.attributes for v in a.values)
    first = classify_attributes(model, images[:5], schema)
    assert calls == {"text": num_prompts, "image": 5}
    second = model.classify_attributes(images[:7], schema)  # the PLIPModel method delegates
    assert calls == {"text": num_prompts, "image": 12}  # no text encode the second time
    torch.testing.assert_close(second.probs[:5], first.probs)
    with torch.no_grad():
        next(model.text.parameters()).add_(0.01)  # new text weights: the cache is stale
    prompt_embeddings(model, schema)
    assert calls["text"] == 2 * num_prompts


def test_bad_inputs_are_clear_errors(trained):
    with pytest.raises(DataError, match="no images"):
        classify_attributes(trained, [], "pa100k")
    with pytest.raises(DataError, match="image_embeddings must be"):
        classify_attributes(trained, image_embeddings=torch.zeros(3, 5), schema="pa100k")
    with pytest.raises(ConfigError, match="predicts no column"):
        calibrate(trained, image_embeddings=torch.randn(4, trained.embed_dim), labels=np.zeros((4, 1)),
                  schema="pa100k", columns=["Wings"])  # fmt: skip


def test_calibration_fits_and_round_trips(trained, people, tmp_path):
    """Fitted on labelled persons, the class-balanced loss is lower than the default's."""
    group, images = people
    schema = get_schema("person")
    labels = np.array(column_labels(schema, [p.description() for p in group[:120]]))
    emb = trained.encode_image(images[:120])
    cal = calibrate(trained, image_embeddings=emb, labels=labels, schema=schema)
    constant = {c for c, col in zip(schema.columns, labels.T) if col.min() == col.max()}
    assert set(cal.columns_fitted) == set(schema.columns) - constant and cal.images == 120

    def balanced_bce(calibration):
        probs = classify_attributes(trained, image_embeddings=emb, schema=schema, calibration=calibration).probs.numpy()
        keep = [j for j, c in enumerate(schema.columns) if c in cal.columns_fitted]
        p, y = np.clip(probs[:, keep], 1e-6, 1 - 1e-6), labels[:, keep]
        rate = y.mean(0)
        return float(np.mean(-(y * np.log(p) * 0.5 / rate + (1 - y) * np.log(1 - p) * 0.5 / (1 - rate))))

    assert balanced_bce(cal) < balanced_bce(None)
    cal.save(tmp_path / "cal.json")
    assert Calibration.load(tmp_path / "cal.json") == cal
    (tmp_path / "junk.json").write_text("{}")
    with pytest.raises(ConfigError, match="not a zero-shot calibration file"):
        Calibration.load(tmp_path / "junk.json")


def test_trained_model_recognises_its_attributes_well_above_chance(trained, random_model, people):
    """plip-tiny-synth on synthetic persons it never saw (ids drawn with another seed), person schema."""
    group, images = people
    schema = get_schema("person")
    labels = np.array(column_labels(schema, [p.description() for p in group]))
    keep = (labels.sum(0) >= 10) & (labels.sum(0) <= len(labels) - 10)
    results = {}
    for name, model in (("trained", trained), ("random", random_model)):
        decisions = classify_attributes(model, images, schema).decisions().numpy()[:, keep]
        results[name] = decisions
    observed = pedestrian_metrics(labels[:, keep], results["trained"])["mA"]
    floor = pedestrian_metrics(labels[:, keep], results["random"])["mA"]
    rng = np.random.default_rng(0)
    shuffled = [pedestrian_metrics(labels[rng.permutation(len(labels))][:, keep], results["trained"])["mA"]
                for _ in range(200)]  # fmt: skip
    assert observed > max(shuffled)  # p < 1/200 under "predictions unrelated to the labels"
    assert observed - floor > 0.08, (observed, floor)
    assert abs(floor - 0.5) < 0.05


def test_describe_writes_the_caption_of_the_most_probable_values(trained, people):
    schema = get_schema("person")
    n = 2
    dists = {}
    for attribute in schema.attributes:
        d = torch.full((n, len(attribute.values)), 0.1 / max(1, len(attribute.values) - 1))
        d[:, 0] = 0.9  # the first value of every attribute
        dists[attribute.name] = d
    prediction = AttributePrediction(schema, dists)
    expected = PersonDescription(
        gender="male", hair_length="short", hair_colour="black", head_items=(Item("cap"),),
        upper=Garment("t-shirt", "black", "short"), lower=Garment("trousers", "black"), shoes=Garment(colour="black"),
        belongings=(Item("backpack"),),
    )  # fmt: skip
    assert prediction.descriptions() == [expected, expected]
    assert prediction.captions()[0] == prompt_caption(expected)
    _, images = people
    texts = trained.describe(images[:3])
    assert len(texts) == 3 and all(t.startswith(("A ", "An ", "This is")) and t.endswith(".") for t in texts)


# -- command line -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crops(tmp_path_factory, people):
    folder = tmp_path_factory.mktemp("crops")
    for i, image in enumerate(people[1][:6]):
        image.save(folder / f"p{i}.jpg")
    return folder


def test_plip_attributes_writes_the_api_probabilities(trained, crops, tmp_path, capsys):
    from plip.app.cli.main import main

    out = tmp_path / "attrs.csv"
    assert main(["attributes", "--model", "plip-tiny-synth", "--images", str(crops), "--schema", "pa100k",
                 "--out", str(out), "--workers", "0", "--no-progress"]) == 0  # fmt: skip
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["image", *ATTRIBUTE_NAMES["pa100k"]]
    assert [r[0] for r in rows[1:]] == [f"p{i}.jpg" for i in range(6)]
    expected = classify_attributes(trained, [str(crops / f"p{i}.jpg") for i in range(6)], "pa100k").probs.numpy()
    np.testing.assert_allclose(np.array([[float(v) for v in r[1:]] for r in rows[1:]]), expected, atol=1e-4)


def test_plip_describe_and_errors(trained, crops, tmp_path, capsys):
    from plip.app.cli.main import main

    out = tmp_path / "d.json"
    assert main(["describe", "--model", "plip-tiny-synth", "--images", str(crops), "--out", str(out),
                 "--workers", "0", "--no-progress"]) == 0  # fmt: skip
    entries = json.loads(out.read_text())
    expected = trained.describe([str(crops / f"p{i}.jpg") for i in range(6)])
    assert [e["description"] for e in entries] == expected
    assert set(entries[0]["attributes"]) == {a.name for a in get_schema("person").attributes}
    assert f"p0.jpg\t{expected[0]}" in capsys.readouterr().out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["describe", "--model", "plip-tiny-synth", "--images", str(empty)]) == 2
    assert "no images found" in capsys.readouterr().err
    assert main(["attributes", "--model", "plip-tiny-synth", "--images", str(crops), "--schema", "nope",
                 "--out", str(tmp_path / "x.csv")]) == 2  # fmt: skip
    assert "unknown attribute schema 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


@pytest.fixture(scope="module")
def pa100k_folder(tmp_path_factory):
    """A PA-100K-format folder (annotation.mat + data/) of 60 synthetic persons, all 26 columns
    (``plip synth --format pa100k``): 30 train, 6 val, 24 test persons, one image each."""
    from plip.data.synthetic.formats import write_pa100k

    root = tmp_path_factory.mktemp("pa100k") / "pa100k"
    write_pa100k(root, identities=60, images_per_id=1, seed=9, split=(0.5, 0.1, 0.4), progress=False)
    return root


def test_plip_eval_zero_shot_on_pa100k_format(trained, pa100k_folder, tmp_path, capsys):
    from plip.app.cli.main import main
    from plip.data.attributes import read_pa100k

    out = tmp_path / "zs.json"
    args = ["eval", "--model", "plip-tiny-synth", "--dataset", "pa100k", "--root", str(pa100k_folder), "--zero-shot",
            "--workers", "0", "--no-progress"]  # fmt: skip
    assert main([*args, "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["zero_shot"] and report["counts"] == {"images": 24, "attributes": 26}
    dataset = read_pa100k(pa100k_folder)
    paths, labels = dataset.split("test")
    decisions = classify_attributes(trained, [str(p) for p in paths], "pa100k").decisions().numpy()
    expected = evaluate_attributes(decisions.astype(float), labels, attribute_names=dataset.attribute_names)
    for key in ("mA", "accuracy", "precision", "recall", "f1"):
        assert report["metrics"][key] == pytest.approx(100 * expected[key])
    assert report["per_attribute_mA"]["Female"] == pytest.approx(100 * expected["per_attribute_mA"]["Female"])
    assert "mA per attribute: Female" in capsys.readouterr().out
    assert main([*args, "--calibrate", "16", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["settings"]["calibrate_images"] == 16 and report["calibration"]["images"] == 16
    assert main([*args, "--schema", "peta"]) == 2
    assert "schema 'peta' predicts no column(s)" in capsys.readouterr().err
    assert main(["eval", "--model", "plip-tiny-synth", "--dataset", "pa100k", "--root", str(pa100k_folder),
                 "--schema", "pa100k"]) == 2  # fmt: skip
    assert "--schema applies to --zero-shot only" in capsys.readouterr().err
    assert main(["eval", "--model", "plip-tiny-synth", "--dataset", "cuhk-pedes", "--root", str(tmp_path), "--zero-shot"]) == 2
    assert "--zero-shot applies to attribute recognition only" in capsys.readouterr().err


def test_evaluate_zero_shot_puts_grouped_columns_back_in_dataset_order(trained, people, tmp_path):
    """PETA's schema lists its groups' labels together; the metrics follow the dataset's columns."""
    from plip.data.attributes import AttributeDataset
    from plip.evaluation.zero_shot_eval import evaluate_zero_shot

    names = list(ATTRIBUTE_NAMES["peta"])
    schema = get_schema("peta")
    assert list(schema.columns) != names
    for i, image in enumerate(people[1][:8]):
        image.save(tmp_path / f"{i}.png")
    labels = np.random.default_rng(3).integers(0, 2, size=(8, len(names))).astype(np.uint8)
    dataset = AttributeDataset("peta", tmp_path, [f"{i}.png" for i in range(8)], labels, names,
                               {"train": np.arange(4), "test": np.arange(4, 8)})  # fmt: skip
    result = evaluate_zero_shot(trained, dataset, "test")
    decisions = classify_attributes(trained, [str(tmp_path / f"{i}.png") for i in range(4, 8)], "peta").decisions()
    reordered = decisions.numpy()[:, [schema.columns.index(n) for n in names]]
    expected = evaluate_attributes(reordered.astype(float), labels[4:], attribute_names=names)
    assert result["mA"] == pytest.approx(expected["mA"]) and result["per_attribute_mA"] == expected["per_attribute_mA"]
    with pytest.raises(ConfigError, match="would leak"):
        evaluate_zero_shot(trained, dataset, "test", calibrate_images=2, calibrate_split="test")
    calibrated = evaluate_zero_shot(trained, dataset, "test", calibrate_images=4)
    assert calibrated["calibration"]["images"] == 4
