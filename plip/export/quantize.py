"""int8 ONNX graphs: static per-channel QDQ for the image tower, dynamic for the text tower.

Image: onnxruntime's static quantisation in QDQ format of the last two residual stages
(:data:`INT8_STAGES`): their convolutions, ReLUs (folded into the convolutions' output
ranges), residual additions and average pools (:data:`INT8_OPS`), so onnxruntime runs each
stage as QLinearConv / QLinearAdd / QLinearAveragePool without float32 round trips; int8 weights per output channel (7-bit range: CPUs without VNNI
saturate the u8 x s8 products otherwise, and a graph must stay exact on every CPU it
lands on), uint8 activations with MinMax ranges (averaged over calibration batches) from
calibration images. The stem, ``layer1``, ``layer2`` and the attention-pool head stay
float32: a per-layer sensitivity search on ``plip-tiny-synth`` (``benchmarks/
int8_sensitivity.py``, figures in docs/export.md) found that quantising them costs most of
the accuracy. Text: dynamic quantisation (int8 weights, activation ranges per batch at run
time) of the matrix products. Either graph is kept only if it passes
:func:`plip.export.gate.run_gate`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..errors import PlipError
from .formats import require, set_onnx_metadata

__all__ = ["quantize_image_onnx", "quantize_text_onnx", "quantize_tower", "int8_image_nodes", "INT8_STAGES",
           "INT8_OPS", "IMAGE_SCHEME"]

#: The residual stages of the image encoder that are quantised. Measured on plip-tiny-synth
#: (min cosine to float32 on the gate gallery, seed 2026 / a second gallery, seed 31;
#: Conv+Relu quantised): layer3+4 0.9943 / 0.9912; adding layer2 0.9824 / 0.9653; every stage
#: after the stem 0.9819 / 0.9655 (benchmarks/int8_sensitivity.py).
INT8_STAGES = ("layer3", "layer4")
#: Operators quantised inside those stages (a Relu after a Conv folds into its output range).
#: With Add and AveragePool too: 0.9953 / 0.9927, and no float32 round trip inside a stage.
INT8_OPS = ("Conv", "Relu", "Add", "AveragePool")
IMAGE_SCHEME = ("static QDQ: Conv, Relu, Add and AveragePool of the last two residual stages int8 (per-channel "
                "7-bit weights, uint8 activations, MinMax calibration averaged over batches of 8); stem, layer1, "
                "layer2 and the attention-pool head float32")


@contextlib.contextmanager
def _in_folder(folder: str):
    """onnxruntime's ``quant_pre_process`` leaves temporary files in the working directory."""
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def _prepare(fp32: Path, prepared: Path) -> None:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with _in_folder(str(prepared.parent)):
        quant_pre_process(str(fp32.resolve()), str(prepared.resolve()), skip_symbolic_shape=True)


def _quiet():
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))
    warnings.filterwarnings("ignore", module=r"onnxruntime\.quantization")


def int8_image_nodes(graph, stages: tuple[str, ...] = INT8_STAGES,
                     ops: tuple[str, ...] = INT8_OPS) -> tuple[list[str], list[str]]:
    """``(quantised, float32)`` names of the image graph's nodes of the :data:`INT8_OPS` types.

    A node is quantised when it belongs to one of ``stages`` (its exported name holds
    ``/visual/<stage>/``); every other one (stem, earlier stages, head) stays float32.
    """
    quantised, kept = [], []
    for node in graph.node:
        if node.op_type in ops:
            (quantised if any(f"/visual/{stage}/" in node.name for stage in stages) else kept).append(node.name)
    return quantised, kept


def quantize_image_onnx(fp32: Path, out: Path, calibration: np.ndarray, batch: int = 8,
                        stages: tuple[str, ...] = INT8_STAGES, ops: tuple[str, ...] = INT8_OPS) -> list[str]:
    """Static QDQ int8 of an image graph, calibrated on ``calibration`` (N, 3, H, W).

    Only the ``ops`` nodes (default :data:`INT8_OPS`) of ``stages`` are quantised; returns the
    names of the nodes of those types that stay float32.
    """
    require("onnxruntime", "onnx")
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    _quiet()

    class Reader(CalibrationDataReader):
        def __init__(self, name: str) -> None:
            self._batches: Iterator[np.ndarray] = iter(np.array_split(calibration, max(1, len(calibration) // batch)))
            self._name = name

        def get_next(self):
            part = next(self._batches, None)
            return None if part is None else {self._name: np.ascontiguousarray(part, dtype=np.float32)}

    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        _prepare(fp32, prepared)
        import onnx

        graph = onnx.load(str(prepared), load_external_data=False).graph
        quantised, kept = int8_image_nodes(graph, stages, ops)
        if not quantised:
            raise PlipError(f"the image graph has no Conv node in stages {list(stages)}; nothing to quantise")
        quantize_static(
            str(prepared), str(out), Reader(graph.input[0].name), quant_format=QuantFormat.QDQ, per_channel=True,
            reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=list(ops), nodes_to_exclude=kept,
            extra_options={"CalibMovingAverage": True},
        )
    return kept


def quantize_text_onnx(fp32: Path, out: Path) -> None:
    """Dynamic int8 of a text graph (int8 weights, per-batch activation ranges)."""
    require("onnxruntime", "onnx")
    from onnxruntime.quantization import QuantType, quantize_dynamic
    _quiet()
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        _prepare(fp32, prepared)
        quantize_dynamic(str(prepared), str(out), weight_type=QuantType.QInt8, per_channel=False)


def quantize_tower(model: Any, tower: str, path: Path, convention, meta: dict[str, Any],
                   calibration: str | os.PathLike | None, calibration_size: int, min_cosine: float,
                   max_r1_drop: float, evaluation: Any, say: Callable[[str], None],
                   int8_stages: Sequence[str] | None = None) -> dict[str, Any]:
    """Replace the float32 ONNX graph at ``path`` by its int8 version if it passes the gate.

    Returns the gate figures plus ``"metadata"``: ``meta`` with its ``quantization`` entry.
    On a refusal the float32 file is left for the caller's staging folder to remove.
    """
    from .calibration import calibration_images, to_convention
    from .formats import get_format
    from .gate import GateData, default_gate_data, gate_data_from_split, run_gate

    int8_path = path.with_name(path.stem + ".int8.onnx")
    pre = model.config.preprocess
    if tower == "image":
        images = calibration_images(model, calibration, calibration_size, convention)
        say(f"calibrating the int8 image graph on {len(images)} images "
            f"({'synthetic gallery' if calibration is None else calibration})")
        stages = tuple(int8_stages) if int8_stages else INT8_STAGES
        kept = quantize_image_onnx(path, int8_path, images, stages=stages)
        scheme = IMAGE_SCHEME if stages == INT8_STAGES else f"static QDQ: Conv, Relu, Add and AveragePool of stages {list(stages)}"
        how = {"scheme": scheme, "int8_stages": list(stages), "int8_ops": list(INT8_OPS),
               "weights": "int8 per output channel, 7-bit range (reduce_range)", "activations": "uint8 asymmetric",
               "calibrate_method": "MinMax, moving average over batches of 8",
               "float32_nodes": kept,
               "calibration": "synthetic gallery" if calibration is None else str(calibration),
               "calibration_images": int(len(images))}
    else:
        quantize_text_onnx(path, int8_path)
        how = {"scheme": "dynamic: int8 weights, activations quantised per batch"}
    if isinstance(evaluation, GateData):
        data = evaluation
    elif evaluation is not None:
        data = gate_data_from_split(model, evaluation)
    else:
        data = default_gate_data(model)
    onnx_format = get_format("onnx")
    figures = run_gate(
        tower, model, onnx_format.runner(path), onnx_format.runner(int8_path), data,
        (lambda x: to_convention(x, convention, pre.mean, pre.std).numpy()) if tower == "image" else None,
        min_cosine, max_r1_drop, say,
    )
    meta = dict(meta, quantization={"dtype": "int8", **how, "gate": figures})
    os.replace(int8_path, path)
    set_onnx_metadata(path, meta)
    return {**figures, "metadata": meta}
