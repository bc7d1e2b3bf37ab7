"""``plip eval``: metrics of a model on a benchmark split.

The dataset picks the task (:mod:`plip.evaluation.dispatch`): text-based person retrieval
for a PLIP model, CMC / mAP / mINP for a BoT or MGN folder on an image ReID benchmark, mA and
instance metrics for an attribute-recognizer folder on an attribute benchmark. Every task
prints a table and writes the same JSON report shape (model, dataset, split, counts,
metrics, settings, versions, seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from typing import Any

from ...evaluation.dispatch import ATTRIBUTES, IMAGE_REID, TASK_TITLES, TEXT_RETRIEVAL, check_model_fits, dataset_task


def register(subparsers) -> None:
    from ...data.attributes import ATTRIBUTE_DATASETS
    from ...data.image_reid import IMAGE_REID_DATASETS
    from ...data.textreid import DATASETS
    from .common import add_model_args, add_optimize_arg, add_runtime_arg

    parser = subparsers.add_parser(
        "eval",
        help="evaluate a model: text-to-image retrieval, image ReID (BoT/MGN) or attributes",
        description=(
            "Text-based person search (a PLIP model): encode every image (gallery) and every caption "
            "(queries) of a dataset split and report R@K, mAP and mINP with identity as the match "
            "criterion; missing images are reported before anything is encoded. "
            "Image ReID (a BoT or MGN folder from `plip train bot|mgn`): CMC rank-1/5/10, mAP and mINP "
            "of the query images against the gallery, same-id-same-camera gallery images removed per query. "
            "Attributes (a folder from `plip train par`): label-based mA and instance-based accuracy, "
            "precision, recall and F1. The dataset name picks the task."
        ),
        epilog=(
            "text datasets: " + "; ".join(f"{n} ({d.annotation or 'JSON/JSONL/CSV'})" for n, d in DATASETS.items())
            + ". image ReID datasets: " + ", ".join(IMAGE_REID_DATASETS)
            + ". attribute datasets: " + ", ".join(ATTRIBUTE_DATASETS)
            + ". Examples: plip eval --model plip-rn50 --dataset cuhk-pedes --root data/CUHK-PEDES --out cuhk.json; "
            "plip eval --model runs/bot/model --dataset market1501 --root data/Market-1501-v15.09.15; "
            "plip eval --model runs/par/model --dataset pa100k --root data/PA-100K"
        ),
    )
    add_model_args(parser)
    parser.add_argument(
        "--dataset", "-d", required=True,
        help=f"one of: {', '.join([*DATASETS, *IMAGE_REID_DATASETS, *ATTRIBUTE_DATASETS])}",
    )
    parser.add_argument("--root", "-r", required=True, help="dataset folder (annotation file + images), or the annotation file")
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument("--allow-outside-root", action="store_true",
                        help="accept image paths in the annotations that resolve (symlinks included) outside "
                             "the dataset root; by default they are an error")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch (default: 64)")
    parser.add_argument("--text-batch-size", type=int, default=256, help="captions per batch (default: 256)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="image decoding processes")
    parser.add_argument("--out", "-o", help="write the metrics (and run details) to this JSON file")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_optimize_arg(parser)
    add_runtime_arg(parser)
    text = parser.add_argument_group("text retrieval only")
    text.add_argument("--ks", type=int, nargs="+", default=None, help="the K of R@K (default: 1 5 10)")
    text.add_argument("--legacy-ap", action="store_true",
                      help="mAP as the official PLIP code computes it (mean of the precision before and at each hit)")
    text.add_argument("--i2t", action="store_true", help="also report image-to-text retrieval")
    text.add_argument("--save-embeddings", metavar="DIR",
                      help="cache embeddings in DIR; a later run with the same model and data reuses them")
    reid = parser.add_argument_group("image ReID only")
    reid.add_argument("--flip", action="store_true", default=None,
                      help="add the feature of the horizontally flipped image")
    reid.add_argument("--distance", choices=["euclidean", "cosine"], default=None,
                      help="distance between the L2-normalised features (default: euclidean)")
    attributes = parser.add_argument_group("attributes only")
    attributes.add_argument("--threshold", type=float, default=None,
                            help="probability above which an attribute counts as present (default: 0.5)")
    from .eval_zero_shot import add_arguments as add_zero_shot_arguments

    add_zero_shot_arguments(attributes)
    parser.set_defaults(func=run)


def _versions() -> dict[str, str]:
    import numpy
    import torch

    from ...version import __version__

    versions = {"plip": __version__, "torch": torch.__version__, "numpy": numpy.__version__, "python": platform.python_version()}
    try:
        import transformers

        versions["transformers"] = transformers.__version__
    except ImportError:  # pragma: no cover - a core dependency
        pass
    return versions


def _table(rows: dict[str, dict[str, float]], columns: list[str], first_width: int = 5) -> str:
    """Rows of percentages under ``columns`` as a small fixed-width table."""
    width = max(9, *(len(c) + 2 for c in columns))
    lines = [" " * first_width + "".join(f"{c:>{width}}" for c in columns)]
    for name, values in rows.items():
        lines.append(f"{name:{first_width}}" + "".join(f"{values[c]:{width}.2f}" for c in columns))
    return "\n".join(lines)


def format_table(result: dict[str, Any], ks: list[int]) -> str:
    """The metrics as a small fixed-width table."""
    columns = [f"R@{k}" for k in ks] + ["mAP", "mINP"]
    lines = [f"{'':5}" + "".join(f"{c:>9}" for c in columns)]
    for direction in ("t2i", "i2t"):
        if direction in result:
            lines.append(f"{direction:5}" + "".join(f"{result[direction][c]:9.2f}" for c in columns))
    return "\n".join(lines)


# Options that only one task reads (dest -> flag); given for another task they are an error.
_TASK_OPTIONS = {
    TEXT_RETRIEVAL: {"ks": "--ks", "legacy_ap": "--legacy-ap", "i2t": "--i2t",
                     "save_embeddings": "--save-embeddings", "dtype": "--dtype"},
    IMAGE_REID: {"flip": "--flip", "distance": "--distance"},
    ATTRIBUTES: {"threshold": "--threshold", "zero_shot": "--zero-shot", "schema": "--schema",
                 "calibrate": "--calibrate", "calibration_split": "--calibration-split"},
}


def _check_task_options(args: argparse.Namespace, task: str) -> None:
    from ...errors import ConfigError

    for other, options in _TASK_OPTIONS.items():
        if other == task:
            continue
        for dest, flag in options.items():
            if getattr(args, dest, None) not in (None, False):
                raise ConfigError(f"{flag} applies to {TASK_TITLES[other]} only, not to --dataset {args.dataset} ({TASK_TITLES[task]})")


def run(args: argparse.Namespace) -> int:
    """Evaluate ``args.model`` on ``args.dataset``; the dataset name picks the task."""
    from ...errors import PlipError

    if args.batch_size < 1 or args.text_batch_size < 1:
        raise PlipError("--batch-size and --text-batch-size must be >= 1")
    if args.workers < 0:
        raise PlipError(f"--workers must be >= 0, got {args.workers}")
    task, _ = dataset_task(args.dataset)
    _check_task_options(args, task)
    if getattr(args, "zero_shot", False):
        from .eval_zero_shot import run_zero_shot

        return run_zero_shot(args, table=_table, write_report=_write_report)
    for dest, flag in (("schema", "--schema"), ("calibrate", "--calibrate"), ("calibration_split", "--calibration-split")):
        if getattr(args, dest, None) is not None:
            raise PlipError(f"{flag} applies to --zero-shot only")
    check_model_fits(args.model, task, args.dataset)  # before reading any data
    return _RUNNERS[task](args)


def _write_report(path: str, report: dict[str, Any]) -> None:
    import time

    from ...utils.io import atomic_write_text

    report = {**report, "versions": _versions(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    atomic_write_text(path, json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


def _device(args: argparse.Namespace) -> str:
    import torch

    return args.device or ("cuda" if torch.cuda.is_available() else "cpu")


def _percent(metrics: dict[str, float]) -> dict[str, float]:
    return {k: 100.0 * v for k, v in metrics.items()}


def _run_text_retrieval(args: argparse.Namespace) -> int:
    import time

    from ...data.textreid import load_text_reid
    from ...errors import PlipError
    from ...evaluation.text_retrieval import evaluate_text_to_image
    from .common import apply_optimize, load_model_from_args

    args.ks = args.ks or [1, 5, 10]
    if any(k < 1 for k in args.ks):
        raise PlipError(f"--ks must be positive, got {args.ks}")
    started = time.perf_counter()
    split = load_text_reid(args.dataset, args.root, args.split, allow_outside_root=args.allow_outside_root)
    split.check_files()  # before loading the model: a broken dataset fails fast
    tic = time.perf_counter()
    model = apply_optimize(load_model_from_args(args), args)
    load_seconds = time.perf_counter() - tic
    from ..training_overlap import training_overlap

    overlap = training_overlap(model, split)
    if overlap:
        print(f"warning: {overlap}", file=sys.stderr)
    result = evaluate_text_to_image(
        model, split,
        batch_size=args.batch_size, text_batch_size=args.text_batch_size, num_workers=args.workers,
        ks=args.ks, legacy_ap=args.legacy_ap, image_to_text=args.i2t,
        progress=not args.no_progress, check_files=False, cache_dir=args.save_embeddings,
    )
    result["seconds"]["load_model"] = round(load_seconds, 4)
    result["seconds"]["total"] = round(time.perf_counter() - started, 4)
    counts = result["counts"]
    print(
        f"{split.dataset} {split.split}: {counts['images']} images, {counts['queries']} queries, "
        f"{counts['identities']} identities; model {args.model}"
        + (" (official-PLIP AP)" if args.legacy_ap else "")
    )
    if split.skipped_captions:
        shown = ", ".join(f"entry {c.entry} caption {c.caption}" for c in split.skipped_captions[:5])
        more = f" and {split.num_skipped_captions - 5} more" if split.num_skipped_captions > 5 else ""
        print(f"note: skipped {split.num_skipped_captions} empty caption(s), not queries ({shown}{more})", file=sys.stderr)
    if counts["unmatched_queries"]:
        print(f"note: {counts['unmatched_queries']} queries have no image of their person in the gallery "
              "(misses for R@K, left out of mAP/mINP)", file=sys.stderr)
    if split.skipped_captions or counts["unmatched_queries"]:
        print(f"denominators: R@K over {counts['queries']} queries, mAP/mINP over "
              f"{counts['queries'] - counts['unmatched_queries']}", file=sys.stderr)
    print(format_table(result, args.ks))
    if args.save_embeddings:
        print(f"embeddings: images {result['cache']['images']}, texts {result['cache']['texts']} ({args.save_embeddings})")
    if args.out:
        import torch

        report = {
            "task": TEXT_RETRIEVAL,
            "model": str(args.model),
            "dataset": args.dataset,
            "dataset_title": split.dataset,
            "split": split.split,
            "root": split.root,
            "annotation_file": split.annotation_file,
            "counts": counts,
            "metrics": {d: result[d] for d in ("t2i", "i2t") if d in result},
            "settings": {
                "ks": args.ks, "legacy_ap": args.legacy_ap, "batch_size": args.batch_size,
                "text_batch_size": args.text_batch_size, "workers": args.workers, "optimize": args.optimize,
                "device": str(getattr(model, "device", args.device)), "dtype": str(getattr(model, "dtype", torch.float32)).replace("torch.", ""),
            },
            "seconds": result["seconds"],
            "embeddings_cache": {"dir": args.save_embeddings, **result["cache"]} if args.save_embeddings else None,
        }
        _write_report(args.out, report)
    return 0


def _load_downstream(args: argparse.Namespace):
    import time

    from ...downstream.base import load_model

    tic = time.perf_counter()
    model = load_model(args.model, device=_device(args))
    return model, round(time.perf_counter() - tic, 4)


def _queries_without_match(split) -> int:
    """Queries with no gallery image of their person from another camera (skipped by the protocol)."""
    cameras: dict[int, set[int]] = {}
    for item in split.gallery:
        cameras.setdefault(item.person_id, set()).add(item.camera_id)
    return sum(not (cameras.get(q.person_id, set()) - {q.camera_id}) for q in split.query)


def _run_image_reid(args: argparse.Namespace) -> int:
    import time

    from ...data.image_reid import read_image_reid
    from ...downstream.evaluate import evaluate_reid_model
    from ...errors import ConfigError

    if args.split != "test":
        raise ConfigError(f"--split {args.split}: image ReID benchmarks are evaluated on their query and gallery (test) only")
    started = time.perf_counter()
    split = read_image_reid(args.dataset, args.root, allow_outside_root=args.allow_outside_root)
    if not split.query or not split.gallery:
        raise ConfigError(f"{args.root}: {split.name} has {len(split.query)} query and {len(split.gallery)} gallery images")
    model, load_seconds = _load_downstream(args)
    flip, distance = bool(args.flip), args.distance or "euclidean"
    tic = time.perf_counter()
    metrics = _percent(evaluate_reid_model(model, split, batch_size=args.batch_size, num_workers=args.workers,
                                           flip=flip, normalize=True, metric=distance))
    evaluate_seconds = time.perf_counter() - tic
    counts = {
        "query_images": len(split.query), "gallery_images": len(split.gallery),
        "query_identities": len({q.person_id for q in split.query}),
        "gallery_identities": len({g.person_id for g in split.gallery}),
        "queries_without_match": _queries_without_match(split), "excluded": dict(split.excluded),
    }
    print(f"{split.name} query/gallery: {counts['query_images']} queries, {counts['gallery_images']} gallery images, "
          f"{counts['query_identities']} query identities; model {args.model}")
    if counts["queries_without_match"]:
        print(f"note: {counts['queries_without_match']} queries have no gallery image of their person from another "
              "camera (left out of every metric)", file=sys.stderr)
    print(_table({"i2i": metrics}, ["rank1", "rank5", "rank10", "mAP", "mINP"]))
    if args.out:
        _write_report(args.out, {
            "task": IMAGE_REID, "model": str(args.model), "model_type": type(model).__name__,
            "dataset": args.dataset, "dataset_title": split.name, "split": "query/gallery", "root": str(args.root),
            "counts": counts, "metrics": metrics,
            "settings": {"batch_size": args.batch_size, "workers": args.workers, "flip": flip, "normalize": True,
                         "distance": distance, "device": str(next(model.parameters()).device)},
            "seconds": {"load_model": load_seconds, "evaluate": round(evaluate_seconds, 4),
                        "total": round(time.perf_counter() - started, 4)},
        })
    return 0


def _run_attributes(args: argparse.Namespace) -> int:
    import time

    from ...data.attributes import read_attribute_dataset
    from ...downstream.evaluate import evaluate_attribute_model
    from ...errors import ConfigError

    threshold = 0.5 if args.threshold is None else args.threshold
    if not 0.0 <= threshold < 1.0:
        raise ConfigError(f"--threshold must be in [0, 1), got {threshold}")
    started = time.perf_counter()
    dataset = read_attribute_dataset(args.dataset, args.root, allow_outside_root=args.allow_outside_root)
    paths, _ = dataset.split(args.split)  # an unknown split fails before the model loads
    model, load_seconds = _load_downstream(args)
    if list(model.attribute_names) != list(dataset.attribute_names):
        raise ConfigError(
            f"--model {args.model} predicts {len(model.attribute_names)} attributes "
            f"({', '.join(model.attribute_names[:3])}, ...) that differ from --dataset {args.dataset}'s "
            f"{dataset.num_attributes} ({', '.join(dataset.attribute_names[:3])}, ...)"
        )
    tic = time.perf_counter()
    metrics = _percent(evaluate_attribute_model(model, dataset, args.split, batch_size=args.batch_size,
                                                num_workers=args.workers, threshold=threshold))
    evaluate_seconds = time.perf_counter() - tic
    counts = {"images": len(paths), "attributes": dataset.num_attributes}
    print(f"{dataset.name} {args.split}: {counts['images']} images, {counts['attributes']} attributes; model {args.model}")
    print(_table({"attr": metrics}, ["mA", "accuracy", "precision", "recall", "f1"]))
    if args.out:
        _write_report(args.out, {
            "task": ATTRIBUTES, "model": str(args.model), "model_type": type(model).__name__,
            "dataset": args.dataset, "dataset_title": dataset.name, "split": args.split, "root": str(args.root),
            "counts": counts, "metrics": metrics,
            "settings": {"batch_size": args.batch_size, "workers": args.workers, "threshold": threshold,
                         "device": str(next(model.parameters()).device)},
            "seconds": {"load_model": load_seconds, "evaluate": round(evaluate_seconds, 4),
                        "total": round(time.perf_counter() - started, 4)},
        })
    return 0


_RUNNERS = {TEXT_RETRIEVAL: _run_text_retrieval, IMAGE_REID: _run_image_reid, ATTRIBUTES: _run_attributes}
