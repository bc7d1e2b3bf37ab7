"""Export plip-tiny-synth to ONNX, then embed and search with onnxruntime alone.

Part 1 (needs plip, i.e. torch) writes ``exported/``: ``image.onnx``, ``text.onnx``,
``tokenizer.json`` and a JSON side file per graph. Part 2 runs in a separate process
that imports only numpy, Pillow, tokenizers and onnxruntime: what a deployment needs.
It reads the preprocessing (size, interpolation, mean / std) from the side file, embeds
a few synthetic gallery images, and ranks them for a text query.

    python examples/export_onnx.py [--out exported]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def export(out: Path) -> list[str]:
    """Part 1: export both towers and render a small gallery to search."""
    import plip
    from plip.data.synthetic import generate_dataset
    from plip.data.textreid import load_text_reid

    model = plip.load("plip-tiny-synth")
    plip.export(model, out, tower="both", format="onnx", overwrite=True)
    generated = generate_dataset(out / "gallery", identities=12, images_per_id=2, seed=2026, progress=False,
                                 overwrite=True)
    split = load_text_reid("synth-pedes", generated.root, "all")
    return [list(split.gallery().image_paths), list(split.queries().captions)[:1]]


def search(out: str, image_paths: list[str], query: str) -> None:
    """Part 2: onnxruntime only (no torch). Embed the images and the query; print the ranking."""
    import numpy as np
    import onnxruntime as ort
    from PIL import Image
    from tokenizers import Tokenizer

    assert "torch" not in sys.modules
    folder = Path(out)
    meta = json.loads((folder / "image.onnx.json").read_text())
    height, width = meta["input_size"]
    mean, std = np.array(meta["mean"], np.float32), np.array(meta["std"], np.float32)
    image_session = ort.InferenceSession(str(folder / "image.onnx"), providers=["CPUExecutionProvider"])
    text_session = ort.InferenceSession(str(folder / "text.onnx"), providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))

    def pixels(path: str) -> np.ndarray:
        image = Image.open(path).convert("RGB").resize((width, height), Image.Resampling.BICUBIC)  # metadata: bicubic
        return ((np.asarray(image, np.float32) / 255.0 - mean) / std).transpose(2, 0, 1)

    batch = np.stack([pixels(p) for p in image_paths]).astype(np.float32)
    gallery = image_session.run(None, {"images": batch})[0]  # L2-normalised (meta["output_normalized"])
    ids = np.array([tokenizer.encode(query).ids], dtype=np.int64)
    text = text_session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0]
    scores = gallery @ text[0]
    print(f"query: {query!r}")
    for rank, index in enumerate(np.argsort(-scores)[:5], 1):
        print(f"  {rank}. {Path(image_paths[index]).relative_to(folder)}  score {scores[index]:.3f}")
    print("torch imported in the consumer:", "torch" in sys.modules)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="exported")
    parser.add_argument("--consumer", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.consumer is not None:
        paths = json.loads(args.consumer[0])
        search(args.out, paths["images"], paths["query"])
        return
    out = Path(args.out)
    images, queries = export(out)
    payload = json.dumps({"images": images, "query": queries[0]})
    # a fresh process: the consumer must not inherit the torch import of part 1
    subprocess.run([sys.executable, __file__, "--out", str(out), "--consumer", payload], check=True)


if __name__ == "__main__":
    main()
