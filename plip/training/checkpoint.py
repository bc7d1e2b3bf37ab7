"""Training checkpoints: atomic writes, keep-last-N, ``latest`` resolution, RNG capture.

A training checkpoint is one file ``<output_dir>/checkpoints/step-<global step>.pt`` (and
``best.pt``) written by rank 0 with :func:`torch.save` to a temporary file in the same
folder, flushed to disk and renamed over the final name (``os.replace`` is atomic), so a
crash during a save never leaves a half-written checkpoint behind.

It holds only tensors and plain Python values (RNG states are converted to tensors), so it
loads with ``torch.load(weights_only=True)``, which cannot run code. Keys:

- ``format``, ``format_version``, ``plip_version``, ``torch_version``, ``task``
- ``config``: the resolved run configuration (nested dicts)
- ``model``, ``optimizer``, ``scheduler``, ``scaler``: ``state_dict()`` of each
- ``task_state``: the task's own extra state (``Task.state_dict``)
- ``progress``: epoch, batch within the epoch, global step, running metric sums, best metric
- ``sampler``: ``{"epoch", "batches_consumed"}``
- ``world_size``, ``global_batch``
- ``rng``: one entry per rank: ``{"python", "numpy", "torch", "cuda"}``

The exported model (the task's ``export``) is separate: safetensors in our folder format.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from ..utils.io import atomic_path

__all__ = [
    "CHECKPOINT_FORMAT",
    "capture_rng_state",
    "restore_rng_state",
    "save_checkpoint",
    "load_checkpoint",
    "CheckpointManager",
    "resolve_resume",
]

CHECKPOINT_FORMAT = "plip-training-checkpoint"
FORMAT_VERSION = 1
_STEP_RE = re.compile(r"^step-(\d+)\.pt$")


# ----------------------------------------------------------------------------- RNG
def capture_rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """This process's Python, NumPy, torch and (if used) CUDA generator states as tensors."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": int(version), "state": torch.tensor(mt, dtype=torch.int64),
                   "gauss": gauss},
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": None,
    }
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng_state(state: dict[str, Any], device: torch.device | None = None) -> None:
    """Inverse of :func:`capture_rng_state`."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"],
                         npy["has_gauss"], npy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if device is not None and device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


# ----------------------------------------------------------------------------- files
def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not supported on this platform / filesystem
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
    _fsync_dir(path.parent)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a training checkpoint with ``torch.load(weights_only=True)``.

    Raises:
        CheckpointError: the file is missing, unreadable, or not a plip training checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # corrupted, truncated or unsafe pickle
        raise CheckpointError(f"checkpoint '{path}' cannot be read: {err}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"'{path}' is not a plip training checkpoint (no format '{CHECKPOINT_FORMAT}')")
    if state.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint '{path}' has format version {state['format_version']}, newer than this "
            f"plip understands ({FORMAT_VERSION}); upgrade plip"
        )
    return state


class CheckpointManager:
    """The checkpoints of one run: ``step-<N>.pt`` files (keep the last N) and ``best.pt``."""

    def __init__(self, directory: str | os.PathLike, keep_last: int = 3) -> None:
        if keep_last < 1:
            raise ValueError("keep_last must be >= 1")
        self.directory = Path(directory)
        self.keep_last = keep_last

    def path_for(self, step: int) -> Path:
        return self.directory / f"step-{step:09d}.pt"

    @property
    def best_path(self) -> Path:
        return self.directory / "best.pt"

    def list(self) -> list[Path]:
        """Periodic checkpoints, oldest first (temporary files are never listed)."""
        if not self.directory.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.directory.iterdir()
                 if (m := _STEP_RE.match(p.name)) and p.is_file()]
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        paths = self.list()
        return paths[-1] if paths else None

    def clean_temporary(self) -> list[Path]:
        """Delete the half-written ``.<name>.*.tmp`` files a killed run left in the folder
        (call it on rank 0 before any rank writes); returns what was deleted."""
        if not self.directory.is_dir():
            return []
        stale = [p for p in self.directory.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    def save(self, state: dict[str, Any], step: int) -> Path:
        """Write ``step-<step>.pt`` and delete the oldest beyond ``keep_last``."""
        path = save_checkpoint(state, self.path_for(step))
        for old in self.list()[: -self.keep_last]:
            old.unlink(missing_ok=True)
        return path

    def save_best(self, state: dict[str, Any]) -> Path:
        return save_checkpoint(state, self.best_path)


def resolve_resume(resume: str | None, directory: str | os.PathLike) -> Path | None:
    """The checkpoint file to resume from.

    Args:
        resume: ``None`` (fresh start), ``"latest"`` (the newest ``step-*.pt`` in
            ``directory``; ``None`` if there is none yet), or a file path.

    Raises:
        CheckpointError: ``resume`` is a path that does not exist.
    """
    if resume is None:
        return None
    if resume == "latest":
        return CheckpointManager(directory).latest()
    path = Path(resume)
    if path.is_dir():
        latest = CheckpointManager(path).latest() or CheckpointManager(path / "checkpoints").latest()
        if latest is None:
            raise CheckpointError(f"no checkpoint (step-*.pt) in folder '{path}'")
        return latest
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' given to --resume does not exist")
    return path
