"""Arguments and runners of ``plip index build`` / ``add``, shared by the ``plip`` command and
``python -m plip.index`` (the form to launch under ``torchrun``; it cannot import :mod:`plip.app`).

Only ``argparse`` and ``os`` load at import time: ``plip --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys

# plip.index.backends.backend_names(), spelled out so that `--help` imports nothing heavy.
BACKENDS = ["auto", "exact", "flat", "ivf", "ivfpq", "hnsw"]


def add_model_args(parser: argparse.ArgumentParser, required: bool = False) -> None:
    """The model options of every plip command (the same flags as plip.app.cli.common's)."""
    parser.add_argument("--model", "-m", required=required,
                        help="registry name (see `plip models`), hf-hub:org/repo[@rev], model folder, or official .pth.tar")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda:LOCAL_RANK if available, else cpu)")
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"], help="weights dtype")
    parser.add_argument("--optimize", default="auto", choices=["auto", "none", "trace", "compile"],
                        help="image encoder on the CPU: TorchScript graph (trace), torch.compile, or eager (none); "
                        "auto = trace for a float32 CPU model. All exact.")


def add_build_and_add(commands) -> None:
    """Add the ``build`` and ``add`` actions to a subparsers object."""
    _build_parser(commands)
    _add_parser(commands)


def _encoding_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", "-i", nargs="+", help="image folder(s) or files (recursive)")
    parser.add_argument("--embeddings", help="a `plip encode` .safetensors file instead of images (no encoding)")
    parser.add_argument("--metadata", help="JSON lines or CSV with an `id` column (path relative to the images' "
                        "folder) and any other columns (camera, time, ...)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="decoding processes")
    parser.add_argument("--shard-size", type=int, default=4096, help="images per crash-safe shard")
    parser.add_argument("--skip-bad", action="store_true", help="skip unreadable images (reported, kept in skipped.json)")
    parser.add_argument("--no-progress", action="store_true")


def _build_parser(commands) -> None:
    p = commands.add_parser("build", help="encode a folder (or take a `plip encode` file) into a new index",
                            description="Encode every image under --images into INDEX. Interrupted builds resume "
                            "where they stopped when run again with the same arguments.")
    p.add_argument("index", metavar="INDEX", help="index folder to create")
    add_model_args(p)
    _encoding_args(p)
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="search backend; auto: exact up to 200k entries, then FAISS ivf, ivfpq past 2M")
    p.add_argument("--nlist", type=int, help="ivf/ivfpq: inverted lists (default about sqrt(N))")
    p.add_argument("--pq-m", type=int, help="ivfpq: sub-quantisers (default dim/8)")
    p.add_argument("--hnsw-m", type=int, help="hnsw: neighbours per node (default 32)")
    p.add_argument("--store-dtype", default="float16", choices=["float16", "float32"], help="stored embeddings")
    p.add_argument("--restart", action="store_true", help="discard the shards of an interrupted build")
    p.add_argument("--overwrite", action="store_true", help="replace an existing index")
    p.set_defaults(func=run_build)


def _add_parser(commands) -> None:
    p = commands.add_parser("add", help="append new images (or embeddings) to an index; old ones are not re-encoded")
    p.add_argument("index", metavar="INDEX")
    add_model_args(p)
    _encoding_args(p)
    p.add_argument("--id-prefix", default="", help="prepended to the new ids (keeps them apart from existing ones)")
    p.set_defaults(func=run_add)


# -- helpers ---------------------------------------------------------------------------
def load_model(args: argparse.Namespace, stored_name: str | None = None, optimize: bool = False):
    import torch

    from ..errors import PlipError
    from ..inference import load
    from ..inference.graphs import apply_optimize_mode

    name = args.model or stored_name
    if not name:
        raise PlipError("give --model (the index does not name the model it was built with)")
    device = args.device
    if device is None:
        local = int(os.environ.get("LOCAL_RANK", 0))
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    model = load(name, device=device, dtype=args.dtype)
    return apply_optimize_mode(model, args.optimize) if optimize else model


def _read_metadata(path: str | None) -> dict[str, dict] | None:
    import csv
    import json

    from ..errors import PlipError

    if not path:
        return None
    rows: dict[str, dict] = {}
    with open(path, encoding="utf-8", newline="") as handle:
        if path.lower().endswith(".csv"):
            records = list(csv.DictReader(handle))
        else:
            records = []
            for number, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError as err:
                        raise PlipError(f"{path}:{number}: not JSON ({err})") from None
    for number, record in enumerate(records, 1):
        if not isinstance(record, dict) or "id" not in record:
            raise PlipError(f"{path}: record {number} has no 'id' field")
        rows[str(record["id"])] = {k: v for k, v in record.items() if k != "id"}
    return rows


def _backend_params(args: argparse.Namespace) -> dict:
    params = {}
    if args.nlist and args.backend in ("ivf", "ivfpq", "auto"):
        params["nlist"] = args.nlist
    if args.pq_m and args.backend == "ivfpq":
        params["m"] = args.pq_m
    if args.hnsw_m and args.backend == "hnsw":
        params["M"] = args.hnsw_m
    return params


def _check_source(args: argparse.Namespace) -> None:
    from ..errors import PlipError

    if bool(args.images) == bool(args.embeddings):
        raise PlipError("give either --images or --embeddings")


# -- commands --------------------------------------------------------------------------
def run_build(args: argparse.Namespace) -> int:
    from ..errors import PlipError
    from .index import Index

    _check_source(args)
    metadata = _read_metadata(args.metadata)
    if args.embeddings:
        from ..inference.embedding_files import load_embeddings

        gallery = load_embeddings(args.embeddings)
        info = {"name": gallery.model} if gallery.model else None
        index = Index.from_embeddings(
            args.index, gallery.embeddings, gallery.ids, paths=[gallery.path_of(i) for i in range(len(gallery.ids))],
            metadata=metadata, model_info=info, backend=args.backend, backend_params=_backend_params(args),
            dtype=args.store_dtype, overwrite=args.overwrite,
        )
    else:
        if not args.model:
            raise PlipError("--model is needed to encode images")
        model = load_model(args, optimize=True)
        index = Index.build(
            args.index, model, args.images, metadata=metadata, backend=args.backend,
            backend_params=_backend_params(args), dtype=args.store_dtype, batch_size=args.batch_size,
            workers=args.workers, skip_bad=args.skip_bad, shard_size=args.shard_size,
            progress=not args.no_progress, restart=args.restart, overwrite=args.overwrite,
        )
    if _is_main():
        info = index.info()
        print(f"wrote {args.index}: {info['entries']} entries of size {info['dim']} ({info['dtype']}), "
              f"backend {info['backend']}")
    return 0


def run_add(args: argparse.Namespace) -> int:
    from .index import Index

    _check_source(args)
    index = Index.open(args.index)
    metadata = _read_metadata(args.metadata)
    if args.embeddings:
        from ..inference.embedding_files import load_embeddings

        gallery = load_embeddings(args.embeddings)
        added = index.add_embeddings(gallery.embeddings, [args.id_prefix + i for i in gallery.ids],
                                     paths=[gallery.path_of(i) for i in range(len(gallery.ids))], metadata=metadata)
    else:
        model = load_model(args, (index.manifest.get("model") or {}).get("name"), optimize=True)
        added = index.add(args.images, model, metadata=metadata, id_prefix=args.id_prefix,
                          batch_size=args.batch_size, workers=args.workers, skip_bad=args.skip_bad,
                          shard_size=args.shard_size, progress=not args.no_progress)
    if _is_main():
        print(f"added {added} entries to {args.index} (now {len(index)})")
    return 0


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def main(argv: list[str] | None = None) -> int:
    """``python -m plip.index build|add ...``."""
    from ..errors import PlipError

    parser = argparse.ArgumentParser(prog="python -m plip.index",
                                     description="Build or grow a plip index; runs under torchrun (one rank per process).")
    commands = parser.add_subparsers(dest="index_command", metavar="ACTION")
    commands.required = True
    add_build_and_add(commands)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (PlipError, FileNotFoundError, NotADirectoryError) as err:
        print(f"plip index {args.index_command}: error: {err}", file=sys.stderr)
        return 2
