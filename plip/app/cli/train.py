"""``plip train``: train a task (PLIP pre-training, fine-tuning, downstream models).

The arguments are those of :mod:`plip.training.cli`; under ``torchrun`` the run is
distributed.
"""

from __future__ import annotations

import argparse

#: The line ``plip --help`` shows; setting it lets ``plip --help`` skip :func:`register`
#: (the training options import torch).
HELP = "train a task (pretrain, finetune, ...) on one CPU/GPU or under torchrun"


def register(subparsers: argparse._SubParsersAction) -> None:
    from ...training.cli import EPILOG, IntermixedArgumentParser, add_arguments

    parser = subparsers.add_parser(
        "train",
        help=HELP,
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
    from ...training.cli import run as _run

    return _run(args)
