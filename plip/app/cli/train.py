"""``plip train``: train a task (PLIP pre-training, fine-tuning, downstream models).

The arguments are those of :mod:`plip.training.cli`; under ``torchrun`` the run is
distributed.
"""

from __future__ import annotations

import argparse

from ...training.cli import EPILOG, IntermixedArgumentParser, add_arguments
from ...training.cli import run as _run


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a task (pretrain, finetune, ...) on one CPU/GPU or under torchrun",
        description="Train a plip task. Runs unchanged on one CPU, one GPU, or many processes "
                    "launched by torchrun.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Let options sit between the task and its overrides (argparse's default parser cannot).
    parser.__class__ = IntermixedArgumentParser
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return _run(args)
