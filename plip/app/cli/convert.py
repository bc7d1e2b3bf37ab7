"""``plip convert``: official checkpoint -> our model folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert an official PLIP checkpoint (PLIP_RN50.pth.tar) into a model folder",
        description="Read an official checkpoint safely (weights_only) and strictly, and write "
        "config.json, model.safetensors, tokenizer files and a model card.",
    )
    parser.add_argument("checkpoint", help="official checkpoint file, e.g. PLIP_RN50.pth.tar")
    parser.add_argument("output", help="folder to write (created)")
    parser.add_argument("--config", help="config.json describing the architecture (default: inferred from the checkpoint)")
    parser.add_argument("--vision-heads", type=int, help="attention heads of the image pool (PLIP-RN50: 8); "
                        "needed when the checkpoint matches no registered architecture")
    parser.add_argument("--text-heads", type=int, help="BERT attention heads (bert-base: 12); same condition")
    parser.add_argument("--pooling", choices=["pooler", "mean"], help="text embedding: BERT's pooler output "
                        "(the released PLIP) or the mean of the last hidden states; same condition")
    parser.add_argument("--force", action="store_true", help="overwrite a folder that already holds a model")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...errors import PlipError
    from ...inference.factory import load_official
    from ...hub.folder import CONFIG_NAME
    from ...models.config import PLIPConfig

    out = Path(args.output)
    if (out / CONFIG_NAME).exists() and not args.force:
        raise PlipError(f"{out} already holds a model; pass --force to overwrite it")
    config = PLIPConfig.load(args.config) if args.config else None
    overrides = {k: getattr(args, k) for k in ("vision_heads", "text_heads", "pooling") if getattr(args, k) is not None}
    if config is not None and overrides:
        raise PlipError(f"--config and --{'/--'.join(k.replace('_', '-') for k in overrides)} both describe the "
                        "architecture; give one")
    model = load_official(args.checkpoint, config=config, **overrides)
    card = _model_card(model, Path(args.checkpoint).name)
    model.save_pretrained(out, model_card=card)
    params = sum(p.numel() for p in model.parameters())
    print(f"wrote {out}/ ({params / 1e6:.1f}M parameters) from {args.checkpoint}")
    return 0


def _model_card(model, source_name: str) -> str:
    from ...hub.folder import default_model_card

    return default_model_card(model.config, model.num_parameters()) + (
        f"\n## Provenance\nConverted unchanged from the official checkpoint `{source_name}` "
        "(https://github.com/Zplusdragon/PLIP) with `plip convert`.\n"
    )
