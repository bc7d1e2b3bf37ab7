"""The training loop: resume = uninterrupted, DDP = one process, accumulation, checkpoints.

The task is the toy metric-learning task of ``training_toy.py`` (MLP, no BatchNorm; loss =
per-sample cross-entropy + a contrastive loss over the embeddings gathered from all ranks).
References:
- resume: an uninterrupted run with the same config (same weights, same per-step losses);
- DDP: one process holding the whole global batch (same weights within float tolerance);
  this holds because the loss is a sample mean or a function of the gathered batch and
  the model has no BatchNorm nor dropout (see plip.training.engine's docstring);
- accumulation: one process with the larger batch, for a sample-mean loss.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from training_toy import ToyConfig, ToyTask  # noqa: E402

from plip.errors import ConfigError  # noqa: E402
from plip.training import load_config, train  # noqa: E402
from plip.training.checkpoint import CheckpointManager, load_checkpoint  # noqa: E402
from plip.training.metrics import read_metrics  # noqa: E402

REPO = HERE.parent

# 12 identities with 4, 3, 5, 4, ... images (short groups included): 48 samples, 6 steps of 8.
BASE = [
    "train.epochs=3", "train.batch_size=8", "sampler.num_instances=4", "data.per_id=[4,3,5,4]",
    "optim.name=adan", "optim.lr=0.01", "optim.weight_decay=0.01", "schedule.warmup_epochs=1",
    "schedule.milestones=[2]", "train.clip_grad_norm=1.0", "logging.every_steps=1",
    "logging.progress=false", "checkpoint.every_steps=2", "checkpoint.keep_last=2",
]


def run_inprocess(out: Path, *overrides: str, resume: str | None = None):
    cfg = load_config(ToyConfig, None, [*BASE, f"output_dir={out}", *overrides])
    return train(ToyTask(), cfg, resume=resume, task_name="toy")


def final_weights(out: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(CheckpointManager(out / "checkpoints").latest())["model"]


def step_losses(out: Path) -> dict[int, float]:
    records = read_metrics(out / "metrics.jsonl", "step")
    losses = {r["step"]: r["loss"] for r in records}
    assert len(losses) == len(records), "a step was logged twice"
    return losses


def assert_same_weights(a, b, atol=1e-6):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=1e-5, msg=lambda m: f"{k}: {m}")


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HERE), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_crash_and_resume_equals_uninterrupted(tmp_path):
    """A run that crashes mid-epoch (before step 9, last checkpoint at step 8) and is resumed
    with --resume latest ends with the weights and per-step losses of an uninterrupted run.
    Dropout and random augmentations make this depend on RNG and sampler restoration."""
    ref = run_inprocess(tmp_path / "ref", "model.dropout=0.2")
    crashed = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_inprocess(crashed, "model.dropout=0.2", "model.crash_at_step=9")
    latest = CheckpointManager(crashed / "checkpoints").latest()
    state = load_checkpoint(latest)
    assert state["progress"]["step"] == 8 and state["progress"]["batch"] == 2  # mid-epoch
    with pytest.raises(ConfigError, match="--resume latest"):  # refuses to overwrite silently
        run_inprocess(crashed, "model.dropout=0.2")
    resumed = run_inprocess(crashed, "model.dropout=0.2", resume="latest")
    assert resumed.global_step == ref.global_step == 18
    assert_same_weights(final_weights(crashed), final_weights(tmp_path / "ref"), atol=1e-7)
    assert step_losses(crashed) == pytest.approx(step_losses(tmp_path / "ref"), rel=1e-6)
    epochs = [r["loss"] for r in read_metrics(crashed / "metrics.jsonl", "epoch")]
    ref_epochs = [r["loss"] for r in read_metrics(tmp_path / "ref" / "metrics.jsonl", "epoch")]
    assert epochs == pytest.approx(ref_epochs, rel=1e-6)


def test_run_outputs(tmp_path):
    """config.yaml, metrics.jsonl, keep-last-2 checkpoints, best.pt and the exported model."""
    out = tmp_path / "run"
    res = run_inprocess(out, "eval.every_epochs=1", "eval.metric=acc")
    assert load_config(ToyConfig, out / "config.yaml").output_dir == str(out)
    assert [p.name for p in CheckpointManager(out / "checkpoints").list()] == \
        ["step-000000016.pt", "step-000000018.pt"]
    evals = read_metrics(out / "metrics.jsonl", "eval")
    assert len(evals) == 3 and all("acc" in r for r in evals)
    best_acc = max(r["acc"] for r in evals)
    assert res.best_metric == pytest.approx(best_acc)
    assert load_checkpoint(res.best_checkpoint)["progress"]["best"] == pytest.approx(best_acc)
    steps = read_metrics(out / "metrics.jsonl", "step")
    assert [r["step"] for r in steps] == list(range(1, 19))
    assert steps[0]["lr"] == pytest.approx(0.01 * 0.1)  # warm-up starts at warmup_factor
    assert steps[-1]["lr"] == pytest.approx(0.01 * 0.1)  # after the milestone at epoch 2
    from safetensors.torch import load_file

    exported = load_file(res.export_dir / "model.safetensors")
    assert_same_weights(exported, final_weights(out), atol=0)


def test_grad_accumulation_equals_larger_batch(tmp_path):
    """batch 4 x 2 accumulated micro-batches = batch 8, for the sample-mean (cross-entropy) loss."""
    run_inprocess(tmp_path / "big", "model.contrastive_weight=0", "train.epochs=1")
    run_inprocess(tmp_path / "acc", "model.contrastive_weight=0", "train.epochs=1",
                  "train.batch_size=4", "train.grad_accum=2")
    assert_same_weights(final_weights(tmp_path / "acc"), final_weights(tmp_path / "big"), atol=1e-6)


def test_ddp_two_gloo_processes_equal_one_process(tmp_path):
    """torchrun with 2 CPU processes (gloo), batch 4 each, equals 1 process with batch 8:
    same final parameters and same logged losses (rank-averaged) within float tolerance."""
    common = ["train.epochs=2", "logging.every_steps=1"]
    run_inprocess(tmp_path / "single", *common)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "plip.training", "training_toy:ToyTask", *BASE, *common, "train.batch_size=4",
           f"output_dir={tmp_path / 'ddp'}"]
    proc = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp_ckpt = load_checkpoint(CheckpointManager(tmp_path / "ddp" / "checkpoints").latest())
    assert ddp_ckpt["world_size"] == 2 and len(ddp_ckpt["rng"]) == 2
    assert_same_weights(ddp_ckpt["model"], final_weights(tmp_path / "single"), atol=1e-5)
    assert step_losses(tmp_path / "ddp") == pytest.approx(step_losses(tmp_path / "single"), rel=1e-5)


@pytest.mark.slow
def test_ddp_crash_and_resume(tmp_path):
    """Two gloo processes crash mid-epoch (step 5; checkpoint at step 4), resume on two processes
    from every rank's RNG states and the sampler position, and end like one process that never
    stopped."""
    common = ["train.epochs=2"]
    run_inprocess(tmp_path / "single", *common)
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
              "-m", "plip.training", "training_toy:ToyTask", *BASE, *common, "train.batch_size=4",
              f"output_dir={tmp_path / 'ddp'}", "--resume", "latest"]
    crashed = subprocess.run([*launch, "model.crash_at_step=5"], env=subprocess_env(), capture_output=True,
                             text=True, timeout=180)
    assert crashed.returncode != 0 and "simulated crash" in crashed.stderr
    state = load_checkpoint(CheckpointManager(tmp_path / "ddp" / "checkpoints").latest())
    assert state["progress"]["step"] == 4 and len(state["rng"]) == 2
    resumed = subprocess.run(launch, env=subprocess_env(), capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_weights(final_weights(tmp_path / "ddp"), final_weights(tmp_path / "single"), atol=1e-5)
    assert step_losses(tmp_path / "ddp") == pytest.approx(step_losses(tmp_path / "single"), rel=1e-5)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_latest(tmp_path):
    """A real `python -m plip.training` process killed with SIGKILL mid-epoch, then relaunched
    with --resume latest, ends like an uninterrupted run."""
    ref = tmp_path / "ref"
    run_inprocess(ref, "model.dropout=0.2")
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "plip.training", "training_toy:ToyTask", *BASE, "model.dropout=0.2",
           f"output_dir={out}", "--resume", "latest"]
    proc = subprocess.Popen([*cmd, "model.sleep_s=0.15"], env=subprocess_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    mgr = CheckpointManager(out / "checkpoints")
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            latest = mgr.latest()
            if latest is not None and int(latest.stem.split("-")[1]) >= 10:
                time.sleep(0.2)  # now somewhere in the middle of epoch 2
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed_at = load_checkpoint(mgr.latest())["progress"]["step"]
    assert killed_at < 18
    again = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_same_weights(final_weights(out), final_weights(ref), atol=1e-6)
    assert step_losses(out) == pytest.approx(step_losses(ref), rel=1e-5)


def test_loader_workers_do_not_change_the_run(tmp_path):
    """Augmentations are seeded per sample, so 2 DataLoader workers give the run of 0 workers."""
    run_inprocess(tmp_path / "w0", "train.epochs=1")
    run_inprocess(tmp_path / "w2", "train.epochs=1", "data.num_workers=2")
    assert_same_weights(final_weights(tmp_path / "w2"), final_weights(tmp_path / "w0"), atol=0)


def test_bf16_autocast_on_cpu_trains(tmp_path):
    """train.amp=bf16 runs on CPU (autocast) and still lowers the loss on the toy task."""
    run_inprocess(tmp_path / "bf16", "train.amp=bf16", "train.epochs=3", "optim.lr=0.03")
    losses = [r["loss"] for r in read_metrics(tmp_path / "bf16" / "metrics.jsonl", "epoch")]
    assert losses[-1] < losses[0]


def test_plip_train_command_accepts_options_between_overrides(tmp_path, capsys):
    """`plip train TASK a=1 --config c.yaml b=2 --resume latest` parses (argparse alone cannot)."""
    from plip.app.cli.main import main as plip_main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  epochs: 2\n")
    code = plip_main(["train", "training_toy:ToyTask", "train.seed=3", "--config", str(cfg),
                      "model.hidden=5", "--print-config", "--resume", "latest"])
    assert code == 0
    out = capsys.readouterr().out
    assert "epochs: 2" in out and "seed: 3" in out and "hidden: 5" in out
