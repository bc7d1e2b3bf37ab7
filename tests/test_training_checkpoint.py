"""Training checkpoints: atomic writes, keep-last-N, ``latest``, RNG states, safe loading.

References: the atomic-write contract (a failed save leaves the previous file and no
partial file), keep-last-N by step number, and round trips of Python / NumPy / torch
generator states through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from plip.errors import CheckpointError
from plip.training import checkpoint as ckpt_mod
from plip.training.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointManager,
    capture_rng_state,
    load_checkpoint,
    resolve_resume,
    restore_rng_state,
    save_checkpoint,
)


def state(step: int) -> dict:
    return {"format": CHECKPOINT_FORMAT, "format_version": 1, "step": step, "w": torch.full((4,), float(step))}


def test_failed_save_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "ck" / "step-000000001.pt"
    save_checkpoint(state(1), path)
    good = path.read_bytes()

    real_save = torch.save

    def crashing_save(obj, fh, *a, **kw):
        fh.write(b"partial bytes of a checkpoint")  # some data reaches the disk...
        raise OSError("disk full")  # ...then the save fails

    monkeypatch.setattr(ckpt_mod.torch, "save", crashing_save)
    with pytest.raises(OSError):
        save_checkpoint(state(2), path)
    with pytest.raises(OSError):
        save_checkpoint(state(3), tmp_path / "ck" / "step-000000003.pt")
    monkeypatch.setattr(ckpt_mod.torch, "save", real_save)
    assert path.read_bytes() == good  # the previous checkpoint is intact
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["step-000000001.pt"]  # no temp files
    assert load_checkpoint(path)["step"] == 1


def test_keep_last_n_and_latest(tmp_path):
    mgr = CheckpointManager(tmp_path, keep_last=2)
    for step in (5, 10, 15, 20):
        mgr.save(state(step), step)
    mgr.save_best(state(10))
    (tmp_path / ".step-000000025.pt.abc.tmp").write_bytes(b"junk")  # a crash's leftover
    assert [p.name for p in mgr.list()] == ["step-000000015.pt", "step-000000020.pt"]
    assert mgr.latest().name == "step-000000020.pt"
    assert load_checkpoint(mgr.best_path)["step"] == 10
    assert resolve_resume("latest", tmp_path) == mgr.latest()
    assert resolve_resume(str(mgr.path_for(15)), tmp_path) == mgr.path_for(15)
    assert resolve_resume(None, tmp_path) is None
    assert resolve_resume("latest", tmp_path / "empty") is None
    with pytest.raises(CheckpointError, match="nope.pt"):
        resolve_resume(str(tmp_path / "nope.pt"), tmp_path)


def test_rng_states_round_trip_through_weights_only_load(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.randn()  # leaves a cached Gaussian in NumPy's state
    saved = capture_rng_state(torch.device("cpu"))
    expected = (random.random(), np.random.randn(3), torch.rand(3))
    save_checkpoint({"format": CHECKPOINT_FORMAT, "rng": [saved]}, tmp_path / "r.pt")
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"][0], torch.device("cpu"))
    got = (random.random(), np.random.randn(3), torch.rand(3))
    assert got[0] == expected[0]
    assert np.array_equal(got[1], expected[1])
    assert torch.equal(got[2], expected[2])


def test_load_rejects_foreign_and_broken_files(tmp_path):
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a plip training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "cut.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="cut.pt"):
        load_checkpoint(tmp_path / "cut.pt")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": CHECKPOINT_FORMAT, "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="evil.pt"):  # weights_only refuses arbitrary objects
        load_checkpoint(tmp_path / "evil.pt")
