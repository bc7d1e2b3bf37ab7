"""``plip encode``: embed a folder of images into a safetensors gallery file."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm")


def register(subparsers) -> None:
    from .common import add_model_args, add_optimize_arg, add_runtime_arg

    parser = subparsers.add_parser(
        "encode", help="embed images (a folder or files) into a gallery file",
        description="Embed every image under --images (recursively) and write the embeddings with "
        "their ids (paths relative to the folder) to a safetensors file.",
    )
    add_model_args(parser)
    parser.add_argument("--images", "-i", required=True, nargs="+", help="image folder(s) or files")
    parser.add_argument("--out", "-o", required=True, help="output .safetensors file")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="decoding processes")
    parser.add_argument("--skip-bad", action="store_true", help="skip unreadable images (counted at the end)")
    parser.add_argument("--no-progress", action="store_true")
    add_optimize_arg(parser)
    add_runtime_arg(parser)
    parser.set_defaults(func=run)


def find_images(inputs: list[str]) -> tuple[str, list[str]]:
    """(root, relative paths) of the images named by files and folders, sorted."""
    from ..errors import PlipError

    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            paths += sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            paths.append(p)
        else:
            raise PlipError(f"{item}: no such file or folder")
    if not paths:
        raise PlipError(f"no images found in {', '.join(inputs)} (looked for {', '.join(IMAGE_SUFFIXES)})")
    absolute = [str(p.resolve()) for p in paths]
    root = os.path.commonpath(absolute) if len(absolute) > 1 else os.path.dirname(absolute[0])
    if os.path.isfile(root):
        root = os.path.dirname(root)
    return root, [os.path.relpath(p, root) for p in absolute]


class _SafeImages:
    """Dataset yielding (index, tensor or None, error message) so bad files can be skipped."""

    def __init__(self, paths: list[str], preprocess, skip_bad: bool) -> None:
        self.paths, self.preprocess, self.skip_bad = paths, preprocess, skip_bad

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        from ..errors import ImageLoadError

        try:
            return index, self.preprocess(self.paths[index], where=self.paths[index]), ""
        except ImageLoadError as err:
            if not self.skip_bad:
                raise
            return index, None, str(err)


def _collate(items):
    return items


def run(args: argparse.Namespace) -> int:
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    from ..encoding import embed_image_batch
    from ..gallery import EmbeddingFile, save_embeddings
    from .common import apply_optimize, load_model_from_args

    root, rel = find_images(args.images)
    model = apply_optimize(load_model_from_args(args), args)
    dataset = _SafeImages([os.path.join(root, r) for r in rel], model.preprocess, args.skip_bad)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, num_workers=args.workers, collate_fn=_collate
    )
    kept_ids, chunks, bad = [], [], []
    with tqdm(total=len(dataset), desc="encoding", unit="img", disable=args.no_progress) as bar:
        for items in loader:
            good = [(i, t) for i, t, _ in items if t is not None]
            bad += [(i, e) for i, t, e in items if t is None]
            if good:
                chunks.append(embed_image_batch(model, torch.stack([t for _, t in good])).cpu())
                kept_ids += [rel[i] for i, _ in good]
            bar.update(len(items))
    if not chunks:
        from ..errors import PlipError

        raise PlipError(f"none of the {len(rel)} images could be read")
    embeddings = F.normalize(torch.cat(chunks), dim=-1)
    save_embeddings(args.out, EmbeddingFile(embeddings, kept_ids, root=root, model=str(args.model)))
    print(f"wrote {args.out}: {len(kept_ids)} embeddings of size {embeddings.shape[1]}")
    if bad:
        print(f"skipped {len(bad)} unreadable image(s); first: {bad[0][1]}", file=sys.stderr)
    return 0
