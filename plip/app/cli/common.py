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
    not float32 on the CPU is a PlipError); ``auto`` falls back to eager with a note."""
    import sys

    import torch

    mode = args.optimize
    if getattr(args, "runtime", "torch") == "onnxruntime":
        return model  # its graphs are onnxruntime's (plip.load(..., runtime=...))
    if mode == "none":
        return model
    if mode != "auto":
        return model.optimize_for_inference(image=mode)
    if model.device.type != "cpu" or model.dtype != torch.float32:
        return model
    try:
        return model.optimize_for_inference(image="trace")
    except Exception as error:  # pragma: no cover - depends on the torch build
        print(f"note: image graph not built ({type(error).__name__}: {error}); encoding eagerly", file=sys.stderr)
        return model


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
    from ...evaluation.text_retrieval import model_fingerprint

    return {FINGERPRINT_KEY: model_fingerprint(model), "model_dtype": str(model.dtype).replace("torch.", "")}
