"""``plip demo``: text-based person search end to end on an unseen gallery, with pictures."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from ..demo_defaults import DEFAULT_IDENTITIES, DEFAULT_MODEL, DEFAULT_QUERIES, DEFAULT_SEED
    from .common import add_model_args

    parser = subparsers.add_parser(
        "demo",
        help="search an unseen synthetic gallery (or your own) by text; write demo.html and a contact sheet",
        description=(
            "Without --gallery: generate a synthetic gallery from a seed no training run used "
            f"(default {DEFAULT_SEED}), encode it, score R@1 / R@5 / R@10 / mAP over all its captions "
            "against chance, run a few text queries of different caption styles, print the hits, "
            "and write OUT/demo.html, OUT/demo_contact_sheet.png and OUT/demo.json. "
            "With --gallery DIR: the same on a text-ReID dataset folder (CUHK-PEDES, ICFG-PEDES, "
            "RSTPReid, SYNTH-PEDES or a generic annotation file, recognised by the annotation file), "
            "or retrieval only on a plain folder of images with --query."
        ),
        epilog=(
            "examples: plip demo  |  plip demo --model plip-rn50 --gallery data/CUHK-PEDES  |  "
            "plip demo --model plip-rn50 --gallery photos/ --query \"a woman in a red coat\""
        ),
    )
    add_model_args(parser, required=False)
    parser.set_defaults(model=DEFAULT_MODEL)
    parser.add_argument("--gallery", "-g", metavar="DIR",
                        help="text-ReID dataset folder (or its annotation file) or a folder of images "
                             "(default: generate a synthetic gallery)")
    parser.add_argument("--dataset", "-d", help="dataset name, when the annotation file does not tell")
    parser.add_argument("--split", help="split to use (default: all of a generated gallery; test of a dataset)")
    parser.add_argument("--out", "-o", default="demo_out", help="output folder (default: demo_out/)")
    parser.add_argument("--identities", type=int, default=DEFAULT_IDENTITIES,
                        help=f"persons in the generated gallery (default: {DEFAULT_IDENTITIES})")
    parser.add_argument("--images-per-id", type=int, default=4, help="images per generated person (default: 4)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"seed of the generated gallery (default: {DEFAULT_SEED}, unseen in training)")
    parser.add_argument("--queries", type=int, default=DEFAULT_QUERIES, metavar="N",
                        help=f"queries picked from the gallery's captions (default: {DEFAULT_QUERIES})")
    parser.add_argument("--query", "-q", action="append", default=[], metavar="TEXT",
                        help="your own text query (repeatable); required for a plain image folder")
    parser.add_argument("--top-k", "-k", type=int, default=5, help="hits shown per query (default: 5)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per encoding batch (default: 64)")
    parser.add_argument("--workers", type=int, default=None, help="image decoding processes (default: automatic)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from ..demo import format_metrics, format_table, run_demo
    from .common import load_model_from_args

    started = time.perf_counter()
    model = load_model_from_args(args)
    report = run_demo(
        model, args.out, gallery=args.gallery, dataset=args.dataset, split=args.split,
        identities=args.identities, seed=args.seed, images_per_id=args.images_per_id,
        num_queries=args.queries, queries=args.query, top_k=args.top_k, batch_size=args.batch_size,
        num_workers=args.workers, model_name=str(args.model), progress=not args.no_progress,
    )
    print()
    print(format_table(report))
    metrics = format_metrics(report)
    if metrics:
        print()
        print(metrics)
    print()
    for kind, path in report.files.items():
        print(f"wrote {kind:<13} {path}")
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0
