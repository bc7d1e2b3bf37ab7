"""Arguments and helpers shared by several subcommands."""

from __future__ import annotations

import argparse


def add_model_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "--model", "-m", required=required,
        help="registry name (see `plip models`), hf-hub:org/repo[@rev], model folder, or official .pth.tar",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available, else cpu)")
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"], help="weights dtype")


def load_model_from_args(args: argparse.Namespace):
    import torch

    from ...inference import load

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    return load(args.model, device=device, dtype=args.dtype, runtime=getattr(args, "runtime", None))


def add_runtime_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runtime", default="torch", choices=["torch", "onnxruntime"],
        help="inference runtime: PyTorch, or onnxruntime (float32 CPU, exact; needs plip-person[onnx])",
    )


def add_optimize_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--optimize", default="auto", choices=["auto", "none", "trace", "compile"],
        help="image encoder on the CPU: frozen TorchScript graph (trace, ~1 s to build), torch.compile "
        "(compile, ~15 s, fastest), or eager (none); auto = trace for a float32 CPU model. All exact.",
    )


def apply_optimize(model, args: argparse.Namespace):
    """Build the image graph that ``--optimize`` asks for (an explicit mode on a model that is
    not float32 on the CPU is a PlipError); ``auto`` falls back to eager with a warning."""
    from ...inference.graphs import apply_optimize_mode

    if getattr(args, "runtime", "torch") == "onnxruntime":
        return model  # its graphs are onnxruntime's (plip.load(..., runtime=...))
    return apply_optimize_mode(model, args.optimize)


def write_hit_report(report: list[dict], *, json_path: str | None, html_path: str | None, title: str) -> None:
    """``--json`` / ``--html`` of the search commands: ``report`` is ``[{"query", "hits": [{rank, score,
    id, path, ...}]}]``."""
    import json
    from pathlib import Path

    from ...utils.io import atomic_write_text
    from ..visualize import QueryRow, RetrievedImage, relative_src, render_retrieval_html

    if json_path:
        atomic_write_text(json_path, json.dumps(report, indent=2) + "\n")
    if html_path:
        rows = [QueryRow(entry["query"], [RetrievedImage(h["rank"], h["path"], h["score"], h["id"]) for h in entry["hits"]])
                for entry in report]
        page = render_retrieval_html(rows, title=title, image_src=relative_src(Path(html_path).resolve().parent))
        atomic_write_text(html_path, page)
        print(f"\nwrote {html_path}")


def check_output_file(path: str, option: str) -> None:
    """Fail before any work when ``path`` cannot be written as a file (a folder, or a missing
    parent folder), naming ``option``."""
    from pathlib import Path

    from ...errors import PlipError

    target = Path(path)
    if target.is_dir():
        raise PlipError(f"{option} {path} is a folder; give a file name (e.g. {target / 'gallery.safetensors'})")
    if not target.parent.is_dir():
        raise PlipError(f"{option} {path}: folder {target.parent} does not exist")


FINGERPRINT_KEY = "model_fingerprint"


def model_identity(model) -> dict[str, str]:
    """What a gallery file records about the model that wrote it (see ``plip search``)."""
    from ...inference.fingerprint import model_fingerprint

    return {FINGERPRINT_KEY: model_fingerprint(model), "model_dtype": str(model.dtype).replace("torch.", "")}
