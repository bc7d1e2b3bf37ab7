"""``plip search``: query a gallery file by text or by image."""

from __future__ import annotations

import argparse
import html
import os
from pathlib import Path


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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from ..errors import PlipError
    from ..gallery import load_embeddings
    from ..retrieval import retrieve
    from ..utils.io import atomic_write_text
    from .common import load_model_from_args

    if not args.query and not args.image:
        raise PlipError("give at least one text query or --image")
    if args.top_k < 1:
        raise PlipError(f"--top-k must be >= 1, got {args.top_k}")
    gallery = load_embeddings(args.gallery)
    model = load_model_from_args(args)
    if gallery.embeddings.shape[1] != model.embed_dim:
        raise PlipError(
            f"{args.gallery}: embeddings of size {gallery.embeddings.shape[1]} do not match the model's "
            f"{model.embed_dim} (was it encoded with another model: {gallery.model or 'unknown'}?)"
        )
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
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    if args.html:
        atomic_write_text(args.html, render_hits_html(report, Path(args.html).resolve().parent, args.gallery))
        print(f"\nwrote {args.html}")
    return 0


def render_hits_html(report: list[dict], html_dir: Path, title: str) -> str:
    """A self-contained page: one row of thumbnails per query (image links relative to the page)."""
    rows = []
    for entry in report:
        cells = []
        for hit in entry["hits"]:
            src = os.path.relpath(hit["path"], html_dir) if hit["path"] else ""
            marker = " hit" if hit.get("correct") else (" miss" if hit.get("correct") is False else "")
            cells.append(
                f'<figure class="thumb{marker}"><img src="{html.escape(Path(src).as_posix())}" '
                f'alt="{html.escape(hit["id"])}" loading="lazy"><figcaption>#{hit["rank"]} '
                f'{hit["score"]:.3f}<br>{html.escape(hit["id"])}</figcaption></figure>'
            )
        rows.append(f'<section><h2>{html.escape(entry["query"])}</h2><div class="row">{"".join(cells)}</div></section>')
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>plip search: {html.escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:1em} .row{display:flex;gap:8px;flex-wrap:wrap}"
        "figure{margin:0;text-align:center;font-size:11px} img{height:160px;border:3px solid #ddd}"
        ".hit img{border-color:#2a2} .miss img{border-color:#c22} h2{font-size:15px}"
        "</style></head><body>\n" + "\n".join(rows) + "\n</body></html>\n"
    )
