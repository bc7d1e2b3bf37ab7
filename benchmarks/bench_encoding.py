"""Encoding speed at full plip-rn50 size on CPU, against the way the official code runs.

Baseline (official): fixed 64-token padding, eager BERT attention, fp32 NCHW image forward
under ``torch.no_grad``. Ours: ``model.encode_text`` / ``model.encode_image`` as shipped.
Both are measured in the same run on the same (randomly initialised) weights; outputs are
compared. Random weights are fine for speed: the compute does not depend on the values.

    python benchmarks/bench_encoding.py [--texts 512] [--images 64] [--threads N]
"""

from __future__ import annotations

import argparse
import copy
import random
import time

import torch
import torch.nn.functional as F

import plip
from plip.models import PLIPConfig, PLIPModel

COLOURS = ["black", "white", "red", "blue", "grey", "green", "pink", "yellow", "brown", "purple", "orange", "dark"]
GARMENTS = ["shirt", "t-shirt", "jacket", "coat", "sweater", "hoodie", "dress", "vest", "blouse"]
LOWER = ["trousers", "jeans", "shorts", "skirt", "pants", "leggings"]
EXTRAS = [
    "carrying a {c} backpack", "holding a {c} handbag over the left shoulder", "wearing {c} sneakers",
    "with short {c} hair", "with long {c} hair tied in a ponytail", "wearing glasses", "walking towards the camera",
    "with a {c} umbrella in the right hand", "looking down at a phone", "wearing a {c} cap", "with a {c} scarf",
]


def realistic_caption(rng: random.Random) -> str:
    """A pedestrian description of roughly 15-60 words, in CUHK-PEDES style."""
    c = lambda: rng.choice(COLOURS)  # noqa: E731
    parts = [f"The {rng.choice(['man', 'woman', 'person', 'young man', 'lady'])} is wearing a {c()} "
             f"{rng.choice(GARMENTS)} with {c()} {rng.choice(LOWER)}."]
    target = rng.randint(15, 60)
    while len(" ".join(parts).split()) < target:
        parts.append(f"{rng.choice(['He', 'She', 'The person'])} is {rng.choice(EXTRAS).format(c=c())}.")
    return " ".join(" ".join(parts).split()[:target])


def timed(fn, repeat: int = 2) -> tuple[float, object]:
    fn()  # warm-up
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def bench_text(model: PLIPModel, n: int) -> None:
    rng = random.Random(0)
    captions = [realistic_caption(rng) for _ in range(n)]
    baseline_model = copy.deepcopy(model)
    baseline_model.text.encoder.config._attn_implementation = "eager"
    hf = model.tokenizer.hf

    def official():
        out = []
        with torch.no_grad():
            for start in range(0, n, 64):
                batch = hf(captions[start : start + 64], padding="max_length", truncation=True, max_length=64,
                           return_tensors="pt")
                out.append(baseline_model.text(batch["input_ids"], batch["attention_mask"]).embedding)
        return F.normalize(torch.cat(out), dim=-1)

    def ours():
        return model.encode_text(captions, batch_size=64)

    t_base, e_base = timed(official)
    t_ours, e_ours = timed(ours)
    tokens = sum(len(x) for x in model.tokenizer.encode(captions)) / n
    print(f"text  ({n} captions, mean {tokens:.1f} tokens): official {n / t_base:7.1f} texts/s | "
          f"plip {n / t_ours:7.1f} texts/s | speed-up x{t_base / t_ours:.2f} | "
          f"max |diff| {(e_base - e_ours).abs().max():.2e}")


def bench_image(model: PLIPModel, n: int) -> None:
    torch.manual_seed(0)
    images = torch.randn(n, 3, 256, 128)
    baseline_visual = copy.deepcopy(model.visual).to(memory_format=torch.contiguous_format)

    def official():
        out = []
        with torch.no_grad():
            for batch in images.split(32):
                out.append(baseline_visual(batch))
        return F.normalize(torch.cat(out), dim=-1)

    def ours():
        return model.encode_image(images, batch_size=32)

    t_base, e_base = timed(official)
    t_ours, e_ours = timed(ours)
    print(f"image ({n} images 256x128): official {n / t_base:7.1f} img/s | plip {n / t_ours:7.1f} img/s | "
          f"speed-up x{t_base / t_ours:.2f} | max |diff| {(e_base - e_ours).abs().max():.2e}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, plip {plip.__version__}")
    torch.manual_seed(0)
    folder = "/tmp/plip-bench-rn50"
    PLIPModel(PLIPConfig.rn50()).save_pretrained(folder)
    model = plip.load(folder)
    bench_text(model, args.texts)
    bench_image(model, args.images)


if __name__ == "__main__":
    main()
