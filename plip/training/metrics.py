"""Run metrics: JSON lines (``metrics.jsonl``) and, optionally, TensorBoard.

Each line of ``metrics.jsonl`` is one record with a ``kind``:

- ``step``: every ``logging.every_steps`` optimizer steps: ``epoch``, ``step`` (optimizer
  steps done), ``epoch_progress``, ``lr`` (first group) and ``lr/<group>`` (the rates the
  last step used), the task's
  loss terms averaged over ranks and over the steps since the previous record,
  ``grad_norm`` (when clipping), ``samples_per_s`` (global), ``data_share`` (share of time
  waiting for data), ``time`` (Unix seconds);
- ``epoch``: at the end of an epoch: the loss terms averaged over the epoch, ``epoch_s``;
- ``eval``: the task's evaluation results and ``best`` (whether they improved).

After a resume, records past the resumed step are removed first, so the file reads as
if the run had not been interrupted.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .config import atomic_write_text

__all__ = ["MetricsLogger", "read_metrics"]


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN / inf
    return value


class MetricsLogger:
    """Append records to ``metrics.jsonl`` (and TensorBoard); use on rank 0 only."""

    def __init__(self, output_dir: str | os.PathLike, *, jsonl: bool = True, tensorboard: bool = False) -> None:
        self.path = Path(output_dir) / "metrics.jsonl"
        self.jsonl = jsonl
        self._fh = None
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError(
                    "config key 'logging.tensorboard' is true but the tensorboard package is not "
                    "installed (pip install 'plip-person[tensorboard]')"
                ) from None
            self._tb = SummaryWriter(log_dir=str(Path(output_dir) / "tensorboard"))

    def truncate_after(self, step: int) -> None:
        """Drop records with ``step`` greater than ``step`` (called when resuming)."""
        if not self.jsonl or not self.path.exists():
            return
        kept = [json.dumps(r) for r in read_metrics(self.path) if r.get("step", 0) <= step]
        atomic_write_text(self.path, "".join(line + "\n" for line in kept))

    def log(self, record: dict[str, Any]) -> None:
        record = {k: _clean(v) for k, v in record.items()}
        if self.jsonl:
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.path, "a", encoding="utf-8")
            self._fh.write(json.dumps(record) + "\n")
            self._fh.flush()
        if self._tb is not None:
            kind, step = record.get("kind", "step"), int(record.get("step", 0))
            for key, value in record.items():
                if key in ("kind", "step", "epoch", "time") or not isinstance(value, (int, float)):
                    continue
                if isinstance(value, bool):
                    continue
                self._tb.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def read_metrics(path: str | os.PathLike, kind: str | None = None) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` file (optionally only those of one ``kind``).

    A last line cut short by a crash is ignored.
    """
    records = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if kind is None or rec.get("kind") == kind:
                records.append(rec)
    return records
