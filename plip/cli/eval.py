"""``plip eval``: text-based person retrieval metrics of a model on a benchmark split."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from typing import Any


def register(subparsers) -> None:
    from ..data.textreid import DATASETS
    from .common import add_model_args

    parser = subparsers.add_parser(
        "eval",
        help="evaluate text-to-image person retrieval (CUHK-PEDES, ICFG-PEDES, RSTPReid, ...)",
        description=(
            "Encode every image (gallery) and every caption (queries) of a dataset split and report "
            "R@K, mAP and mINP with identity as the match criterion, as text-based person search "
            "papers do. Missing images are reported before anything is encoded."
        ),
        epilog=(
            "datasets: " + "; ".join(f"{n} ({d.annotation or 'JSON/JSONL/CSV'})" for n, d in DATASETS.items())
            + ". Example: plip eval --model plip-rn50 --dataset cuhk-pedes --root data/CUHK-PEDES --out cuhk.json"
        ),
    )
    add_model_args(parser)
    parser.add_argument("--dataset", "-d", required=True, help=f"one of: {', '.join(DATASETS)}")
    parser.add_argument("--root", "-r", required=True, help="dataset folder (annotation file + images), or the annotation file")
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch (default: 64)")
    parser.add_argument("--text-batch-size", type=int, default=256, help="captions per batch (default: 256)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="image decoding processes")
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 5, 10], help="the K of R@K (default: 1 5 10)")
    parser.add_argument("--legacy-ap", action="store_true",
                        help="mAP as the official PLIP code computes it (mean of the precision before and at each hit)")
    parser.add_argument("--i2t", action="store_true", help="also report image-to-text retrieval")
    parser.add_argument("--out", "-o", help="write the metrics (and run details) to this JSON file")
    parser.add_argument("--save-embeddings", metavar="DIR",
                        help="cache embeddings in DIR; a later run with the same model and data reuses them")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(func=run)


def _versions() -> dict[str, str]:
    import numpy
    import torch

    from ..version import __version__

    versions = {"plip": __version__, "torch": torch.__version__, "numpy": numpy.__version__, "python": platform.python_version()}
    try:
        import transformers

        versions["transformers"] = transformers.__version__
    except ImportError:  # pragma: no cover - a core dependency
        pass
    return versions


def format_table(result: dict[str, Any], ks: list[int]) -> str:
    """The metrics as a small fixed-width table."""
    columns = [f"R@{k}" for k in ks] + ["mAP", "mINP"]
    lines = [f"{'':5}" + "".join(f"{c:>9}" for c in columns)]
    for direction in ("t2i", "i2t"):
        if direction in result:
            lines.append(f"{direction:5}" + "".join(f"{result[direction][c]:9.2f}" for c in columns))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import time

    from ..data.textreid import load_text_reid
    from ..errors import PlipError
    from ..evaluation.text_retrieval import evaluate_text_to_image
    from ..utils.io import atomic_write_text
    from .common import load_model_from_args

    if args.batch_size < 1 or args.text_batch_size < 1:
        raise PlipError("--batch-size and --text-batch-size must be >= 1")
    if args.workers < 0:
        raise PlipError(f"--workers must be >= 0, got {args.workers}")
    if any(k < 1 for k in args.ks):
        raise PlipError(f"--ks must be positive, got {args.ks}")
    started = time.perf_counter()
    split = load_text_reid(args.dataset, args.root, args.split)
    split.check_files()  # before loading the model: a broken dataset fails fast
    tic = time.perf_counter()
    model = load_model_from_args(args)
    load_seconds = time.perf_counter() - tic
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
    if counts["unmatched_queries"]:
        print(f"note: {counts['unmatched_queries']} queries have no image of their person in the gallery "
              "(misses for R@K, left out of mAP/mINP)", file=sys.stderr)
    print(format_table(result, args.ks))
    if args.save_embeddings:
        print(f"embeddings: images {result['cache']['images']}, texts {result['cache']['texts']} ({args.save_embeddings})")
    if args.out:
        import torch

        report = {
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
                "text_batch_size": args.text_batch_size, "workers": args.workers,
                "device": str(getattr(model, "device", args.device)), "dtype": str(getattr(model, "dtype", torch.float32)).replace("torch.", ""),
            },
            "versions": _versions(),
            "seconds": result["seconds"],
            "embeddings_cache": {"dir": args.save_embeddings, **result["cache"]} if args.save_embeddings else None,
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0
