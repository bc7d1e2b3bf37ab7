"""``plip index``: build, grow, search, inspect and export a persistent gallery index.

``build`` and ``add`` live in :mod:`plip.index.cli` (also ``python -m plip.index``, the form
to launch under ``torchrun``); search, info, delete and export are here.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from ...index.cli import add_build_and_add

    parser = subparsers.add_parser(
        "index", help="persistent gallery index: build, add, search, delete, compact, info, export",
        description="A folder holding the embeddings of a gallery (memory-mapped), its ids, paths and metadata, "
        "an exact or FAISS search backend and the model that made it. Builds are sharded, resumable after a "
        "crash, and run under torchrun (python -m plip.index build ...).",
    )
    commands = parser.add_subparsers(dest="index_command", metavar="ACTION")
    commands.required = True
    add_build_and_add(commands)
    _search_parser(commands)
    _info_parser(commands)
    _delete_parser(commands)
    _compact_parser(commands)
    _export_parser(commands)


def _search_parser(commands) -> None:
    from ...index.cli import add_model_args

    p = commands.add_parser("search", help="search an index by text, image or embedding")
    p.add_argument("index", metavar="INDEX")
    p.add_argument("query", nargs="*", help="text queries (one search each)")
    add_model_args(p)
    p.add_argument("--image", action="append", default=[], help="query image (repeatable)")
    p.add_argument("--embedding", help="query embeddings: .npy file of shape (D,) or (Q, D)")
    p.add_argument("--top-k", "-k", type=int, default=10)
    p.add_argument("--where", action="append", default=[], metavar="FILTER",
                   help="metadata filter COLUMN OP VALUE, OP one of = != >= <= > < (repeatable; all must hold)")
    p.add_argument("--nprobe", type=int, help="ivf/ivfpq: lists probed (default 8)")
    p.add_argument("--ef", type=int, help="hnsw: search width (default 64)")
    p.add_argument("--refine", type=int, help="ivfpq: candidates re-scored exactly per hit (default 50)")
    p.add_argument("--exact", action="store_true", help="scan exactly, ignoring the FAISS backend")
    p.add_argument("--html", help="write an HTML page with the hits' thumbnails")
    p.add_argument("--json", help="write the hits as JSON")
    p.set_defaults(func=run_search)


def _info_parser(commands) -> None:
    p = commands.add_parser("info", help="what an index holds")
    p.add_argument("index", metavar="INDEX")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_info)


def _delete_parser(commands) -> None:
    p = commands.add_parser("delete", help="delete entries by id")
    p.add_argument("index", metavar="INDEX")
    p.add_argument("ids", nargs="*", help="ids to delete")
    p.add_argument("--ids-file", help="a file with one id per line")
    p.set_defaults(func=run_delete)


def _compact_parser(commands) -> None:
    p = commands.add_parser("compact", help="rewrite the index without its deleted entries",
                            description="Drop deleted entries from the files and merge the segments into one "
                            "(the FAISS backend is refilled from its trained template, not retrained). "
                            "A crash leaves the old index readable.")
    p.add_argument("index", metavar="INDEX")
    p.set_defaults(func=run_compact)


def _export_parser(commands) -> None:
    p = commands.add_parser("export", help="export ids, metadata and embeddings for a vector database")
    p.add_argument("index", metavar="INDEX")
    p.add_argument("--format", default="parquet", choices=["parquet"])
    p.add_argument("--out", "-o", required=True, help="output file")
    p.set_defaults(func=run_export)


# -- commands --------------------------------------------------------------------------
def run_search(args: argparse.Namespace) -> int:
    import numpy as np

    from ...errors import PlipError
    from ...index import Index
    from .common import write_hit_report

    if not args.query and not args.image and not args.embedding:
        raise PlipError("give at least one text query, --image or --embedding")
    index = Index.open(args.index)
    model = None
    if args.query or args.image:
        from ...index.cli import load_model

        model = load_model(args, (index.manifest.get("model") or {}).get("name"))
    embedding = None
    if args.embedding:
        try:
            embedding = np.load(args.embedding, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise PlipError(f"{args.embedding}: not a .npy array ({err})") from None
    results = index.search(args.query or None, image=args.image or None, embedding=embedding, model=model,
                           top_k=args.top_k, where=args.where or None, nprobe=args.nprobe, ef=args.ef, exact=args.exact,
                           refine=args.refine)
    labels = list(args.query) + [f"[image] {p}" for p in args.image]
    labels += [f"[embedding {i}]" for i in range(len(results) - len(labels))]
    report = []
    for label, hits in zip(labels, results):
        print(f"\n{label}")
        for hit in hits:
            extra = "  " + " ".join(f"{k}={v}" for k, v in hit.metadata.items()) if hit.metadata else ""
            print(f"  {hit.rank:>3}  {hit.score:.4f}  {hit.id}{extra}")
        report.append({"query": label, "hits": [
            {"rank": h.rank, "score": h.score, "id": h.id, "path": h.path, "metadata": h.metadata} for h in hits
        ]})
    write_hit_report(report, json_path=args.json, html_path=args.html, title=f"plip index search: {args.index}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    import json

    from ...index import Index

    info = Index.open(args.index).info()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(map(len, info))
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    from ...errors import PlipError
    from ...index import Index

    ids = list(args.ids)
    if args.ids_file:
        with open(args.ids_file, encoding="utf-8") as handle:
            ids += [line.strip() for line in handle if line.strip()]
    if not ids:
        raise PlipError("give ids to delete (arguments or --ids-file)")
    index = Index.open(args.index)
    removed = index.delete(ids)
    print(f"deleted {removed} entries from {args.index} (now {len(index)})")
    return 0


def run_compact(args: argparse.Namespace) -> int:
    from ...index import Index

    index = Index.open(args.index)
    before, segments = index.info()["bytes"], len(index.segments)
    dropped = index.compact()
    after = index.info()["bytes"]
    print(f"compacted {args.index}: dropped {dropped} deleted entries, {segments} segment(s) -> {len(index.segments)}, "
          f"{before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB ({len(index)} entries)")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ...index import Index

    count = Index.open(args.index).export_parquet(args.out)
    print(f"wrote {args.out}: {count} entries")
    return 0
