"""Kill at any moment: SIGKILL a 2-process torchrun run at random points, resume, same result.

Oracle: the same 2-process run never interrupted. Checkpoints are written every step, so the
kills land in every phase (start-up, training, checkpoint writes). After every kill each
checkpoint file must load; the resumed run must end with bit-identical weights and a
``metrics.jsonl`` holding each step exactly once; no half-written ``.tmp`` file may remain.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from plip.training.checkpoint import CheckpointManager, load_checkpoint  # noqa: E402
from plip.training.metrics import read_metrics  # noqa: E402

ARGS = ["training_toy:ToyTask", "train.epochs=2", "train.batch_size=4", "sampler.num_instances=2",
        "data.num_ids=12", "data.per_id=[4,3,5,4]", "optim.name=adamw", "optim.lr=0.01",
        "logging.every_steps=1", "logging.progress=false", "checkpoint.every_steps=1",
        "checkpoint.keep_last=2", "model.sleep_s=0.05", "train.device=cpu"]


def launch(out: Path, **popen) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO), str(HERE), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "plip.training", *ARGS, f"output_dir={out}", "--resume", "latest"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **popen)


def finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]


def all_checkpoints_load(out: Path) -> list[int]:
    steps = []
    for path in CheckpointManager(out / "checkpoints").list() + [out / "checkpoints" / "best.pt"]:
        if path.exists():
            steps.append(load_checkpoint(path)["progress"]["step"])  # raises if unreadable
    return steps


def latest_step(out: Path) -> int:
    """The newest checkpoint's step from its file name (safe while the run writes and prunes)."""
    latest = CheckpointManager(out / "checkpoints").latest()
    return int(latest.stem.split("-")[1]) if latest is not None else 0


def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path):
    finish(launch(tmp_path / "reference"))
    reference = load_checkpoint(CheckpointManager(tmp_path / "reference" / "checkpoints").latest())
    total = reference["progress"]["step"]

    out = tmp_path / "killed"
    rng = random.Random(12)
    kills = 0
    for _ in range(3):
        before = latest_step(out)
        proc = launch(out)
        # let the run get past start-up and make progress, then kill it at a random moment of
        # training (a checkpoint is written after every step, so many kills land in one)
        deadline = time.monotonic() + 240
        while proc.poll() is None and latest_step(out) <= before:
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.6))
        if proc.poll() is not None:
            break  # finished before the kill: nothing left to interrupt
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        kills += 1
        all_checkpoints_load(out)
    assert kills >= 2
    finish(launch(out))

    final = load_checkpoint(CheckpointManager(out / "checkpoints").latest())
    assert final["progress"]["step"] == total
    assert final["model"].keys() == reference["model"].keys()
    for key, value in reference["model"].items():
        assert torch.equal(final["model"][key], value), key
    steps = [r["step"] for r in read_metrics(out / "metrics.jsonl", "step")]
    assert steps == list(range(1, total + 1))  # none duplicated, none missing
    assert not list((out / "checkpoints").glob(".*.tmp"))


def test_half_written_checkpoints_are_removed_on_start(tmp_path):
    """Issue 18 item 10: a ``.tmp`` left by a kill during a checkpoint write is deleted on start."""
    from training_toy import ToyConfig, ToyTask

    from plip.training import load_config, train

    ckpt = tmp_path / "run" / "checkpoints"
    ckpt.mkdir(parents=True)
    stale = ckpt / ".step-000000004.pt.abc123.tmp"
    stale.write_bytes(b"half a pickle")
    cfg = load_config(ToyConfig, None, ARGS[1:-2] + ["train.epochs=1", f"output_dir={tmp_path / 'run'}"])
    train(ToyTask(), cfg, resume="latest", task_name="toy")
    assert not stale.exists()
    assert all_checkpoints_load(tmp_path / "run")
