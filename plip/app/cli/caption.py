"""``plip caption``: captions from pedestrian attribute labels (PA-100K, RAP, PETA)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ...errors import ConfigError
from ...utils.io import atomic_write_text


def register(subparsers: argparse._SubParsersAction) -> None:
    from ...data.attribute_vocab import LABEL_SETS

    parser = subparsers.add_parser(
        "caption",
        help="write captions for attribute-labelled images",
        description=(
            "Turn a CSV of attribute flags (an image column plus one 0/1 column per attribute, "
            "named by the dataset's standard attribute names) into SYNTH-PEDES-style captions: "
            "a JSON list of {file_path, attributes, captions, prompt_caption, notes}. "
            "Contradictory or unknown flags are skipped and reported in 'notes'."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--attributes", required=True, metavar="CSV", help="attribute table")
    parser.add_argument("--format", default="auto", choices=("auto",) + LABEL_SETS,
                        help="attribute label set; auto picks the one matching the column names")  # fmt: skip
    parser.add_argument("--out", required=True, metavar="JSON", help="output file")
    parser.add_argument("--image-column", default="image", help="name of the image column")
    parser.add_argument("--captions-per-image", type=int, default=2, help="captions per image, in distinct styles")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the wording")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...data.attribute_vocab import caption_attribute_table

    if not 1 <= args.captions_per_image <= 5:
        raise ConfigError(f"--captions-per-image must be between 1 and 5, got {args.captions_per_image}")
    entries, file_notes = caption_attribute_table(
        args.attributes,
        args.format,
        image_column=args.image_column,
        seed=args.seed,
        captions_per_image=args.captions_per_image,
    )
    out = Path(args.out)
    atomic_write_text(out, json.dumps([e.to_json() for e in entries], ensure_ascii=False, indent=1) + "\n")
    for note in file_notes:
        print(f"plip caption: note: {note}", file=sys.stderr)
    skipped = sum(len(e.notes) for e in entries)
    print(
        f"wrote captions of {len(entries)} images to {out}"
        + (f" ({skipped} label notes, see 'notes')" if skipped else "")
    )
    return 0
