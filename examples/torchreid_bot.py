"""Train PLIP's BoT in torchreid's own engine on a synthetic Market-1501 (offline, CPU, ~1 min).

    pip install "plip-person[integrations]"
    python examples/torchreid_bot.py --out /tmp/plip_torchreid

With real data, point ``root`` at the folder holding ``market1501/`` and use ``"plip_bot"``
(pretrained plip-rn50) instead of the tiny model registered here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torchreid

import plip.integrations.torchreid as plip_torchreid
from plip.data.synthetic.formats import write_market1501


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/plip_torchreid", help="work folder (data + logs)")
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    root = Path(args.out)
    if not (root / "market1501").exists():
        write_market1501(root / "market1501", identities=40, images_per_id=4)  # = plip synth --format market1501

    # the shipped tiny model (64x32 input) under a torchreid name; "plip_bot" itself loads plip-rn50
    plip_torchreid.register("plip_bot_tiny", "bot", backbone="plip-tiny-synth", overwrite=True)
    datamanager = torchreid.data.ImageDataManager(
        root=str(root), sources="market1501", use_gpu=False, workers=0, batch_size_train=32,
        train_sampler="RandomIdentitySampler", num_instances=4,
        **plip_torchreid.datamanager_kwargs("plip_bot_tiny"),  # height, width, PLIP mean / std
    )  # fmt: skip
    model = torchreid.models.build_model("plip_bot_tiny", num_classes=datamanager.num_train_pids, loss="triplet")
    optimizer = torchreid.optim.build_optimizer(model, optim="adam", lr=3.5e-4)
    scheduler = torchreid.optim.build_lr_scheduler(optimizer, lr_scheduler="single_step", stepsize=40)
    engine = torchreid.engine.ImageTripletEngine(
        datamanager, model, optimizer=optimizer, scheduler=scheduler, margin=0.3, use_gpu=False
    )
    engine.run(save_dir=str(root / "log"), max_epoch=args.epochs, print_freq=5, ranks=[1, 5, 10])


if __name__ == "__main__":
    main()
