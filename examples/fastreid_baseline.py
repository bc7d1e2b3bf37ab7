"""fast-reid's Baseline (and plip's MGN meta-architecture) on PLIP, from the shipped configs.

    pip install "plip-person[integrations]" && pip install fastreid==1.4.0 --no-deps
    python examples/fastreid_baseline.py

fast-reid 1.4's trainer, data loaders and evaluator do not import on Python >= 3.10 with
torch 2 (``collections.Mapping``, ``torch._six``); its models do. This script builds both
models from the shipped configs, runs a few training steps on a synthetic Market-1501 and
ranks its query set with plip's ReID metrics. Offline, CPU, plip-tiny-synth.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from fastreid.config import get_cfg
from fastreid.modeling import build_model
from fastreid.utils.events import EventStorage
from PIL import Image

import plip.integrations.fastreid as plip_fastreid
from plip.data.image_reid import read_market1501
from plip.data.synthetic.formats import write_market1501
from plip.evaluation.reid_metrics import compute_rank_metrics


def load(items, size):  # fast-reid's input: bicubic resize, 0..255 float tensors
    arrays = [np.asarray(Image.open(i.image_path).convert("RGB").resize(size[::-1], Image.BICUBIC)) for i in items]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/plip_fastreid_market")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    write_market1501(args.out, identities=40, images_per_id=4, overwrite=True)
    split = read_market1501(args.out)
    labels = torch.tensor(split.train_labels())
    for name in plip_fastreid.CONFIGS:
        cfg = get_cfg()
        cfg.merge_from_file(plip_fastreid.config_path(name))
        cfg.merge_from_list([
            "MODEL.DEVICE", "cpu", "MODEL.BACKBONE.PRETRAIN_PATH", "plip-tiny-synth",
            "MODEL.BACKBONE.FEAT_DIM", 512,  # plip-tiny-synth's layer4 width (2048 for plip-rn50)
            "MODEL.HEADS.NUM_CLASSES", split.num_train_ids, "INPUT.SIZE_TRAIN", [64, 32], "INPUT.SIZE_TEST", [64, 32],
        ])  # fmt: skip
        model = build_model(cfg)
        optimizer = torch.optim.Adam(model.parameters(), lr=3.5e-4)
        images = load(split.train, (64, 32))
        model.train()
        with EventStorage() as storage:
            for step in range(args.steps):
                pick = torch.randperm(len(images))[:32]
                losses = model({"images": images[pick].clone(), "targets": labels[pick]})
                optimizer.zero_grad()
                sum(losses.values()).backward()
                optimizer.step()
                storage.step()
        model.eval()
        with torch.no_grad():
            q = torch.nn.functional.normalize(model(load(split.query, (64, 32))), dim=1)
            g = torch.nn.functional.normalize(model(load(split.gallery, (64, 32))), dim=1)
        metrics = compute_rank_metrics(1 - q @ g.T, [i.person_id for i in split.query], [i.person_id for i in split.gallery],
                                       [i.camera_id for i in split.query], [i.camera_id for i in split.gallery])  # fmt: skip
        loss_text = ", ".join(f"{k} {v.item():.3f}" for k, v in losses.items())
        print(f"{name}: {cfg.MODEL.META_ARCHITECTURE} last losses {loss_text}; "
              f"rank-1 {metrics['rank1']:.1%}, mAP {metrics['mAP']:.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
