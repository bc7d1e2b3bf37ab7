"""``plip eval --dataset pa100k|peta|rap --zero-shot``: a PLIP model's zero-shot attribute metrics.

Not a subcommand of its own: :mod:`plip.app.cli.eval` hands over here when ``--zero-shot`` is
given. The table and the JSON report have the shape of the trained attribute models'
(mA, instance accuracy / precision / recall / F1), plus the mA of every attribute.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


def add_arguments(group) -> None:
    """The zero-shot options, added to ``plip eval``'s attribute group."""
    group.add_argument("--zero-shot", action="store_true",
                       help="score a PLIP model by text prompts instead of a trained attribute model")
    group.add_argument("--schema", default=None,
                       help="with --zero-shot: prompt schema (default: the dataset's own; or a .yaml/.json file)")
    group.add_argument("--calibrate", type=int, default=None, metavar="N",
                       help="with --zero-shot: fit the logit scale and biases on N labelled images of "
                       "--calibration-split first (default: 0, pure zero-shot)")
    group.add_argument("--calibration-split", default=None,
                       help="split the calibration images come from (default: train, else trainval)")


def run_zero_shot(args: argparse.Namespace, table: Callable, write_report: Callable) -> int:
    """Run ``plip eval --zero-shot``; ``table`` and ``write_report`` are plip eval's own (same output shape)."""
    import time

    from ...data.attributes import read_attribute_dataset
    from ...errors import ConfigError
    from ...evaluation.dispatch import ATTRIBUTES, model_kind
    from ...evaluation.zero_shot_eval import evaluate_zero_shot, schema_for_dataset
    from .common import load_model_from_args

    if model_kind(args.model) != "plip":
        raise ConfigError(f"--zero-shot needs a PLIP model (a registry name, hub id or PLIP folder), not --model {args.model}")
    threshold = 0.5 if args.threshold is None else args.threshold
    if not 0.0 <= threshold < 1.0:
        raise ConfigError(f"--threshold must be in [0, 1), got {threshold}")
    calibrate_images = args.calibrate or 0
    if calibrate_images < 0:
        raise ConfigError(f"--calibrate must be >= 0, got {calibrate_images}")
    started = time.perf_counter()
    dataset = read_attribute_dataset(args.dataset, args.root)
    paths, _ = dataset.split(args.split)  # an unknown split or schema fails before the model loads
    schema = schema_for_dataset(dataset, args.schema)
    tic = time.perf_counter()
    model = load_model_from_args(args)
    load_seconds = round(time.perf_counter() - tic, 4)
    result = evaluate_zero_shot(
        model, dataset, args.split, schema=schema, calibrate_images=calibrate_images,
        calibrate_split=args.calibration_split, threshold=threshold, batch_size=args.batch_size,
        num_workers=args.workers, progress=not args.no_progress,
    )  # fmt: skip
    metrics = {k: 100.0 * result[k] for k in ("mA", "accuracy", "precision", "recall", "f1")}
    per_attribute = {k: 100.0 * v for k, v in result["per_attribute_mA"].items()}
    how = f"calibrated on {calibrate_images} labelled images" if calibrate_images else "uncalibrated"
    print(f"{dataset.name} {args.split}: {len(paths)} images, {dataset.num_attributes} attributes; "
          f"model {args.model}, zero-shot (schema {schema.name.split('[')[0]}, {how})")  # fmt: skip
    print(table({"attr": metrics}, ["mA", "accuracy", "precision", "recall", "f1"]))
    print("mA per attribute: " + ", ".join(f"{k} {v:.1f}" for k, v in per_attribute.items()))
    if args.out:
        write_report(args.out, {
            "task": ATTRIBUTES, "model": str(args.model), "model_type": "plip", "zero_shot": True,
            "dataset": args.dataset, "dataset_title": dataset.name, "split": args.split, "root": str(args.root),
            "counts": {"images": len(paths), "attributes": dataset.num_attributes},
            "metrics": metrics, "per_attribute_mA": per_attribute,
            "settings": {"batch_size": args.batch_size, "workers": args.workers, "threshold": threshold,
                         "schema": schema.name, "calibrate_images": calibrate_images,
                         "device": str(model.device)},
            "calibration": result["calibration"],
            "seconds": {"load_model": load_seconds, **result["seconds"], "total": round(time.perf_counter() - started, 4)},
        })  # fmt: skip
    return 0
