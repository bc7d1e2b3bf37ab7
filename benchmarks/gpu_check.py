"""GPU readiness: every training task a few steps on CUDA, in bf16 and in fp16 with the scaler.

    python benchmarks/gpu_check.py [--steps 6] [--size rn50|small]           # one GPU
    torchrun --nproc_per_node=N benchmarks/gpu_check.py                       # nccl + SyncBN

Each task (pretrain, finetune, bot, mgn, par) runs its shipped recipe on synthetic data at
the chosen model size for ``--steps`` optimizer steps per precision. Under torchrun with
more than one GPU the runs use nccl and SyncBatchNorm (``train.sync_bn=true``). It prints,
per task and precision, the median step time (after the first step) and the peak GPU memory,
with the GPU's name. Without CUDA it says so and exits (``--cpu`` runs the same steps on the
CPU in float32, a smoke test of the script itself).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # dataset writers shared with the tests (not in the wheel)

RECIPES = {"pretrain": "pretrain_paper", "finetune": "finetune_cmpmc", "bot": "bot_market1501",
           "mgn": "mgn_market1501", "par": "par_pa100k"}


def machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} x {torch.cuda.device_count()}"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


def build_data(base: Path, size: str) -> dict[str, str]:
    from test_training_ddp import write_market, write_pa100k

    from plip.data.synthetic import generate_dataset
    from plip import create_model
    from plip.models import PLIPConfig

    generate_dataset(base / "synth", identities=32, images_per_id=4, seed=1, workers=0, progress=False)
    if size == "rn50":
        config = PLIPConfig.rn50()
    else:
        config = PLIPConfig.small(image_size=(256, 128))
    torch.manual_seed(0)
    create_model(config).save_pretrained(base / "plip")
    return {"synth": str(base / "synth"), "market": str(write_market(base / "market", train_ids=32)),
            "pa100k": str(write_pa100k(base / "pa100k")), "plip": str(base / "plip")}


def overrides(task: str, data: dict[str, str], out: Path, steps: int, amp: str, device: str, world: int,
              size: str) -> list[str]:
    common = [f"output_dir={out}", f"train.max_steps={steps}", "train.epochs=100", f"train.amp={amp}",
              f"train.device={device}", f"train.sync_bn={'true' if world > 1 and device == 'cuda' else 'false'}",
              "data.num_workers=2", "logging.progress=false", "logging.every_steps=1", "eval.every_epochs=0",
              "checkpoint.every_epochs=1000"]
    if task == "pretrain":
        # a fresh model with the recipe's heads (the released checkpoint's)
        return common + [f"model.name={size}", "model.init=null", f"data.root={data['synth']}",
                         f"model.freeze_text_layers={8 if size == 'rn50' else 0}", "train.batch_size=16",
                         "data.eval_root=", "data.eval_dataset="]
    if task == "finetune":
        return common + [f"model.init={data['plip']}", "data.dataset=synth-pedes", f"data.root={data['synth']}",
                         "train.batch_size=16"]
    if task in ("bot", "mgn"):
        return common + [f"model.name={data['plip']}", f"data.root={data['market']}", "train.batch_size=16",
                         "data.image_size=[256,128]"]
    return [c for c in common if not c.startswith("eval.")] + [
        "eval.every_epochs=1000", f"model.name={data['plip']}", f"data.root={data['pa100k']}",
        "train.batch_size=4", "data.image_size=[256,128]"]


def run_one(task: str, data, out: Path, steps: int, amp: str, device: str, world: int, size: str) -> dict:
    from plip.training import get_task, load_config, train
    from plip.training.metrics import read_metrics

    t = get_task(task)
    cfg = load_config(t.config_class, RECIPES[task], overrides(task, data, out, steps, amp, device, world, size))
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    train(t, cfg, task_name=task)
    times = [r["time"] for r in read_metrics(out / "metrics.jsonl", "step")] if (out / "metrics.jsonl").exists() else []
    step_s = statistics.median(b - a for a, b in zip(times[1:], times[2:])) if len(times) > 2 else float("nan")
    mem = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else float("nan")
    return {"task": task, "amp": amp, "step_s": step_s, "peak_mib": mem}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--size", choices=["rn50", "small"], default="rn50")
    parser.add_argument("--tasks", default=",".join(RECIPES))
    parser.add_argument("--cpu", action="store_true", help="no GPU: run the steps on the CPU in float32")
    args = parser.parse_args()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    print(f"machine: {machine()}; world size {world}")
    if not torch.cuda.is_available() and not args.cpu:
        print("gpu_check: no CUDA device here; nothing was measured (run it on a GPU machine, "
              "or pass --cpu for a float32 smoke run of the script).")
        return 0
    device = "cuda" if torch.cuda.is_available() else "cpu"
    precisions = ["bf16", "fp16"] if device == "cuda" else ["none"]
    if device == "cuda" and not torch.cuda.is_bf16_supported():
        precisions = ["fp16"]
    rank = int(os.environ.get("RANK", "0"))
    base = Path(os.environ.get("GPU_CHECK_DIR") or tempfile.mkdtemp(prefix="plip-gpu-check-"))
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group("nccl" if device == "cuda" else "gloo")
        if device == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        if rank == 0:
            data = build_data(base, args.size)
        dist.barrier()
        data = {k: str(base / k) for k in ("synth", "market", "pa100k", "plip")}
    else:
        data = build_data(base, args.size)
    results = []
    for task in args.tasks.split(","):
        for amp in precisions:
            try:
                results.append(run_one(task, data, base / "runs" / f"{task}-{amp}", args.steps, amp, device, world,
                                       args.size))
            except Exception as err:  # report and go on: the point is to see every path
                results.append({"task": task, "amp": amp, "error": f"{type(err).__name__}: {err}"})
    if rank == 0:
        print(f"{'task':<10}{'amp':<6}{'step s':>10}{'peak MiB':>10}")
        for r in results:
            if "error" in r:
                print(f"{r['task']:<10}{r['amp']:<6}  FAILED {r['error'][:300]}")
            else:
                print(f"{r['task']:<10}{r['amp']:<6}{r['step_s']:>10.3f}{r['peak_mib']:>10.0f}")
        print(json.dumps(results))
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
