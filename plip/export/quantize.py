"""int8 ONNX graphs: static per-channel QDQ for the image tower, dynamic for the text tower.

Image: onnxruntime's static quantisation in QDQ format of the convolutions after the stem,
int8 weights per output channel (7-bit range: CPUs without VNNI saturate the u8 x s8
products otherwise), uint8 activations with MinMax ranges (averaged over calibration
batches) from calibration images. The stem and the attention-pool head stay float32. Text: dynamic quantisation (int8
weights, activation ranges per batch at run time) of the matrix products. Either graph is
kept only if it passes :func:`plip.export.gate.run_gate`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .formats import require, set_onnx_metadata

__all__ = ["quantize_image_onnx", "quantize_text_onnx", "quantize_tower", "STEM_CONVS"]

#: The stem's convolutions stay float32: quantising them alone costs most of the accuracy
#: (measured on plip-tiny-synth: min cosine 0.961 -> 0.979 when they are kept).
STEM_CONVS = 3


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


def quantize_image_onnx(fp32: Path, out: Path, calibration: np.ndarray, batch: int = 8) -> None:
    """Static QDQ int8 of an image graph, calibrated on ``calibration`` (N, 3, H, W)."""
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
        stem = [n.name for n in graph.node if n.op_type == "Conv"][:STEM_CONVS]
        quantize_static(
            str(prepared), str(out), Reader(graph.input[0].name), quant_format=QuantFormat.QDQ, per_channel=True,
            reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=["Conv"], nodes_to_exclude=stem,
            extra_options={"CalibMovingAverage": True},
        )


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
                   max_r1_drop: float, evaluation: Any, say: Callable[[str], None]) -> dict[str, Any]:
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
        quantize_image_onnx(path, int8_path, images)
        how = {"scheme": "static QDQ, per-channel int8 weights (7-bit), uint8 activations, MinMax calibration",
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
