"""``plip demo`` end to end on a tiny model and a tiny generated gallery.

References: the page, the contact sheet and ``demo.json`` are checked against the printed
table (the same hits must be marked everywhere); the marks against the person ids that
``plip synth`` encodes in each image path (``PartK/<id>/<n>.jpg``); the metrics against
:func:`plip.evaluation.text_retrieval.evaluate_text_to_image` on the same split; the
caption-style labels against the fixed openings of the generator's style templates.
"""

from __future__ import annotations

import json
import re
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from plip.app.cli.main import main
from plip.data.synthetic import generate_dataset
from plip.data.textreid import load_text_reid
from plip.app.demo import detect_dataset, run_demo, select_queries, synthetic_caption_styles
from plip.evaluation.text_retrieval import evaluate_text_to_image
from plip.app.visualize import HIT_COLOUR, MISS_COLOUR, UNKNOWN_COLOUR, ContactSheetLayout

IDS, SHOTS = 12, 2  # a gallery of 24 images, about 60 captions: a few seconds


class DemoPage(HTMLParser):
    """Sections of demo.html: per query, the (data-correct, img src) of each figure."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[list[list[str]]] = []
        self.stack: list[str] = []
        self.metrics_cells: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag not in ("img", "meta", "br"):
            self.stack.append(tag)
        if tag == "section":
            self.sections.append([])
        elif tag == "figure":
            self.sections[-1].append([attrs["data-correct"], ""])
        elif tag == "img":
            self.sections[-1][-1][1] = attrs["src"]
        elif tag in ("td", "th"):
            self._in_cell = True

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}> after {self.stack}"
        self.stack.pop()
        self._in_cell = False

    def handle_data(self, data):
        if self._in_cell:
            self.metrics_cells.append(data)


def parse_page(path: Path) -> DemoPage:
    page = DemoPage()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    assert page.stack == [], f"unclosed tags {page.stack}"
    return page


TABLE_ROW = re.compile(r"^\s*(\d+)\s+(\S+)\s+(\S+)\s+(hit@\d+|miss|-)\s+(.*)$")


def parse_table(stdout: str) -> list[dict]:
    rows = []
    for line in stdout.splitlines():
        m = TABLE_ROW.match(line)
        if m and not line.strip().startswith("#"):
            labels = m.group(5).split()
            rows.append({"kind": m.group(2), "person": m.group(3), "result": m.group(4),
                         "marks": [lab.startswith("*") for lab in labels], "labels": [lab.lstrip("*") for lab in labels]})
    return rows


def parse_metrics(stdout: str) -> dict[str, tuple[float, float]]:
    out = {}
    for line in stdout.splitlines():
        m = re.match(r"^(R@\d+|mAP)\s+([\d.]+)\s+([\d.]+)\s+[\d.]+x$", line)
        if m:
            out[m.group(1)] = (float(m.group(2)), float(m.group(3)))
    return out


def sheet_marks(path: Path, rows: int, columns: int) -> list[list[str]]:
    """Border colour of every thumbnail cell of a contact sheet, as hit / miss / unknown."""
    image = Image.open(path).convert("RGB")
    layout = ContactSheetLayout(rows=rows, columns=columns, thumb_size=(128, 64))
    assert image.size == layout.size, "the sheet's size is not that of one row per query"
    names = {HIT_COLOUR: "hit", MISS_COLOUR: "miss", UNKNOWN_COLOUR: "unknown", (255, 255, 255): "empty"}
    out = []
    for r in range(rows):
        line = []
        for c in range(columns):
            left, top, _, _ = layout.cell_box(r, c)
            line.append(names[image.getpixel((left + 1, top + 1))])
        out.append(line)
    return out


def person_of(path: str) -> int:
    """``plip synth`` stores image n of person i as ``PartK/<i>/<n>.jpg``."""
    return int(Path(path).parent.name)


def test_demo_cli_end_to_end(tiny_folder, tmp_path, capsys):
    out = tmp_path / "demo_out"
    argv = ["demo", "--model", str(tiny_folder), "--identities", str(IDS), "--images-per-id", str(SHOTS),
            "--seed", "7", "--queries", "6", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    table = parse_table(stdout)
    assert len(table) == 6

    # The page: well formed, one section per query, every image exists, marks as in the table.
    page = parse_page(out / "demo.html")
    assert len(page.sections) == len(table)
    for section, row in zip(page.sections, table):
        assert len(section) == 5
        assert [correct == "hit" for correct, _ in section] == row["marks"]
        for (correct, src), label in zip(section, row["labels"]):
            assert not Path(src).is_absolute() and (out / src).is_file(), src
            assert person_of(src) == int(label)
            assert (correct == "hit") == (person_of(src) == int(row["person"]))
        first = next((k + 1 for k, m in enumerate(row["marks"]) if m), None)
        assert row["result"] == (f"hit@{first}" if first else "miss")

    # The contact sheet: one row per query, border colours as in the table.
    marks = sheet_marks(out / "demo_contact_sheet.png", len(table), 5)
    assert marks == [["hit" if m else "miss" for m in row["marks"]] for row in table]

    # The metrics: those of the evaluator on the same split (every caption of the gallery).
    import plip

    split = load_text_reid("synth-pedes", out / "gallery", "all")
    reference = evaluate_text_to_image(plip.load(tiny_folder), split, ks=(1, 5, 10))["t2i"]
    printed = parse_metrics(stdout)
    assert set(printed) == {"R@1", "R@5", "R@10", "mAP"}
    report = json.loads((out / "demo.json").read_text())
    for key, (model_value, chance_value) in printed.items():
        assert model_value == pytest.approx(reference[key], abs=0.006)
        assert report["metrics"][key] == pytest.approx(reference[key], abs=1e-9)
        assert chance_value == pytest.approx(report["chance"][key], abs=0.006)
    # Chance R@1 by its definition: mean over captions of (#images of its person) / (gallery size).
    queries, gallery = split.queries(), split.gallery()
    expected = np.mean([(gallery.person_ids == p).sum() / len(gallery) for p in queries.person_ids])
    assert report["chance"]["R@1"] == pytest.approx(100 * expected)
    assert report["counts"]["captions"] == len(queries) and report["counts"]["images"] == IDS * SHOTS


class NoisyOracle:
    """Embeds an image as its person's one-hot vector; a caption as its person's, except
    every third caption (by CRC of its text), which points at the next person: a model
    with known hits and misses."""

    def __init__(self, caption_person: dict[str, int], num_persons: int):
        self.caption_person, self.n = caption_person, num_persons
        self.training = False

    def _one_hot(self, persons):
        out = torch.zeros(len(persons), self.n + 1)
        out[torch.arange(len(persons)), torch.tensor(persons)] = 1.0
        return out

    def encode_image(self, images, **kwargs):
        return self._one_hot([person_of(p) for p in images])

    def encode_text(self, texts, **kwargs):
        persons = []
        for t in texts:
            p = self.caption_person[t]
            persons.append(p % self.n + 1 if zlib.crc32(t.encode()) % 3 == 0 else p)
        return self._one_hot(persons)

    def eval(self):
        return self


def test_marks_follow_person_ids_with_hits_and_misses(tmp_path):
    """With a model whose right and wrong answers are known, the marks, results and
    metrics follow the person ids; the queries are the generator's own, deterministic."""
    reference_root = tmp_path / "same_seed"
    generate_dataset(reference_root, identities=IDS, images_per_id=SHOTS, seed=11, progress=False, workers=0)
    entries = json.loads((reference_root / "synthpedes_dataset.json").read_text())
    caption_person = {c: e["id"] for e in entries for c in e["captions"] + [e["prompt_caption"]]}
    model = NoisyOracle(caption_person, IDS)

    logs: list[str] = []
    report = run_demo(model, tmp_path / "out", identities=IDS, images_per_id=SHOTS, seed=11, num_queries=8,
                      progress=False, log=logs.append)
    assert len(report.rows) == 8
    seen = {True: 0, False: 0}
    for row in report.rows:
        q = row.extra["query"]
        assert q.text in caption_person and caption_person[q.text] == q.person_id
        for hit in row.hits:
            assert Path(hit.image_path).is_file()
            assert hit.correct == (person_of(hit.image_path) == q.person_id)
            seen[hit.correct] += 1
        wrong = zlib.crc32(q.text.encode()) % 3 == 0
        assert row.hits[0].correct is (not wrong)
    assert seen[True] and seen[False], "the check needs both hits and misses"

    split = load_text_reid("synth-pedes", tmp_path / "out" / "gallery", "all")
    expected = evaluate_text_to_image(model, split, ks=(1, 5, 10))["t2i"]
    assert report.metrics == {k: expected[k] for k in ("R@1", "R@5", "R@10", "mAP")}
    # Same seed, same gallery: the generated captions are the reference folder's.
    assert sorted(split.queries().captions) == sorted(c for e in entries for c in e["captions"])


def test_caption_styles_are_labelled_and_queries_cover_them(tmp_path):
    """Every caption of a generated folder gets its style; each style has a fixed opening or
    phrase in plip.data.captions; the picked queries are of distinct persons and cover all
    five styles plus the prompt."""
    root = tmp_path / "synth"
    generate_dataset(root, identities=10, images_per_id=3, seed=3, progress=False, workers=0)
    styles = synthetic_caption_styles(root)
    entries = json.loads((root / "synthpedes_dataset.json").read_text())
    assert len(styles) == len({(e["id"], c) for e in entries for c in e["captions"]})
    for (_, text), style in styles.items():
        if style == "detailed":
            assert re.match(r"(This is|The image shows|We can see) ", text), text
        elif style == "passive" and " worn by " not in text:  # no garment: written as compact
            assert not text.startswith(("This is", "The image shows", "We can see", "Wearing ")), text
        elif style == "compact":
            assert text.startswith(("A ", "An ")) and " worn by " not in text, text
        elif style == "narrative":
            assert text.startswith(("The ", "This ")), text
        elif style == "bottom-up":
            assert " worn by " not in text and not text.startswith(("This is", "The image", "We can")), text

    split = load_text_reid("synth-pedes", root, "all")
    prompts = {e["id"]: e["prompt_caption"] for e in entries}
    picked = select_queries(split, 6, styles, prompts)
    assert [q.kind for q in picked][-1] == "prompt"
    assert {q.kind for q in picked[:-1]} == {"narrative", "compact", "detailed", "bottom-up", "passive"}
    assert len({q.person_id for q in picked}) == 6
    assert picked == select_queries(split, 6, styles, prompts)
    # Without labels: still distinct persons, kind "caption".
    plain = select_queries(split, 4)
    assert [q.kind for q in plain] == ["caption"] * 4 and len({q.person_id for q in plain}) == 4


def test_plain_folder_with_queries_and_errors(tiny_folder, tmp_path, capsys):
    """A folder of images: retrieval only (no marks, no metrics); without --query, an
    output folder the demo did not write, or a missing gallery: exit 2 with the reason."""
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (64, 32, 3), dtype=np.uint8)).save(photos / f"p{i}.png")
    out = tmp_path / "out"
    assert main(["demo", "--model", str(tiny_folder), "--gallery", str(photos), "--out", str(out), "--no-progress",
                 "--query", "a man in a red coat", "-q", "a woman with a bag"]) == 0
    stdout = capsys.readouterr().out
    assert "R@1" not in stdout
    page = parse_page(out / "demo.html")
    assert len(page.sections) == 2 and all(len(s) == 3 for s in page.sections)
    assert {c for s in page.sections for c, _ in s} == {"unknown"}
    assert all((out / src).resolve() == (photos / Path(src).name).resolve() for s in page.sections for _, src in s)
    assert sheet_marks(out / "demo_contact_sheet.png", 2, 5) == [["unknown"] * 3 + ["empty"] * 2] * 2

    assert main(["demo", "--model", str(tiny_folder), "--gallery", str(photos), "--out", str(tmp_path / "o2")]) == 2
    assert "--query" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()
    assert main(["demo", "--model", str(tiny_folder), "--gallery", str(photos), "--out", str(photos), "-q", "x"]) == 2
    assert "did not write" in capsys.readouterr().err
    assert sorted(p.name for p in photos.iterdir()) == ["p0.png", "p1.png", "p2.png"]
    assert main(["demo", "--model", str(tiny_folder), "--gallery", str(tmp_path / "nope"), "-q", "x"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_rerun_replaces_output_and_leaves_no_partial_folder(tiny_folder, tmp_path, capsys, monkeypatch):
    """A second run replaces the first run's folder; a run that fails leaves the previous
    output complete and no staging folder behind."""
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (32, 64), (200, 10, 10)).save(photos / "a.png")
    out = tmp_path / "out"
    base = ["demo", "--model", str(tiny_folder), "--gallery", str(photos), "--out", str(out), "--no-progress"]
    assert main(base + ["-q", "first"]) == 0
    assert main(base + ["-q", "second"]) == 0
    assert json.loads((out / "demo.json").read_text())["queries"][0]["text"] == "second"

    import plip.app.demo as demo

    def broken(*args, **kwargs):
        raise demo.DataError("simulated failure while drawing")

    monkeypatch.setattr(demo, "contact_sheet", broken)
    assert main(base + ["-q", "third"]) == 2
    assert json.loads((out / "demo.json").read_text())["queries"][0]["text"] == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "photos"]
    capsys.readouterr()


def test_detect_dataset(tmp_path):
    """The annotation file names of plip.data.textreid.DATASETS decide the dataset."""
    assert detect_dataset(tmp_path) is None
    (tmp_path / "ICFG_PEDES.json").write_text("[]")
    assert detect_dataset(tmp_path) == "icfg-pedes"
    (tmp_path / "data_captions.json").write_text("[]")
    with pytest.raises(Exception, match="--dataset"):
        detect_dataset(tmp_path)
    assert detect_dataset(tmp_path / "data_captions.json") == "rstpreid"
    synth = tmp_path / "synth"
    synth.mkdir()
    for name in ("reid_raw.json", "synthpedes_dataset.json", "synth_info.json"):
        (synth / name).write_text("[]")
    assert detect_dataset(synth) == "synth-pedes"
