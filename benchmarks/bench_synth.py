"""Time the synthetic dataset generator (plip synth).

Measures, in one run on this machine:

1. baseline: rendering + JPEG-encoding images in this process only (no disk, no pool),
   on a sample of ``--sample`` images -> images/s of one core;
2. the full ``generate_dataset`` (workers, files, captions, both JSON files) for
   ``--identities`` x ``--images-per-id`` images -> total seconds and images/s.

The ratio (2)/(1) is the parallel speed-up net of I/O and annotation overhead. The issue's
target is 1,000 identities x 4 images in under a minute on the 2-core dev machine.

    python benchmarks/bench_synth.py --identities 1000 --images-per-id 4
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time

import numpy as np

from plip.data.synthetic import generate_dataset, render_image, sample_identities, sample_variation


def render_only(count: int, seed: int) -> float:
    """Images per second of render + JPEG encode in this process."""
    people = sample_identities(max(1, count // 4), seed)
    start = time.perf_counter()
    for i in range(count):
        ident = people[i % len(people)]
        image = render_image(ident, sample_variation(np.random.default_rng([seed, 1, ident.person_id, i + 1])))
        image.save(io.BytesIO(), format="JPEG", quality=90)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", type=int, default=1000)
    parser.add_argument("--images-per-id", type=int, default=4)
    parser.add_argument("--workers", type=int, default=None, help="default: CPU cores, at most 8")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample", type=int, default=200, help="images for the single-process baseline")
    args = parser.parse_args()

    single = render_only(args.sample, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        data = generate_dataset(
            os.path.join(tmp, "synth"),
            args.identities,
            args.images_per_id,
            args.seed,
            workers=args.workers,
            progress=False,
        )
        total = time.perf_counter() - start
    rate = data.images / total
    workers = args.workers if args.workers is not None else min(os.cpu_count() or 1, 8)
    print(f"cpu cores: {os.cpu_count()}   workers: {workers}   load average: {os.getloadavg()[0]:.1f}")
    print(f"baseline, render+encode in one process: {single:8.1f} images/s ({1000 / single:.1f} ms/image)")
    print(f"generate_dataset {data.identities} ids x {args.images_per_id}: {total:8.1f} s  {rate:8.1f} images/s")
    print(f"speed-up over one process: {rate / single:.2f}x   target < 60 s: {'met' if total < 60 else 'MISSED'}")


if __name__ == "__main__":
    main()
