"""Encoding speed at full plip-rn50 size on CPU, against the way the official code runs.

Baseline (official): fixed 64-token padding, eager BERT attention, fp32 NCHW image forward
under ``torch.no_grad`` in batches of 32 (texts: 64). Ours: ``model.encode_text`` /
``model.encode_image`` as shipped (float32, length-sorted text batches, channels-last images
in micro-batches), then after ``model.optimize_for_inference(image="trace")`` (frozen
TorchScript graph) and ``image="compile"`` (torch.compile), both exact, and with
``text="int8"`` (approximate). All run on the same (randomly initialised) weights:
random weights are fine for speed, the compute does not depend on the values. Outputs are
compared: max |diff| for the exact paths, the lowest cosine similarity for int8.

Every variant runs in a fresh Python process (interleaved, best of ``--rounds``): the speed
of a CPU forward depends on the process's allocator history (glibc returns freed blocks
over 32 MiB to the kernel, and whether earlier work left reusable memory changes a forward
by up to 1.7x), so measuring one variant after another in one process is not a fair
comparison. A user's process runs one of them, from a fresh start.

The last lines put the figures against this CPU's float32 ceiling, measured in the same run:
a 2048^3 matrix product (the best case for the BLAS behind the convolutions and linears) and
each encoder's FLOPs per item (``torch.utils.flop_counter``).

    python benchmarks/bench_encoding.py [--texts 256] [--images 64] [--rounds 2] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

COLOURS = ["black", "white", "red", "blue", "grey", "green", "pink", "yellow", "brown", "purple", "orange", "dark"]
GARMENTS = ["shirt", "t-shirt", "jacket", "coat", "sweater", "hoodie", "dress", "vest", "blouse"]
LOWER = ["trousers", "jeans", "shorts", "skirt", "pants", "leggings"]
EXTRAS = [
    "carrying a {c} backpack", "holding a {c} handbag over the left shoulder", "wearing {c} sneakers",
    "with short {c} hair", "with long {c} hair tied in a ponytail", "wearing glasses", "walking towards the camera",
    "with a {c} umbrella in the right hand", "looking down at a phone", "wearing a {c} cap", "with a {c} scarf",
]
MODEL_DIR = os.path.join(tempfile.gettempdir(), "plip-bench-rn50")
VARIANTS = ["text-official", "text-plip", "text-int8", "image-official", "image-plip", "image-trace", "image-compile"]


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


# --------------------------------------------------------------------------- one variant (child process)


def run_variant(variant: str, n_texts: int, n_images: int, out_file: str) -> None:
    """Time one variant in this (fresh) process; save its embeddings, print its rate as JSON."""
    import plip

    model = plip.load(MODEL_DIR)
    kind, how = variant.split("-")
    if kind == "text":
        rng = random.Random(0)
        captions = [realistic_caption(rng) for _ in range(n_texts)]
        if how == "official":
            model.text.encoder.config._attn_implementation = "eager"
            hf = model.tokenizer.hf

            def encode():
                out = []
                with torch.no_grad():
                    for start in range(0, n_texts, 64):
                        batch = hf(captions[start : start + 64], padding="max_length", truncation=True,
                                   max_length=64, return_tensors="pt")
                        out.append(model.text(batch["input_ids"], batch["attention_mask"]).embedding)
                return F.normalize(torch.cat(out), dim=-1)
        else:
            if how == "int8":
                model.optimize_for_inference(image=False, text="int8")

            def encode():
                return model.encode_text(captions, batch_size=64)
        count = n_texts
    else:
        images = torch.randn(n_images, 3, 256, 128, generator=torch.Generator().manual_seed(0))
        if how == "official":
            visual = model.visual.to(memory_format=torch.contiguous_format)

            def encode():
                out = []
                with torch.no_grad():
                    for batch in images.split(32):
                        out.append(visual(batch))
                return F.normalize(torch.cat(out), dim=-1)
        else:
            if how in ("trace", "compile"):
                model.optimize_for_inference(image=how)  # compiling happens here, not in the timing

            def encode():
                return model.encode_image(images, batch_size=32)
        count = n_images
    seconds, embeddings = timed(encode)
    torch.save(embeddings, out_file)
    print(json.dumps({"rate": count / seconds}))


# --------------------------------------------------------------------------- driver


def float32_ceiling() -> tuple[float, float, float]:
    """(matmul GFLOP/s of this CPU, GFLOP per 64-token text, GFLOP per image)."""
    from torch.utils.flop_counter import FlopCounterMode

    import plip

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    seconds, _ = timed(lambda: a @ b, repeat=5)
    peak = 2 * 2048**3 / seconds / 1e9
    model = plip.load(MODEL_DIR)
    batch = model.tokenizer.hf(["x"] * 8, padding="max_length", max_length=64, return_tensors="pt")
    with torch.no_grad(), FlopCounterMode(display=False) as text_flops:
        model.text(batch["input_ids"], batch["attention_mask"])
    with torch.no_grad(), FlopCounterMode(display=False) as image_flops:
        model.visual(torch.zeros(8, 3, 256, 128))
    return peak, text_flops.get_total_flops() / 8e9, image_flops.get_total_flops() / 8e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="fresh processes per variant (best is kept)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # child process
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.variant:
        run_variant(args.variant, args.texts, args.images, args.out)
        return

    import plip
    from plip import PLIPModel, create_model
    from plip.models import PLIPConfig

    torch.manual_seed(0)
    create_model(PLIPConfig.rn50()).save_pretrained(MODEL_DIR)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, plip {plip.__version__}; "
          f"{args.texts} captions, {args.images} images 256x128; best of {args.rounds} fresh processes each")
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for variant in VARIANTS:
                out_file = os.path.join(tmp, f"{variant}.pt")
                command = [sys.executable, __file__, "--variant", variant, "--out", out_file,
                           "--texts", str(args.texts), "--images", str(args.images), "--threads", str(args.threads)]
                result = subprocess.run(command, capture_output=True, text=True, check=False)
                if result.returncode:
                    raise SystemExit(f"{variant} failed:\n{result.stderr}")
                rate = json.loads(result.stdout.strip().splitlines()[-1])["rate"]
                rates[variant] = max(rates.get(variant, 0.0), rate)
        emb = {v: torch.load(os.path.join(tmp, f"{v}.pt"), weights_only=True) for v in VARIANTS}

    for kind, unit in (("text", "texts/s"), ("image", "img/s")):
        base = rates[f"{kind}-official"]
        print(f"{kind:5} official          {base:7.1f} {unit}")
        for variant in VARIANTS:
            if not variant.startswith(kind) or variant.endswith("official"):
                continue
            diff = emb[variant] - emb[f"{kind}-official"]
            check = (f"min cosine to float32 {(emb[variant] * emb[f'{kind}-official']).sum(-1).min():.4f}"
                     if variant.endswith("int8") else f"max |diff| {diff.abs().max():.2e}")
            print(f"      {variant.split('-')[1]:17} {rates[variant]:7.1f} {unit} | x{rates[variant] / base:.2f} | {check}")

    peak, text_gflop, image_gflop = float32_ceiling()
    for name, gflop, rate in (("text (64 tokens)", text_gflop, rates["text-official"]),
                              ("image", image_gflop, rates["image-official"])):
        used = gflop * rate
        print(f"float32 ceiling, {name}: {gflop:.2f} GFLOP each; official runs at {used:.0f} GFLOP/s = "
              f"{100 * used / peak:.0f}% of a 2048^3 matmul ({peak:.0f} GFLOP/s)")


if __name__ == "__main__":
    main()
