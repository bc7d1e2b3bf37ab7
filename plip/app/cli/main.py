"""Entry point of the ``plip`` command.

Each subcommand lives in its own module of :mod:`plip.app.cli` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (a callable taking the
parsed arguments and returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from ...errors import PlipError
from ...version import __version__

# Module names under plip.app.cli, in the order `plip --help` lists them.
SUBCOMMANDS: tuple[str, ...] = (
    "models",
    "convert",
    "encode",
    "search",
    "index",
    "eval",
    "export",
    "synth",
    "caption",
    "attributes",
    "describe",
    "train",
    "demo",
)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``plip`` parser. Only the subcommand named in ``argv`` is built in full when its
    module sets ``HELP`` (its options need heavy imports, e.g. ``train``); the others
    are listed from ``HELP``, so that ``plip --help`` never imports torch."""
    chosen = next((a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")), None)
    parser = argparse.ArgumentParser(
        prog="plip",
        description="Pretrained person encoders (PLIP): encode, search, evaluate, train.",
    )
    parser.add_argument("--version", action="version", version=f"plip {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"{__package__}.{name}")
        if name != chosen and hasattr(module, "HELP"):
            subparsers.add_parser(name, help=module.HELP)
        else:
            module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (PlipError, FileNotFoundError, NotADirectoryError, IsADirectoryError) as err:
        print(f"plip {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"plip {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
