"""``plip search``: query a gallery file by text or by image."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from .common import add_model_args, add_runtime_arg

    parser = subparsers.add_parser(
        "search", help="search a gallery file (from `plip encode`) by text or by image",
    )
    add_model_args(parser)
    add_runtime_arg(parser)
    parser.add_argument("--gallery", "-g", required=True, help="gallery .safetensors from `plip encode`")
    parser.add_argument("query", nargs="*", help="text queries (one search each)")
    parser.add_argument("--image", action="append", default=[], help="query image (repeatable)")
    parser.add_argument("--top-k", "-k", type=int, default=10)
    parser.add_argument("--html", help="write an HTML page with the hits' thumbnails")
    parser.add_argument("--json", help="write the hits as JSON")
    parser.add_argument("--allow-model-mismatch", action="store_true",
                        help="search a gallery that another model (or dtype) encoded (its scores are not comparable)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...errors import PlipError
    from ...inference.embedding_files import load_embeddings
    from ...inference.retrieval import retrieve
    from .common import check_output_file, load_model_from_args, write_hit_report

    if not args.query and not args.image:
        raise PlipError("give at least one text query or --image")
    if args.top_k < 1:
        raise PlipError(f"--top-k must be >= 1, got {args.top_k}")
    for option, path in (("--json", args.json), ("--html", args.html)):
        if path:
            check_output_file(path, option)
    gallery = load_embeddings(args.gallery)
    model = load_model_from_args(args)
    if gallery.embeddings.shape[1] != model.embed_dim:
        raise PlipError(
            f"{args.gallery}: embeddings of size {gallery.embeddings.shape[1]} do not match the model's "
            f"{model.embed_dim} (was it encoded with another model: {gallery.model or 'unknown'}?)"
        )
    _check_same_model(gallery, model, args)
    labels = list(args.query) + [f"[image] {p}" for p in args.image]
    parts = []
    if args.query:
        parts.append(model.encode_text(list(args.query)))
    if args.image:
        parts.append(model.encode_image(list(args.image)))
    import torch

    result = retrieve(torch.cat(parts), gallery.embeddings, top_k=args.top_k)
    report = []
    for q, label in enumerate(labels):
        print(f"\n{label}")
        hits = []
        for rank, (idx, score) in enumerate(zip(result.indices[q].tolist(), result.scores[q].tolist()), 1):
            print(f"  {rank:>3}  {score:.4f}  {gallery.ids[idx]}")
            hits.append({"rank": rank, "score": score, "id": gallery.ids[idx], "path": gallery.path_of(idx)})
        report.append({"query": label, "hits": hits})
    write_hit_report(report, json_path=args.json, html_path=args.html, title=f"plip search: {args.gallery}")
    return 0


def _check_same_model(gallery, model, args: argparse.Namespace) -> None:
    """A gallery encoded by another model (same width or not) is refused unless
    ``--allow-model-mismatch``; one without a fingerprint (older plip) gets a note."""
    import sys

    from ...errors import PlipError
    from .common import FINGERPRINT_KEY, model_identity

    recorded = gallery.extra.get(FINGERPRINT_KEY)
    if not recorded:
        print(f"note: {args.gallery} records no model fingerprint (written by an older plip); "
              "cannot check that it was encoded by this model", file=sys.stderr)
        return
    mine = model_identity(model)
    if mine[FINGERPRINT_KEY] == recorded:
        return
    what = (f"{args.gallery} was encoded by {gallery.model or 'another model'} "
            f"({gallery.extra.get('model_dtype', '?')}, fingerprint {recorded[:12]}), not by {args.model} "
            f"({mine['model_dtype']}, fingerprint {mine[FINGERPRINT_KEY][:12]})")
    if not args.allow_model_mismatch:
        raise PlipError(f"{what}: its scores against this model's queries mean nothing. Encode the gallery "
                        "with this model, or pass --allow-model-mismatch")
    print(f"warning: {what}; searching anyway (--allow-model-mismatch)", file=sys.stderr)
