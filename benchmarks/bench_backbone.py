"""Cost of swapping torchvision's ResNet-50 for the PLIP backbone in a ReID model (CPU).

Baseline: torchvision ``resnet50`` with BoT's last stride 1 (``layer4[0]`` conv2 and
downsample conv set to stride 1), the backbone BoT / fast-reid / torchreid use. Ours:
``plip.backbone("plip-rn50", pretrained=False, last_stride=1, out_indices=3)`` and the
same through timm (``timm.create_model("plip_rn50", features_only=True, out_indices=(3,),
last_stride=1)``). Training step (forward + backward of the GAP feature) and inference
forward, measured in the same run on random weights and 256x128 inputs; the PLIP stem has
three convolutions and anti-aliased strides, so some extra cost is expected.

    python benchmarks/bench_backbone.py [--batch 16] [--threads N] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import torch

import plip


def torchvision_last_stride_1():
    from torchvision.models import resnet50

    net = resnet50()
    net.layer4[0].conv2.stride = (1, 1)
    net.layer4[0].downsample[0].stride = (1, 1)
    body = torch.nn.Sequential(*list(net.children())[:-2])
    return body


def plip_timm(weights: dict[str, torch.Tensor]):
    import timm

    net = timm.create_model("plip_rn50", features_only=True, out_indices=(3,), last_stride=1)
    net.load_state_dict(weights)  # same values as plip.backbone: speed must not depend on the draw
    return lambda x: net(x)[0], net


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    # Random weights give tiny deep activations; subnormal floats would make timings depend on the draw.
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, 256, 128)

    tv = torchvision_last_stride_1()
    ours = plip.backbone("plip-rn50", pretrained=False, last_stride=1, out_indices=3)
    timm_fn, timm_net = plip_timm(ours.state_dict())
    models = {"torchvision resnet50 (last stride 1)": (tv, tv), "plip.backbone": (ours, ours),
              "timm plip_rn50 features_only": (timm_fn, timm_net)}

    print(f"batch {args.batch} x 3 x 256 x 128, {torch.get_num_threads()} threads, best of {args.repeat} "
          f"(models measured in turn, so load changes hit all of them)")
    steps = {}
    for name, (fn, module) in models.items():
        with torch.no_grad():
            shape = tuple(fn(x[:1]).shape[1:])
        params = sum(p.numel() for p in module.parameters()) / 1e6
        print(f"{name:40s} map {shape}  {params:5.1f}M params")

        def train_step(fn=fn, module=module):
            module.train()
            module.zero_grad(set_to_none=True)
            fn(x).mean(dim=(2, 3)).sum().backward()

        def infer(fn=fn, module=module):
            module.eval()
            with torch.inference_mode():
                fn(x)

        steps[name] = (train_step, infer)
        train_step(), infer()  # warm-up
    results = {name: [float("inf"), float("inf")] for name in models}
    for _ in range(args.repeat):
        for name, pair in steps.items():
            for i, step in enumerate(pair):
                results[name][i] = min(results[name][i], timed(step))
    for name, (t_train, t_infer) in results.items():
        print(f"{name:40s} train step {t_train:.3f}s  inference {t_infer:.3f}s")
    base_train, base_infer = results["torchvision resnet50 (last stride 1)"]
    for name, (t_train, t_infer) in results.items():
        print(f"{name:40s} train x{t_train / base_train:.2f}  inference x{t_infer / base_infer:.2f} (vs torchvision)")


if __name__ == "__main__":
    main()
