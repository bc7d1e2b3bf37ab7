"""How far BoT's centre-loss centres travel: reid-strong-baseline's rule vs a shared optimizer.

    python benchmarks/bot_centres.py [--steps 2000]

Features of 751 identities (2048-d, fixed class means + noise) arrive in P x K = 16 x 4
batches. The centres start at N(0, 1) and are updated either as plip's ``bot`` task now does
(reid-strong-baseline: their own SGD, lr 0.5, on the gradient divided by the centre-loss
weight 0.0005; :class:`plip.training.optim.ScaledGradSGD`) or as plip did before (in the
Adam group at 3.5e-4 with the 10-epoch warm-up from 0.01, no weight decay). Prints the mean
distance of a centre to its class mean at the start and at the end.
"""

from __future__ import annotations

import argparse
import subprocess

import torch

from plip.downstream.losses import CenterLoss
from plip.training.optim import ScaledGradSGD


def run(rule: str, steps: int, seed: int = 0) -> tuple[float, float]:
    g = torch.Generator().manual_seed(seed)
    classes, dim, p, k, w = 751, 2048, 16, 4, 0.0005
    means = torch.randn(classes, dim, generator=g) * 0.5
    torch.manual_seed(seed)
    loss_fn = CenterLoss(classes, dim)
    if rule == "rsb":
        opt = ScaledGradSGD(loss_fn.parameters(), lr=0.5, grad_scale=1 / w)
    else:
        opt = torch.optim.Adam(loss_fn.parameters(), lr=3.5e-4)
    start = float((loss_fn.centers.detach() - means).norm(dim=1).mean())
    steps_per_epoch = 12936 // (p * k)
    for step in range(steps):
        if rule == "shared":  # the old recipe's warm-up over 10 epochs from 0.01
            e = step / steps_per_epoch
            opt.param_groups[0]["lr"] = 3.5e-4 * (0.01 + 0.99 * e / 10 if e < 10 else 1.0)
        ids = torch.randperm(classes, generator=g)[:p].repeat_interleave(k)
        feats = means[ids] + 0.3 * torch.randn(len(ids), dim, generator=g)
        opt.zero_grad()
        (w * loss_fn(feats, ids)).backward()
        opt.step()
    return start, float((loss_fn.centers.detach() - means).norm(dim=1).mean())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    print(subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout.strip())
    for rule in ("rsb", "shared"):
        start, end = run(rule, args.steps)
        print(f"{rule:>7}: mean centre-to-class-mean distance {start:.2f} -> {end:.2f} after {args.steps} steps")


if __name__ == "__main__":
    main()
