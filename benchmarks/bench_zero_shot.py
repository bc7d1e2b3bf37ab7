"""Cost of zero-shot attribute recognition against plain image encoding (CPU).

Baseline: ``model.encode_image(images)`` on the same images in the same run. Ours:
``classify_attributes(model, images, schema)`` with the schema's prompts already cached
(the steady state: prompts are encoded once per model and schema), and the one-off cost of
encoding the prompts on the first call. The ratio classify / encode should be close to 1:
after the cache is warm, classifying adds one small matrix product per attribute.

    python benchmarks/bench_zero_shot.py [--model plip-tiny-synth] [--images 256] [--schema pa100k] [--repeat 3]
"""

from __future__ import annotations

import argparse
import subprocess
import time

import numpy as np
import torch

import plip
from plip.inference.zero_shot import _PROMPT_CACHE, classify_attributes
from plip.inference.zero_shot_schema import get_schema


def best_of_interleaved(repeat: int, *fns) -> list[float]:
    """Best time of each function, calling them in turn so that load changes hit both."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, out in zip(fns, times):
            tic = time.perf_counter()
            fn()
            out.append(time.perf_counter() - tic)
    return [min(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="plip-tiny-synth")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--schema", default="pa100k")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout.strip())
    model = plip.load(args.model)
    size = model.config.preprocess.image_size
    images = torch.from_numpy(np.random.default_rng(0).standard_normal((args.images, 3, *size)).astype(np.float32))
    schema = get_schema(args.schema)
    prompts = sum(len(v.prompts) for a in schema.attributes for v in a.values)
    _PROMPT_CACHE.pop(model, None)
    tic = time.perf_counter()
    classify_attributes(model, images[:1], schema)
    first = time.perf_counter() - tic
    encode, classify = best_of_interleaved(
        args.repeat, lambda: model.encode_image(images), lambda: classify_attributes(model, images, schema)
    )
    print(f"model {args.model}, schema {schema.name} ({len(schema.columns)} columns, {prompts} prompts), "
          f"{args.images} images, {torch.get_num_threads()} threads")
    print(f"first call (prompts encoded once): {first:.2f} s")
    print(f"encode_image:        {encode:.3f} s  ({args.images / encode:.0f} img/s)")
    print(f"classify_attributes: {classify:.3f} s  ({args.images / classify:.0f} img/s)")
    print(f"ratio classify / encode: {classify / encode:.3f}")


if __name__ == "__main__":
    main()
