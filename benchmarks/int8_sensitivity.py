"""Which parts of the image tower can run in int8: the sensitivity search behind
``plip.export.quantize.INT8_STAGES`` / ``INT8_OPS``, on the trained ``plip-tiny-synth``.

For each candidate (which residual stages, which operator types) the float32 ONNX image
graph is quantised exactly as ``plip export --quantize int8`` does (static QDQ, per-channel
7-bit weights, uint8 MinMax activations, the default 128 synthetic calibration images) and
compared with float32 on two labelled galleries the calibration did not see: the gate's
(seed 2026) and a second one (seed 31), so a choice tuned on the gate gallery would show.
``--per-layer`` adds the classic one-at-a-time table (only this Conv quantised).

    python benchmarks/int8_sensitivity.py [--per-layer]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import onnx

import plip
from plip.export.calibration import calibration_images
from plip.export.conventions import InputConvention
from plip.export.formats import get_format
from plip.export.gate import default_gate_data, run_gate
from plip.export.quantize import INT8_OPS, INT8_STAGES, quantize_image_onnx

ALL = ("layer1", "layer2", "layer3", "layer4")
CANDIDATES = [
    (ALL, ("Conv",)),
    (ALL, ("Conv", "Relu")),
    (ALL, INT8_OPS),
    (("layer2", "layer3", "layer4"), ("Conv", "Relu")),
    (("layer3", "layer4"), ("Conv",)),
    (("layer3", "layer4"), ("Conv", "Relu")),
    (("layer4",), ("Conv", "Relu")),
    (INT8_STAGES, INT8_OPS),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-layer", action="store_true", help="also quantise each Conv alone")
    args = parser.parse_args()
    model = plip.load("plip-tiny-synth")
    galleries = {seed: default_gate_data(model, seed=seed) for seed in (2026, 31)}
    calibration = calibration_images(model, None, 128, InputConvention())
    onnx_format = get_format("onnx")
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "image.onnx"
        plip.export(model, fp32, tower="image", log=None)

        def measure(label: str, stages, ops, exclude_extra=()) -> None:
            out = Path(tmp) / "int8.onnx"
            quantize_image_onnx(fp32, out, calibration, stages=stages, ops=ops)
            cells = []
            for seed, data in galleries.items():
                f = run_gate("image", model, onnx_format.runner(fp32), onnx_format.runner(out), data,
                             lambda x: x.numpy(), 0.0, 100.0, lambda _line: None)
                cells.append(f"seed {seed}: min cos {f['min_cosine']:.4f} mean {f['mean_cosine']:.5f} "
                             f"R@1 {f['r1_fp32']:.2f} -> {f['r1_int8']:.2f}")
            print(f"{label:52} | " + " | ".join(cells), flush=True)

        for stages, ops in CANDIDATES:
            shipped = " (shipped)" if (stages, ops) == (INT8_STAGES, INT8_OPS) else ""
            measure(f"{'+'.join(s[-1] for s in stages)} stages, {'/'.join(ops)}{shipped}", stages, ops)
        if args.per_layer:
            convs = [n.name for n in onnx.load(str(fp32)).graph.node if n.op_type == "Conv"]
            for name in convs:
                # a one-node "stage": the node's own name selects it
                measure(f"only {name.removeprefix('/visual/')}", (name.removeprefix("/visual/").rsplit("/", 1)[0],), ("Conv",))


if __name__ == "__main__":
    main()
