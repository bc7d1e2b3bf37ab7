"""``plip encode``: embed a folder of images into a safetensors gallery file."""

from __future__ import annotations

import argparse
import os
import sys


def register(subparsers) -> None:
    from .common import add_model_args, add_optimize_arg, add_runtime_arg

    parser = subparsers.add_parser(
        "encode", help="embed images (a folder or files) into a gallery file",
        description="Embed every image under --images (recursively) and write the embeddings with "
        "their ids (paths relative to the folder) to a safetensors file. Encoding is written in shards "
        "to OUT.shards/ as it goes: a killed run resumes where it stopped when run again with the same "
        "arguments.",
    )
    add_model_args(parser)
    parser.add_argument("--images", "-i", required=True, nargs="+", help="image folder(s) or files")
    parser.add_argument("--out", "-o", required=True, help="output .safetensors file")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="decoding processes")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip unreadable or oversized images (counted at the end) and write the rest")
    parser.add_argument("--max-pixels", type=int, default=None, metavar="N",
                        help="refuse images of more than N decoded pixels (width x height) before decoding "
                             "(default: ~89.5M, PIL's limit)")
    parser.add_argument("--shard-size", type=int, default=4096, metavar="N",
                        help="images per crash-safe shard (what a killed run loses at most)")
    parser.add_argument("--no-progress", action="store_true")
    add_optimize_arg(parser)
    add_runtime_arg(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import shutil

    import torch

    from ...data.images import find_images
    from ...errors import PlipError
    from ...inference.embedding_files import EmbeddingFile, save_embeddings
    from ...inference.shards import encode_resumable
    from .common import apply_optimize, check_output_file, load_model_from_args, model_identity

    check_output_file(args.out, "--out")
    if args.max_pixels is not None and args.max_pixels < 1:
        raise PlipError(f"--max-pixels must be >= 1, got {args.max_pixels}")
    root, rel = find_images(args.images)
    model = load_model_from_args(args)
    identity = model_identity(model)
    model = apply_optimize(model, args)
    if args.max_pixels is not None:
        model.preprocess.max_pixels = args.max_pixels
    # Everything that changes the embeddings or which images are readable: shards of another
    # setting are never mixed into the output (they are discarded and encoded again).
    settings = {**identity, "device": str(model.device), "batch_size": args.batch_size,
                "max_pixels": args.max_pixels, "optimize": args.optimize, "runtime": args.runtime}
    work = args.out + ".shards"
    done = encode_resumable(
        model, root, rel, work, fingerprint=json.dumps(settings, sort_keys=True), shard_size=args.shard_size,
        batch_size=args.batch_size, workers=args.workers, skip_bad=args.skip_bad, progress=not args.no_progress,
        other_plan="restart",
    )
    if not done.kept:
        raise PlipError(f"none of the {len(rel)} images could be read; first: {done.bad[0][1]}")
    kept_ids = [rel[i] for i in done.kept]
    embeddings = torch.from_numpy(done.embeddings())
    gallery = EmbeddingFile(embeddings, kept_ids, root=root, model=str(args.model), extra=identity)
    save_embeddings(args.out, gallery)
    shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out}: {len(kept_ids)} embeddings of size {embeddings.shape[1]}")
    if done.bad:
        print(f"skipped {len(done.bad)} unreadable image(s) of {len(rel)} (undecodable, missing or over "
              f"the pixel limit); first: {done.bad[0][1]}", file=sys.stderr)
    return 0
