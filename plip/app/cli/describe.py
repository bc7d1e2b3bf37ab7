"""``plip describe``: a caption of each person crop from zero-shot attributes."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from .attributes import add_zero_shot_args

    parser = subparsers.add_parser(
        "describe", help="describe person images in words (zero-shot attributes -> caption)",
        description="Recognise the attributes of every image under --images from text prompts and write "
        "a SPAC-style caption built by the caption grammar from the most probable values "
        "(\"A woman with long hair is wearing a red t-shirt with blue trousers. ...\"). "
        "Prints 'image<TAB>caption' lines; --out also writes JSON with the chosen values.",
        epilog="example: plip describe --model plip-tiny-synth --images crops/ --out descriptions.json",
    )
    add_zero_shot_args(parser, "person")
    parser.add_argument("--out", "-o", help="also write a JSON list of {image, description, attributes}")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from ...utils.io import atomic_write_text
    from .attributes import classify_folder

    rel, prediction = classify_folder(args)
    captions = prediction.captions(args.threshold)
    entries = []
    for i, (name, text) in enumerate(zip(rel, captions, strict=True)):
        print(f"{name}\t{text}")
        values = {attr: {"value": value, "probability": round(p, 4)} for attr, value, p in prediction.top_values(i, args.threshold)}
        entries.append({"image": name, "description": text, "attributes": values})
    if args.out:
        atomic_write_text(args.out, json.dumps(entries, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {args.out}: {len(entries)} descriptions")
    return 0
