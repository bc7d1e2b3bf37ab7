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

    from ..hub import load

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    return load(args.model, device=device, dtype=args.dtype)
