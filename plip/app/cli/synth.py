"""``plip synth``: render a synthetic person dataset (SYNTH-PEDES + CUHK-PEDES format)."""

from __future__ import annotations

import argparse

from ...errors import ConfigError


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected three comma-separated fractions like 0.7,0.1,0.2, got {text!r}"
        ) from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three fractions (train,val,test), got {text!r}")
    return values  # type: ignore[return-value]


def _caption_range(text: str) -> tuple[int, int]:
    try:
        parts = [int(v) for v in text.split("-")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or a range like 2-3, got {text!r}") from None
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected a count or a range like 2-3, got {text!r}")
    return (parts[0], parts[-1])


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="render a synthetic pedestrian dataset with captions",
        description=(
            "Render synthetic pedestrians (256x128) with attribute captions into DIR: "
            "synthpedes_dataset.json (SYNTH-PEDES format), reid_raw.json (CUHK-PEDES format, "
            "train/val/test by identity), images under Part1/... (also reachable as imgs/Part1/...). "
            "The output is byte-identical for a given seed."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (empty or missing)")
    parser.add_argument(
        "--format",
        choices=("synthpedes", "market1501", "pa100k"),
        default="synthpedes",
        help="synthpedes: SYNTH-PEDES + CUHK-PEDES with captions; market1501: bounding_box_train / "
        "query / bounding_box_test (val joins train); pa100k: annotation.mat + data/ with 26 attributes "
        "(--ids-per-part, --captions-per-image and --workers apply to synthpedes only)",
    )
    parser.add_argument("--identities", type=int, default=1000, metavar="N", help="number of people")
    parser.add_argument("--images-per-id", type=int, default=4, metavar="K", help="images per person")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed")
    parser.add_argument(
        "--split",
        type=_fractions,
        default=(0.7, 0.1, 0.2),
        metavar="TRAIN,VAL,TEST",
        help="fractions of identities per split",
    )
    parser.add_argument("--ids-per-part", type=int, default=1000, metavar="M", help="identities per PartK folder")
    parser.add_argument(
        "--captions-per-image",
        type=_caption_range,
        default=(2, 3),
        metavar="LOW-HIGH",
        help="number of captions per image (a count or a range)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: CPU cores, at most 8; 0: none)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier `plip synth` output in DIR")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...data.synthetic import generate_dataset

    if args.workers is not None and args.workers < 0:
        raise ConfigError(f"--workers must be >= 0, got {args.workers}")
    if args.format != "synthpedes":
        return _run_format(args)
    dataset = generate_dataset(
        args.out,
        identities=args.identities,
        images_per_id=args.images_per_id,
        seed=args.seed,
        split=args.split,
        ids_per_part=args.ids_per_part,
        captions_per_image=args.captions_per_image,
        workers=args.workers,
        progress=not args.no_progress,
        overwrite=args.overwrite,
    )
    splits = ", ".join(f"{name} ids {a}-{b}" for name, (a, b) in dataset.split_ids.items() if b >= a)
    print(
        f"wrote {dataset.images} images of {dataset.identities} identities with {dataset.captions} captions "
        f"to {dataset.root} ({splits})"
    )
    return 0


def _run_format(args: argparse.Namespace) -> int:
    from ...data.synthetic.formats import write_market1501, write_pa100k

    writer = write_market1501 if args.format == "market1501" else write_pa100k
    result = writer(
        args.out, identities=args.identities, images_per_id=args.images_per_id, seed=args.seed,
        split=args.split, progress=not args.no_progress, overwrite=args.overwrite,
    )  # fmt: skip
    if args.format == "market1501":
        detail = ", ".join(f"{k} {v}" for k, v in result.counts.items())
        print(f"wrote Market-1501 format ({result.train_ids} train / {result.test_ids} test ids: {detail}) to {result.root}")
    else:
        detail = ", ".join(f"{k} {v}" for k, v in result.split_images.items())
        print(f"wrote PA-100K format ({result.images} images: {detail}) to {result.root}")
    return 0
