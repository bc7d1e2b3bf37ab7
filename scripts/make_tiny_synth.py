"""Build the embedded ``plip-tiny-synth`` model: one command, CPU only, about 20 minutes.

    python scripts/make_tiny_synth.py                 # data -> pre-training -> evaluation -> model card
    python scripts/make_tiny_synth.py --run-dir runs/plip-tiny-synth --skip-train   # re-card a finished run

Steps (each a public command, so anyone can re-run them one by one):
1. ``plip synth --out WORK/synth-train --identities 1000 --images-per-id 4 --seed 1``
2. ``plip train pretrain --config pretrain_tiny_synth data.root=WORK/synth-train``
   (all three PLIP pretext tasks: IVLC + 0.02 TIC + 0.1 IAP; recipe in plip/training/recipes)
3. evaluation on galleries of identities never used in training: the held-out test split of
   the training seed (ids 801-1000) and the demo's gallery (seed 2026, 100 ids);
4. copies ``config.json`` + ``model.safetensors`` into ``plip/assets/models/plip-tiny-synth``
   and writes its model card with the numbers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET = REPO / "plip" / "assets" / "models" / "plip-tiny-synth"
TRAIN_SEED, DEMO_SEED, DEMO_IDS = 1, 2026, 100


def run(*args: str) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run(args, check=True)


def evaluate(model_dir: Path, root: Path, split: str) -> dict:
    import plip
    from plip.data.textreid import load_text_reid
    from plip.evaluation.chance import chance_retrieval_metrics
    from plip.evaluation.text_retrieval import evaluate_text_to_image

    model = plip.load(model_dir)
    data = load_text_reid("synth-pedes", root, split)
    result = evaluate_text_to_image(model, data, batch_size=256, num_workers=0)
    queries = data.queries()
    gallery = data.gallery()
    chance = chance_retrieval_metrics(queries.person_ids, gallery.person_ids, ks=(1, 5, 10))
    return {"split": split, "images": result["counts"]["images"], "queries": result["counts"]["queries"],
            "identities": result["counts"]["identities"], "metrics": result["t2i"], "chance": chance}


def model_card(numbers: list[dict], params: float) -> str:
    rows = []
    for entry in numbers:
        m, c = entry["metrics"], entry["chance"]
        rows.append(
            f"| {entry['name']} | {entry['identities']} ids / {entry['images']} images / {entry['queries']} captions "
            f"| {m['R@1']:.1f} ({c['R@1']:.2f}) | {m['R@5']:.1f} ({c['R@5']:.2f}) | {m['mAP']:.1f} ({c['mAP']:.2f}) |"
        )
    table = "\n".join(rows)
    return f"""---
library_name: plip-person
license: mit
tags: [person-reid, text-based-person-search, plip, synthetic]
---
# plip-tiny-synth

A small PLIP model ({params:.1f}M parameters) trained by the plip project on synthetic persons,
shipped inside the `plip-person` package so that `plip.load("plip-tiny-synth")` and
`plip demo` work offline. **It knows synthetic people only**: the flat-shaded pedestrians of
`plip synth`. Use `plip-rn50` (the official weights) for real images.

- Architecture: `PLIPConfig.small()` at 64x32 input: Modified ResNet (width 16, one block per
  stage, 8-head attention pool) and a 2-layer BERT (hidden 64, mean pooling over tokens),
  64-d embeddings; the bert-base-uncased tokenizer.
- Training: PLIP pre-training with all three pretext tasks (IVLC + 0.02 TIC + 0.1 IAP),
  recipe `pretrain_tiny_synth` (AdamW, cosine schedule, batch 64, IVLC as CMPM with cosine
  logits at temperature 0.07), on `plip synth --identities 1000 --images-per-id 4 --seed {TRAIN_SEED}`
  (train split: ids 1-700), on a 2-core CPU.
- Reproduce: `python scripts/make_tiny_synth.py`.

## Text-to-image retrieval on identities never seen in training
R@1 / R@5 / mAP in percent, chance level in brackets (exact expectation under a random
ranking, `plip.evaluation.chance`).

| gallery | size | R@1 | R@5 | mAP |
|---|---|---|---|---|
{table}

`plip demo` runs the second gallery.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=str(REPO / "runs" / "tiny-synth-work"), help="data and run folder")
    parser.add_argument("--run-dir", help="training output folder (default: WORK/run)")
    parser.add_argument("--skip-train", action="store_true", help="use the finished run in --run-dir")
    parser.add_argument("--target", default=str(TARGET))
    parser.add_argument("--overrides", nargs="*", default=[], help="extra key=value for plip train")
    args = parser.parse_args()
    work = Path(args.work)
    run_dir = Path(args.run_dir) if args.run_dir else work / "run"
    data = work / "synth-train"
    plip_cmd = [sys.executable, "-m", "plip.app.cli.main"]
    if not args.skip_train:
        if not (data / "synthpedes_dataset.json").exists():
            run(*plip_cmd, "synth", "--out", str(data), "--identities", "1000", "--images-per-id", "4",
                "--seed", str(TRAIN_SEED), "--no-progress")
        run(*plip_cmd, "train", "pretrain", "--config", "pretrain_tiny_synth", f"data.root={data}",
            f"output_dir={run_dir}", "logging.progress=false", *args.overrides)
    model_dir = run_dir / "model"
    numbers = []
    entry = evaluate(model_dir, data, "test")
    entry["name"] = f"held-out test split of the training seed (ids 801-1000, seed {TRAIN_SEED})"
    numbers.append(entry)
    with tempfile.TemporaryDirectory() as tmp:
        from plip.data.synthetic import generate_dataset

        generate_dataset(Path(tmp) / "demo", identities=DEMO_IDS, images_per_id=4, seed=DEMO_SEED,
                         workers=0, progress=False)
        entry = evaluate(model_dir, Path(tmp) / "demo", "all")
        entry["name"] = f"`plip demo` gallery (seed {DEMO_SEED}, all {DEMO_IDS} ids)"
        numbers.append(entry)
    target = Path(args.target)
    target.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copyfile(model_dir / name, target / name)
    import plip

    params = sum(p.numel() for p in plip.load(target).parameters()) / 1e6
    (target / "README.md").write_text(model_card(numbers, params))
    (target / "metrics.json").write_text(json.dumps(numbers, indent=2) + "\n")
    (target / "training_data.json").write_text(json.dumps(training_data(data), indent=2) + "\n")
    print(json.dumps(numbers, indent=2))


def training_data(data: Path) -> dict:
    """What plip.app.training_overlap reads: the generator, seed and ids trained / selected on."""
    info = json.loads((data / "synth_info.json").read_text())
    return {
        "generator": info["generator"],
        "command": f"plip synth --identities {info['identities']} --images-per-id {info['images_per_id']} "
                   f"--seed {info['seed']}",
        "seed": info["seed"],
        "train_ids": info["split_ids"]["train"],
        "val_ids": info["split_ids"]["val"],
        "note": "persons the model was trained on (train) or selected on (val); `plip eval` / `plip demo` warn "
                "when a synthetic gallery of the same seed holds any of them",
    }


if __name__ == "__main__":
    main()
