"""Cost of PLIP's pre-training heads and attribute masking, with in-run baselines.

Measures, at full plip-rn50 sizes on the current device:

* IAP head forward+backward with vocabulary logits gathered at the masked positions only
  (what :func:`plip.training.pretext.pretraining_losses` does) vs. logits at every position
  (baseline);
* TIC decoder forward+backward;
* attribute masking of a tokenised batch vs. tokenising that batch (baseline: the work the
  collate function does anyway).

Usage::

    python benchmarks/pretext_heads.py [--batch 8] [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from transformers import BertTokenizerFast

from plip.training.losses import colorization_loss, masked_token_loss
from plip.training.masking import AttributeMasker, mask_ratio_schedule
from plip.training.pretext import AttributePredictionHead, ColorizationDecoder

VOCAB = Path(__file__).resolve().parents[1] / "plip" / "assets" / "bert-base-uncased-vocab.txt"
CAPTIONS = [
    "A woman with long black hair is wearing a light-blue T-shirt with grey trousers. "
    "She is also wearing white sneakers and carrying a red backpack.",
    "The man wears a dark jacket, blue jeans and brown shoes; he holds an umbrella.",
]


def timed(fn, repeats: int, device: str) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def tokenizer() -> BertTokenizerFast:
    for argument in ("vocab", "vocab_file"):  # transformers 5.x / 4.x
        tok = BertTokenizerFast(**{argument: str(VOCAB)}, do_lower_case=True)
        if tok.mask_token_id == 103:
            return tok
    raise SystemExit(f"cannot load {VOCAB}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device, batch = args.device, args.batch
    torch.manual_seed(0)

    tok = tokenizer()
    captions = [CAPTIONS[i % 2] for i in range(batch)]
    encoded = tok(captions, padding=True, truncation=True, max_length=64, return_tensors="pt")
    masker = AttributeMasker(tok)
    ratio = mask_ratio_schedule(35, 70)
    t_tok = timed(lambda: tok(captions, padding=True, truncation=True, max_length=64, return_tensors="pt"),
                  args.repeats, "cpu")
    t_mask = timed(lambda: masker(encoded["input_ids"], encoded["attention_mask"], ratio), args.repeats, "cpu")
    print(f"masking {batch} captions: {t_mask * 1e3:.2f} ms vs tokenising them {t_tok * 1e3:.2f} ms "
          f"(ratio {t_mask / t_tok:.2f})")

    ids = encoded["input_ids"].to(device)
    attention = encoded["attention_mask"].to(device)
    _, target = masker(encoded["input_ids"], encoded["attention_mask"], ratio)
    target = target.to(device)
    head = AttributePredictionHead(768, 12, 3072, tok.vocab_size).to(device)
    hidden = torch.randn(batch, ids.shape[1], 768, device=device, requires_grad=True)
    image = torch.randn(batch, 768, device=device, requires_grad=True)

    def iap(gathered: bool) -> None:
        logits = head(hidden, image, attention, target_mask=target if gathered else None)
        masked_token_loss(logits, ids, target).backward()

    t_gathered = timed(lambda: iap(True), args.repeats, device)
    t_full = timed(lambda: iap(False), args.repeats, device)
    print(f"IAP head fwd+bwd, batch {batch}x{ids.shape[1]} tokens, {int(target.sum())} masked: "
          f"gathered {t_gathered * 1e3:.1f} ms vs all positions {t_full * 1e3:.1f} ms "
          f"(ratio {t_gathered / t_full:.2f})")

    decoder = ColorizationDecoder((256, 512, 1024, 2048), text_dim=768).to(device)
    strides = (4, 8, 16, 32)
    stages = [torch.randn(batch, c, 256 // s, 128 // s, device=device, requires_grad=True)
              for c, s in zip((256, 512, 1024, 2048), strides)]
    text = torch.randn(batch, 768, device=device, requires_grad=True)
    colour = torch.randn(batch, 3, 256, 128, device=device)
    t_dec = timed(lambda: colorization_loss(decoder(stages, text), colour).backward(), args.repeats, device)
    print(f"TIC decoder fwd+bwd, batch {batch} at 256x128: {t_dec * 1e3:.1f} ms "
          f"({batch / t_dec:.1f} samples/s) on {device}")


if __name__ == "__main__":
    main()
