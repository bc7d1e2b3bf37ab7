"""Zero-shot attributes and descriptions from text prompts, offline on synthetic persons.

    python examples/zero_shot_attributes.py                         # mA table + descriptions (~1 min on 2 CPUs)
    python examples/zero_shot_attributes.py --sheet docs/images/zero_shot_attributes   # + contact sheet PNG/HTML
    python examples/zero_shot_attributes.py --pa100k                # + `plip eval --zero-shot` on a PA-100K folder

What it does:
1. renders synthetic persons (``plip.data.synthetic``, seeds never used to train
   ``plip-tiny-synth``) whose attributes are known from their generator;
2. recognises the ``person`` schema's attributes (gender, hair, garments and colours, shoes,
   bag, cap) with ``plip-tiny-synth`` and with a randomly initialised model of the same size
   (the floor), uncalibrated and calibrated on other labelled persons, and prints mA per
   attribute and overall (chance: 50);
3. describes a few persons in words (``model.describe``) next to their true caption;
4. optionally draws a contact sheet of crops with their predicted attributes and
   descriptions, and runs ``plip eval --dataset pa100k --zero-shot`` on a PA-100K-format
   folder (``annotation.mat`` + ``data/``) of synthetic persons.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

import plip
from plip.data.captions import prompt_caption
from plip.app.visualize import wrap_text
from plip.data.synthetic import render_image, sample_identities, sample_variation
from plip.evaluation.attribute_metrics import pedestrian_metrics
from plip.inference.zero_shot import calibrate, classify_attributes
from plip.inference.zero_shot_schema import column_labels, get_schema


def persons(count: int, seed: int):
    people = sample_identities(count, seed=seed)
    views = [sample_variation(np.random.default_rng([seed, 5, p.person_id])) for p in people]
    return people, [render_image(p, v) for p, v in zip(people, views)], [v.view for v in views]


def attribute_table(schema, labels, decisions) -> dict[str, float]:
    """mA (percent) per attribute (mean over its label columns that have positives and
    negatives) and overall (mean over those columns), as the PAR papers compute mA."""
    keep = (labels.sum(0) > 0) & (labels.sum(0) < len(labels))
    per_column = pedestrian_metrics(labels[:, keep], decisions[:, keep])["label_mA"]
    kept = [c for c, k in zip(schema.columns, keep) if k]
    table = {}
    for attribute in schema.attributes:
        scores = [per_column[kept.index(c)] for c in attribute.columns if c in kept]
        if scores:
            table[attribute.name] = 100 * float(np.mean(scores))
    table["overall"] = 100 * float(np.mean(per_column))
    return table


def evaluate(args) -> tuple[dict, dict]:
    schema = get_schema("person")
    calib_people, calib_images, _ = persons(args.calib_ids, seed=args.seed + 1)
    test_people, test_images, _ = persons(args.test_ids, seed=args.seed)
    calib_labels = np.array(column_labels(schema, [p.description() for p in calib_people]))
    test_labels = np.array(column_labels(schema, [p.description() for p in test_people]))
    trained = plip.load("plip-tiny-synth")
    torch.manual_seed(0)
    random = plip.create_model(trained.config).eval()
    tables, runs = {}, {}
    for name, model in (("plip-tiny-synth", trained), ("random weights", random)):
        test_emb, calib_emb = model.encode_image(test_images), model.encode_image(calib_images)
        plain = classify_attributes(model, image_embeddings=test_emb, schema=schema)
        cal = calibrate(model, image_embeddings=calib_emb, labels=calib_labels, schema=schema)
        fitted = classify_attributes(model, image_embeddings=test_emb, schema=schema, calibration=cal)
        tables[name] = attribute_table(schema, test_labels, plain.decisions().numpy())
        tables[f"{name}, calibrated"] = attribute_table(schema, test_labels, fitted.decisions().numpy())
        runs[name] = plain
    names = list(tables)
    print(f"mA (%) on {args.test_ids} synthetic persons (seed {args.seed}); calibration: {args.calib_ids} other persons; "
          "chance = 50")  # fmt: skip
    print("| attribute | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for attribute in tables[names[0]]:
        print(f"| {attribute} | " + " | ".join(f"{tables[n][attribute]:.1f}" for n in names) + " |")
    data = {"schema": schema, "people": test_people, "images": test_images, "labels": test_labels, "model": trained}
    return data, runs


def describe_some(data, runs, count: int) -> list[dict]:
    prediction = runs["plip-tiny-synth"]  # uncalibrated, as model.describe(images) runs by default
    model = data["model"]
    texts = model.describe(data["images"][:count])
    rows = []
    schema, labels = data["schema"], data["labels"]
    for i, text in enumerate(texts):
        truth = prompt_caption(data["people"][i].description())
        picks = []
        for attribute, value, p in prediction.top_values(i):
            entry = schema.attribute(attribute)
            own = next(v.column for v in entry.values if v.name == value)  # None: a binary's negative value
            if own is not None:
                correct = bool(labels[i, schema.columns.index(own)])
            else:
                correct = not labels[i, schema.columns.index(entry.columns[0])]
            picks.append((attribute, value, p, correct))
        rows.append({"image": data["images"][i], "description": text, "truth": truth, "values": picks})
        print(f"\n#{i + 1} predicted: {text}\n    true:      {truth}")
    return rows


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def contact_sheet(rows: list[dict], columns: int = 3) -> Image.Image:
    """Crops with their predicted values (green: right, red: wrong) and descriptions."""
    cell_w, cell_h, text_x = 430, 330, 140
    sheet_rows = (len(rows) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * cell_w + 10, sheet_rows * cell_h + 40), "white")
    draw = ImageDraw.Draw(sheet)
    small, body, title = _font(11), _font(12), _font(15)
    draw.text((10, 10), "plip-tiny-synth, zero-shot: predicted attributes (green right, red wrong) and description",
              fill="black", font=title)  # fmt: skip
    for n, row in enumerate(rows):
        left, top = 10 + (n % columns) * cell_w, 40 + (n // columns) * cell_h
        sheet.paste(row["image"].resize((128, 256)), (left, top))
        y = top
        for attribute, value, p, correct in sorted(row["values"], key=lambda v: v[0]):
            colour = {True: (20, 130, 20), False: (200, 30, 30), None: (90, 90, 90)}[correct]
            draw.text((left + text_x, y), f"{attribute}: {value} ({p:.2f})", fill=colour, font=small)
            y += 14
        y = max(y, top + 260)
        for line in wrap_text(draw, row["description"], body, cell_w - 20, max_lines=4):
            draw.text((left, y), line, fill="black", font=body)
            y += 15
    return sheet


def sheet_html(rows: list[dict], png_name: str) -> str:
    cells = []
    for row in rows:
        buffer = io.BytesIO()
        row["image"].save(buffer, format="JPEG", quality=85)
        src = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
        items = "".join(
            f'<li class="{ {True: "right", False: "wrong", None: "na"}[c] }">{html.escape(a)}: {html.escape(v)} ({p:.2f})</li>'
            for a, v, p, c in sorted(row["values"], key=lambda v: v[0])
        )
        cells.append(f'<figure><img src="{src}" alt="person crop"><ul>{items}</ul>'
                     f"<figcaption><b>predicted:</b> {html.escape(row['description'])}<br>"
                     f"<b>true:</b> {html.escape(row['truth'])}</figcaption></figure>")  # fmt: skip
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Zero-shot attributes</title><style>'
        "body{font-family:sans-serif;margin:1em} .grid{display:flex;flex-wrap:wrap;gap:14px}"
        "figure{margin:0;width:420px;display:grid;grid-template-columns:132px 1fr;font-size:12px}"
        "figcaption{grid-column:1/3} img{width:128px;height:256px} ul{margin:0;padding-left:14px}"
        ".right{color:#148214} .wrong{color:#c81e1e} .na{color:#666}</style></head><body>"
        f"<h1>plip-tiny-synth: zero-shot attributes and descriptions</h1><p>Picture: {html.escape(png_name)}</p>"
        f'<div class="grid">{"".join(cells)}</div></body></html>\n'
    )


def write_pa100k_folder(root: Path, count: int, seed: int) -> Path:
    """A PA-100K-format folder of synthetic persons: their 26 PA-100K flags as far as the
    generator knows them (gender, view, cap, bags, sleeves, coat, lower garment)."""
    from scipy.io import savemat

    from plip.data.attribute_names import PA100K_ATTRIBUTES

    people, images, views = persons(count, seed)
    (root / "data").mkdir(parents=True, exist_ok=True)
    content = {"attributes": np.array([[n] for n in PA100K_ATTRIBUTES], dtype=object)}
    bounds = {"train": (0, count // 2), "val": (count // 2, count * 6 // 10), "test": (count * 6 // 10, count)}
    for split, (a, b) in bounds.items():
        files, labels = [], []
        for p, image, view in zip(people[a:b], images[a:b], views[a:b]):
            name = f"{split}_{p.person_id:05d}.jpg"
            image.save(root / "data" / name)
            flags = {"Female": p.gender == "female", "Age18-60": True, "Front": view == "front", "Side": view == "side",
                     "Back": view == "back", "Hat": p.cap_colour is not None, "HandBag": p.bag_kind == "handbag",
                     "Backpack": p.bag_kind == "backpack", "ShortSleeve": p.sleeve == "short",
                     "LongSleeve": p.sleeve == "long", "LongCoat": p.upper_kind == "coat",
                     "Trousers": p.lower_kind == "trousers", "Shorts": p.lower_kind == "shorts",
                     "Skirt&Dress": p.lower_kind in ("skirt", "dress")}  # fmt: skip
            files.append([name])
            labels.append([int(flags.get(n, False)) for n in PA100K_ATTRIBUTES])
        content[f"{split}_images_name"] = np.array(files, dtype=object)
        content[f"{split}_label"] = np.array(labels, dtype=np.uint8)
    savemat(root / "annotation.mat", content)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test-ids", type=int, default=400, help="synthetic persons to evaluate on")
    parser.add_argument("--calib-ids", type=int, default=200, help="other labelled persons to calibrate on")
    parser.add_argument("--seed", type=int, default=2027, help="seed of the evaluated persons (training used 1)")
    parser.add_argument("--describe", type=int, default=12, help="persons to describe")
    parser.add_argument("--sheet", metavar="PATH", help="write PATH.png and PATH.html (contact sheet)")
    parser.add_argument("--pa100k", action="store_true", help="also run `plip eval --zero-shot` on a PA-100K folder")
    args = parser.parse_args()
    data, runs = evaluate(args)
    rows = describe_some(data, runs, args.describe)
    if args.sheet:
        out = Path(args.sheet)
        out.parent.mkdir(parents=True, exist_ok=True)
        contact_sheet(rows).quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out.with_suffix(".png"), optimize=True)
        out.with_suffix(".html").write_text(sheet_html(rows, out.with_suffix(".png").name), encoding="utf-8")
        print(f"\nwrote {out.with_suffix('.png')} and {out.with_suffix('.html')}")
    if args.pa100k:
        from plip.app.cli.main import main as plip_main

        with tempfile.TemporaryDirectory() as tmp:
            root = write_pa100k_folder(Path(tmp) / "PA-100K", 300, seed=args.seed + 2)
            for extra in ([], ["--calibrate", "100"]):
                command = ["eval", "--model", "plip-tiny-synth", "--dataset", "pa100k", "--root", str(root),
                           "--zero-shot", "--workers", "0", "--no-progress", *extra]  # fmt: skip
                print("\n$ plip " + " ".join(command))
                plip_main(command)


if __name__ == "__main__":
    main()
