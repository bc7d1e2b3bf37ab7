"""``plip attributes``: zero-shot attribute probabilities of a folder of person crops."""

from __future__ import annotations

import argparse
import os


def add_zero_shot_args(parser: argparse.ArgumentParser, default_schema: str) -> None:
    """Options shared by ``plip attributes`` and ``plip describe``."""
    from .common import add_model_args

    add_model_args(parser, required=False)
    parser.set_defaults(model="plip-rn50")
    parser.add_argument("--images", "-i", required=True, nargs="+", help="image folder(s) or files (searched recursively)")
    parser.add_argument("--schema", "-s", default=default_schema,
                        help="pa100k, peta, rap (rapv1), rapv2, person, or a .yaml/.json schema file "
                        f"(default: {default_schema})")  # fmt: skip
    parser.add_argument("--calibration", metavar="JSON", help="a calibration file (logit scale and biases) to apply")
    parser.add_argument("--threshold", type=float, default=0.5, help="probability above which a binary attribute is present")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="image decoding processes")
    parser.add_argument("--no-progress", action="store_true")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "attributes", help="zero-shot attribute probabilities of person images (CSV)",
        description="Score every image under --images against the text prompts of an attribute schema and "
        "write one CSV row per image: the image path (relative to the folder) and the probability of every "
        "label column of the schema. Prompts are encoded once; each image is encoded once.",
        epilog="example: plip attributes --model plip-tiny-synth --images crops/ --schema pa100k --out attrs.csv",
    )
    add_zero_shot_args(parser, "pa100k")
    parser.add_argument("--out", "-o", required=True, help="output CSV file")
    parser.set_defaults(func=run)


def classify_folder(args: argparse.Namespace):
    """(relative paths, AttributePrediction) of the images named by ``args.images``."""
    from ...errors import ConfigError
    from ...inference.zero_shot import Calibration, classify_attributes
    from ...inference.zero_shot_schema import get_schema
    from .common import load_model_from_args
    from ...data.images import find_images

    if not 0.0 <= args.threshold < 1.0:
        raise ConfigError(f"--threshold must be in [0, 1), got {args.threshold}")
    if args.batch_size < 1 or args.workers < 0:
        raise ConfigError("--batch-size must be >= 1 and --workers >= 0")
    schema = get_schema(args.schema)  # a bad schema fails before the model loads
    calibration = Calibration.load(args.calibration) if args.calibration else None
    if calibration is not None:
        calibration.check(schema)
    root, rel = find_images(args.images)
    model = load_model_from_args(args)
    prediction = classify_attributes(model, [os.path.join(root, r) for r in rel], schema, calibration=calibration,
                                     batch_size=args.batch_size, num_workers=args.workers,
                                     progress=not args.no_progress)  # fmt: skip
    prediction.ids = rel
    return rel, prediction


def run(args: argparse.Namespace) -> int:
    import csv
    import io

    from ...utils.io import atomic_write_text

    rel, prediction = classify_folder(args)
    probs = prediction.probs.numpy()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image", *prediction.columns])
    for name, row in zip(rel, probs, strict=True):
        writer.writerow([name, *(f"{p:.4f}" for p in row)])
    atomic_write_text(args.out, buffer.getvalue())
    print(f"wrote {args.out}: {len(rel)} images x {len(prediction.columns)} attributes of schema "
          f"{prediction.schema.name!r}" + (" (calibrated)" if prediction.calibrated else ""))  # fmt: skip
    return 0
