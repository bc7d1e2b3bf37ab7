"""Step time of PLIP pre-training with the paper's Swin-B tower (``pretrain_swin_b``) at full size.

One run, on this machine: a training step (forward + backward + Adan step, IVLC + TIC + IAP,
BERT layers 0-7 frozen as the recipe) of ``pretrain_swin_b`` (timm Swin-B at 256x128) and of
its baseline ``pretrain_neurips`` (the Modified ResNet-50 with the same heads), stepped in
turn on the same synthetic batches so that machine load hits both alike. Reported: median
step seconds, samples/s, the Swin-B / RN50 ratio, parameters, and peak resident memory.

The trunk is randomly initialised (``model.timm_pretrained=false``: step time does not
depend on the weights, and timm's ImageNet weights need the Hub). ``--amp bf16`` runs the
recipe's bf16 autocast (on a CPU with AVX-512 BF16; default fp32). ``--device cuda`` when a
GPU is there.

Usage::

    PYTHONPATH=. python benchmarks/bench_pretrain_step.py [--batch 4] [--steps 2] [--warmup 1] [--amp none|bf16]
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_training import Stepper, load_batches  # noqa: E402  (one step harness for both benchmarks)

from plip.training import load_config  # noqa: E402
from plip.training.tasks.pretrain import PretrainConfig, PretrainTask  # noqa: E402

RECIPES = {"Swin-B (pretrain_swin_b)": "pretrain_swin_b", "RN50 (pretrain_neurips)": "pretrain_neurips"}


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown CPU"


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=4, help="samples per step (default 4; the recipe: 128 per GPU)")
    parser.add_argument("--steps", type=int, default=2, help="measured steps per recipe (default 2)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured steps first (default 1)")
    parser.add_argument("--amp", choices=("none", "bf16"), default="none", help="autocast (the recipe: bf16)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.batch < 2 or args.batch % 2:
        parser.error("--batch must be even and >= 2 (two images per identity)")
    device = torch.device(args.device)
    began = time.perf_counter()
    from plip.data.synthetic import generate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        root = f"{tmp}/persons"
        generate_dataset(root, identities=max(4, args.batch), images_per_id=4, seed=0, workers=0, progress=False)
        common = [f"data.root={root}", f"train.batch_size={args.batch}", "data.num_workers=0", "train.amp=none",
                  "sampler.num_instances=2"]
        configs = {name: load_config(PretrainConfig, recipe, common + (
            ["model.timm_pretrained=false"] if "swin" in recipe else [])) for name, recipe in RECIPES.items()}
        batches = load_batches(PretrainTask(), configs["RN50 (pretrain_neurips)"], args.warmup + args.steps).batches
    steppers = {}
    for name, cfg in configs.items():
        steppers[name] = Stepper(PretrainTask(), cfg)
        steppers[name].model.to(device)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if args.amp == "bf16" else contextlib.nullcontext
    for i, batch in enumerate(batches):
        batch = to_device(batch, device)
        order = list(steppers.values()) if i % 2 else list(steppers.values())[::-1]
        for stepper in order:
            with autocast():
                stepper.step(batch, record=i >= args.warmup)
        if device.type == "cuda":
            torch.cuda.synchronize()
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{cpu_model()}, {torch.get_num_threads()} threads"
    print(f"pre-training step (IVLC + TIC + IAP, Adan, BERT 0-7 frozen), batch {args.batch}, 256x128, "
          f"amp {args.amp}, median of {args.steps} after {args.warmup} warm-up; {where}")
    header = f"{'recipe':<26}{'params':>9}{'trainable':>11}{'fwd s':>8}{'bwd s':>8}{'optim s':>9}{'step s':>8}{'samples/s':>11}"
    print(header)
    print("-" * len(header))
    for name, s in steppers.items():
        t = s.timings
        total = sum(p.numel() for p in s.model.parameters())
        print(f"{name:<26}{total / 1e6:>8.1f}M{s.trainable() / 1e6:>10.1f}M{t.median('forward'):>8.2f}"
              f"{t.median('backward'):>8.2f}{t.median('optimizer'):>9.2f}{t.step:>8.2f}{args.batch / t.step:>11.2f}")
    swin, rn50 = (steppers[n].timings.step for n in RECIPES)
    print(f"\nSwin-B / RN50 step time: x{swin / rn50:.2f} (same run, interleaved, same batches)")
    print(f"peak resident memory of the process (both models + Adan states): {peak_gib:.1f} GiB")
    print(f"total {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
