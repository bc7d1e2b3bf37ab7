"""``plip models``: list the registry."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list the named models and where their weights come from")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--architectures", action="store_true",
                        help="list the architectures a fresh model / training recipe can build (model.name) instead")
    parser.set_defaults(func=run)


def _architecture_rows() -> list[dict]:
    from ...models.config import ARCHITECTURES

    rows = []
    for name in sorted(ARCHITECTURES):
        arch = ARCHITECTURES[name]
        kind = arch.vision.get("kind", "modified_resnet")
        tower = arch.vision["timm"]["model_name"] if kind == "timm" else "Modified ResNet"
        rows.append({"name": name, "tower": tower, "input": list(arch.image_size), "dim": arch.dim,
                     "description": arch.description})
    return rows


def run(args: argparse.Namespace) -> int:
    import json

    if args.architectures:
        rows = _architecture_rows()
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        name_w = max(len(r["name"]) for r in rows)
        for r in rows:
            size = f"{r['input'][0]}x{r['input'][1]}"
            print(f"{r['name']:<{name_w}}  {size:>7}  {r['dim']:>4}-d  {r['description']}")
        return 0
    from ...hub.registry import MODELS

    rows = [
        {"name": e.name, "params": e.params, "source": e.source, "description": e.description,
         "original_weights": e.official_source or ""}
        for e in sorted(MODELS.values(), key=lambda e: e.name)
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    name_w = max(len("name"), *(len(r["name"]) for r in rows))
    src_w = max(len("source"), *(len(r["source"]) for r in rows))
    print(f"{'name':<{name_w}}  {'params':>6}  {'source':<{src_w}}  description")
    for r in rows:
        print(f"{r['name']:<{name_w}}  {r['params']:>6}  {r['source']:<{src_w}}  {r['description']}")
        if r["original_weights"]:
            print(f"{'':<{name_w}}  {'':>6}  original weights: {r['original_weights']}")
    return 0
