"""Peak memory of encoding N images from disk: it must not grow with N.

Each N runs in a fresh subprocess that writes nothing but embeddings; the peak resident set
size (ru_maxrss) is reported. The images are written once (256x128 JPEGs, reused for larger N
by cycling paths — decoding cost and memory are per image either way).

    python benchmarks/bench_memory.py [--sizes 1000 10000] [--full]   # --full: plip-rn50 size (slow)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, resource, sys, time, torch
import plip
folder, image_dir, n, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
import os
files = sorted(os.path.join(image_dir, f) for f in os.listdir(image_dir))
paths = [files[i % len(files)] for i in range(n)]
model = plip.load(folder)
start = time.perf_counter()
emb = model.encode_image(paths, batch_size=64, num_workers=workers)
seconds = time.perf_counter() - start
print(json.dumps({"n": n, "seconds": seconds, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "shape": list(emb.shape)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--full", action="store_true", help="plip-rn50 size instead of a tiny model")
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()

    import numpy as np
    from PIL import Image

    import plip
    from plip import PLIPModel, create_model
from plip.models import PLIPConfig

    with tempfile.TemporaryDirectory() as tmp:
        config = PLIPConfig.rn50() if args.full else PLIPConfig.tiny(image_size=(256, 128))
        create_model(config).save_pretrained(os.path.join(tmp, "model"))
        image_dir = os.path.join(tmp, "images")
        os.makedirs(image_dir)
        rng = np.random.default_rng(0)
        for i in range(500):
            array = rng.integers(0, 256, (256, 128, 3), dtype=np.uint8)
            Image.fromarray(array).save(os.path.join(image_dir, f"{i:05d}.jpg"), quality=90)
        print(f"plip {plip.__version__}, model {'plip-rn50' if args.full else 'tiny (256x128 input)'}")
        results = []
        for n in args.sizes:
            out = subprocess.run(
                [sys.executable, "-c", CHILD, os.path.join(tmp, "model"), image_dir, str(n), str(args.workers)],
                capture_output=True, text=True, check=True,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            results.append(result)
            print(f"N={n:>6}: peak RSS {result['maxrss_mb']:7.1f} MB, {result['n'] / result['seconds']:7.1f} img/s")
        growth = results[-1]["maxrss_mb"] / results[0]["maxrss_mb"]
        print(f"peak RSS ratio N={args.sizes[-1]} / N={args.sizes[0]}: {growth:.3f} (flat = 1.0)")


if __name__ == "__main__":
    main()
