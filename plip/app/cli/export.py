"""``plip export``: write a model's towers as ONNX / TorchScript / OpenVINO files."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="export the image / text tower to ONNX, TorchScript or OpenVINO (optionally int8)",
        description="Export a model's towers with their metadata. A file --out (model.onnx) takes one tower; "
        "a folder receives image.<ext> / text.<ext> and tokenizer.json. Every graph is checked against "
        "PyTorch before it is written; int8 graphs must also pass the accuracy gate.",
    )
    parser.add_argument("--model", "-m", required=True,
                        help="registry name (see `plip models`), hf-hub:org/repo[@rev], model folder, or official .pth.tar")
    parser.add_argument("--tower", default="both", choices=["image", "text", "both"])
    parser.add_argument("--format", default="onnx", choices=["onnx", "torchscript", "openvino"])
    parser.add_argument("--out", "-o", required=True, help="output file (one tower) or folder")
    parser.add_argument("--input-norm", default="plip", choices=["plip", "imagenet", "none"],
                        help="normalisation the consumer applies to the image tensor (folded into the graph)")
    parser.add_argument("--input-range", default="0-1", choices=["0-1", "0-255"],
                        help="pixel scale before normalisation (matters with --input-norm none)")
    parser.add_argument("--channels", default="rgb", choices=["rgb", "bgr"], help="channel order of the image tensor")
    parser.add_argument("--for", dest="target", default=None, choices=["boxmot"],
                        help="a consumer's conventions: boxmot = ImageNet norm, [0, 1], RGB, boxmot's suffixes "
                        "(.onnx, .torchscript, .xml; a folder --out gets plip_reid.<ext>) and its metadata file")
    parser.add_argument("--no-normalize", action="store_true", help="do not L2-normalise the output in the graph")
    parser.add_argument("--quantize", default=None, choices=["int8"],
                        help="int8 (ONNX): static per-channel QDQ image tower, dynamic text tower, under the accuracy gate")
    parser.add_argument("--calibration", default=None, help="folder of images to calibrate the int8 image tower "
                        "(default: a generated synthetic gallery)")
    parser.add_argument("--calibration-size", type=int, default=128, help="calibration images (default 128)")
    parser.add_argument("--int8-stages", default=None, metavar="S1,S2",
                        help="image stages to quantise, comma-separated (default layer3,layer4: the names inside "
                             "the graph's /visual/<stage>/ nodes); the gate still decides")
    parser.add_argument("--min-cosine", type=float, default=0.99, help="gate: smallest cosine to float32 (default 0.99)")
    parser.add_argument("--max-r1-drop", type=float, default=1.0, help="gate: largest R@1 drop in points (default 1)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...export.api import export

    tower = args.tower
    if args.target == "boxmot" and tower == "both":
        tower = "image"
    export(
        args.model, args.out, tower=tower, format=args.format, input_norm=args.input_norm,
        input_range=args.input_range, channels=args.channels, target=args.target,
        normalize=not args.no_normalize, quantize=args.quantize, calibration=args.calibration,
        calibration_size=args.calibration_size,
        int8_stages=[s.strip() for s in args.int8_stages.split(",") if s.strip()] if args.int8_stages else None,
        min_cosine=args.min_cosine, max_r1_drop=args.max_r1_drop,
        opset=args.opset, overwrite=args.overwrite,
    )
    return 0
