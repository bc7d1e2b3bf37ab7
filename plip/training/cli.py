"""Command line of the training engine: ``plip train`` and ``python -m plip.training``.

Both take the same arguments::

    plip train TASK [--config CFG.yaml | RECIPE] [key.sub=value ...] [--resume latest|PATH]
    torchrun --nproc_per_node=N -m plip.training TASK ...

Under ``torchrun`` (``RANK`` / ``WORLD_SIZE`` set) the run is distributed, whichever
entry point is used; there is no launcher of our own.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import pkgutil
import sys
from typing import Sequence

from ..errors import PlipError
from .config import dump_config, list_recipes, load_config

__all__ = ["add_arguments", "run", "main", "IntermixedArgumentParser"]

EPILOG = """\
overrides: any config key, dotted, with a value parsed by the key's type, e.g.
  optim.lr=2e-3 train.epochs=70 schedule.milestones=[30,50] optim.lr_mult.text=0.1
  train.clip_grad_norm=null
multi-GPU / multi-node: launch the same command under torchrun, e.g.
  torchrun --nproc_per_node=4 -m plip.training TASK --config cfg.yaml
  (nccl on GPUs, gloo on CPU; output_dir must be on a filesystem shared by the nodes)
"""


class IntermixedArgumentParser(argparse.ArgumentParser):
    """A parser that accepts options between positional arguments
    (``TASK --config c.yaml a=1 --resume latest b=2``), also as a subcommand parser."""

    _intermixed_active = False

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        if self._intermixed_active:
            return super().parse_known_args(args, namespace)
        self._intermixed_active = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixed_active = False


def _shipped_task_names() -> list[str]:
    """The modules of ``plip.training.tasks`` (one per shipped task), found without importing
    them, so that ``--help`` stays fast."""
    spec = importlib.util.find_spec("plip.training.tasks")
    locations = spec.submodule_search_locations if spec is not None else None
    return sorted(m.name for m in pkgutil.iter_modules(locations or []) if not m.name.startswith("_"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the training arguments to ``parser``."""
    tasks = ", ".join(_shipped_task_names()) or "none shipped"
    parser.add_argument("task", metavar="TASK",
                        help=f"training task ({tasks}), or package.module:TaskClass")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides (see below)")
    recipes = ", ".join(list_recipes()) or "none shipped yet"
    parser.add_argument("-c", "--config", metavar="YAML",
                        help=f"config file, or the name of a shipped recipe ({recipes}); "
                             "default: the task's own recipe")
    parser.add_argument("--resume", metavar="latest|PATH",
                        help="continue a run: 'latest' (newest checkpoint of output_dir; starts fresh "
                             "if there is none) or a checkpoint file")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config (YAML) and exit without training")


def _setup_logging() -> None:
    rank = int(os.environ.get("RANK", "0") or 0)
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s [rank {rank}] %(message)s" if "RANK" in os.environ else "%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
    )


def run(args: argparse.Namespace) -> int:
    """Load and validate the config (before any data), then train."""
    from .task import get_task  # torch: only once a task runs (`--help` stays fast)

    task = get_task(args.task)
    cfg = load_config(task.config_class, args.config or task.default_recipe, args.overrides)
    if args.print_config:
        print(dump_config(cfg), end="")
        return 0
    from .engine import train

    _setup_logging()
    result = train(task, cfg, resume=args.resume, task_name=args.task)
    if result.export_dir is not None:
        logging.getLogger("plip.training").info("model exported to %s", result.export_dir)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m plip.training`` entry point."""
    parser = IntermixedArgumentParser(
        prog="python -m plip.training", description="Train a plip task (also: plip train).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except PlipError as err:
        print(f"plip train: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("plip train: interrupted", file=sys.stderr)
        return 130
