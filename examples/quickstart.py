"""Quickstart: load a model, embed a gallery, search it by text and by image.

    python examples/quickstart.py                    # offline: plip-tiny-synth, shipped in the package
    python examples/quickstart.py --model plip-rn50  # the released weights (Hub, or a local folder / .pth.tar)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

import plip


def make_gallery(folder: Path, n: int = 12) -> list[Path]:
    """A few coloured stand-in images (real use: your own pedestrian crops)."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        array = np.zeros((256, 128, 3), dtype=np.uint8)
        array[:128], array[128:] = top, bottom
        path = folder / f"person_{i:02d}.jpg"
        Image.fromarray(array).save(path)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="plip-tiny-synth",
                        help="model name, folder or checkpoint (default: plip-tiny-synth, embedded, offline; "
                             "trained on synthetic persons only)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = plip.load(args.model)
        print(f"model: {model.name_or_path}, embedding size {model.embed_dim}")
        print(f"preprocess: {model.preprocess}")

        paths = make_gallery(tmp)
        gallery = model.encode_image(paths, batch_size=8)
        print(f"gallery: {tuple(gallery.shape)} embeddings, L2 norms {gallery.norm(dim=1)[:3].tolist()}")

        for query in ["a man in a black shirt and pink shorts", "a woman with a red backpack"]:
            hits = model.retrieve(query, gallery=gallery, top_k=3)
            names = [paths[i].name for i in hits.indices.tolist()]
            print(f"{query!r}: {list(zip(names, [round(s, 3) for s in hits.scores.tolist()]))}")

        by_image = model.retrieve([paths[0]], gallery=gallery, top_k=3)
        print(f"query image {paths[0].name}: top-3 {by_image.indices[0].tolist()}")


if __name__ == "__main__":
    main()
