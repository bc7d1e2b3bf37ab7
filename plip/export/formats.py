"""Graph formats: one writer class per format, registered by :func:`register_format`.

A writer turns a traced module (:mod:`plip.export.graphs`) into a file carrying the
metadata dict, and gives back a *runner* for a written file (numpy inputs -> numpy
embedding) so that every export can be checked against PyTorch before it is kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..errors import PlipError
from .graphs import OUTPUT
from .metadata import METADATA_KEY, onnx_metadata_props
from .onnx_io import load_onnx_model, make_session, require  # noqa: F401  (re-exported)

__all__ = ["FORMATS", "GraphFormat", "register_format", "get_format", "load_onnx_model", "MIN_OPSET"]

MIN_OPSET = 17
Runner = Callable[..., np.ndarray]


class GraphFormat:
    """Base class of a format writer."""

    name: str = ""
    suffix: str = ""
    extra: str | None = None  # the pip extra providing the format's runtime, if any

    def write(
        self, module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], input_names: Sequence[str],
        dynamic_axes: dict[str, dict[int, str]], path: Path, meta: dict[str, Any], opset: int,
    ) -> list[Path]:
        """Write ``module`` to ``path``; returns every file written."""
        raise NotImplementedError

    def runner(self, path: Path, threads: int | None = None) -> Runner:
        """A callable running the file: numpy arrays (in input order) -> the embedding array."""
        raise NotImplementedError


FORMATS: dict[str, GraphFormat] = {}


def register_format(cls: type[GraphFormat]) -> type[GraphFormat]:
    """Class decorator adding a format writer to :data:`FORMATS` under ``cls.name``."""
    FORMATS[cls.name] = cls()
    return cls


def get_format(name: str) -> GraphFormat:
    if name not in FORMATS:
        raise PlipError(f"format must be one of {sorted(FORMATS)}, got {name!r}")
    return FORMATS[name]


@contextlib.contextmanager
def _quiet_export():
    # The tracer warns about Python-level shape checks that are constant for the traced
    # image size; the TorchScript-based ONNX exporter announces its deprecation.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def onnx_export(module, inputs, input_names, dynamic_axes, path: Path, opset: int) -> None:
    """``torch.onnx.export`` with the TorchScript-based exporter (fast, handles BERT's masks;
    the dynamo exporter needs ``onnxscript`` and minutes for the same graph)."""
    if opset < MIN_OPSET:
        raise PlipError(f"opset must be >= {MIN_OPSET}, got {opset}")
    with _quiet_export(), torch.no_grad():
        torch.onnx.export(
            module.eval(), inputs, str(path), dynamo=False, opset_version=opset,
            input_names=list(input_names), output_names=[OUTPUT], dynamic_axes=dynamic_axes,
            do_constant_folding=True,
        )


def set_onnx_metadata(path: Path, meta: dict[str, Any]) -> None:
    """Replace the plip entries of a written ONNX file's ``metadata_props``."""
    onnx = require("onnx", "onnx")
    model = onnx.load(str(path))
    keep = [(p.key, p.value) for p in model.metadata_props if not (p.key == METADATA_KEY or p.key.startswith("plip."))]
    del model.metadata_props[:]
    for key, value in keep + list(onnx_metadata_props(meta).items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "plip"
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@register_format
class OnnxFormat(GraphFormat):
    """ONNX (opset >= 17), dynamic batch (and sequence length for text)."""

    name = "onnx"
    suffix = ".onnx"
    extra = "onnx"

    def write(self, module, inputs, input_names, dynamic_axes, path, meta, opset):
        require("onnx", "onnx")
        onnx_export(module, inputs, input_names, dynamic_axes, path, opset)
        set_onnx_metadata(path, meta)
        return [path]

    def runner(self, path, threads=None):
        session = make_session(path, threads)
        names = [i.name for i in session.get_inputs()]
        return lambda *arrays: session.run(None, dict(zip(names, arrays)))[0]


@register_format
class TorchScriptFormat(GraphFormat):
    """A traced TorchScript module; metadata in ``_extra_files["plip.json"]``."""

    name = "torchscript"
    suffix = ".pt"

    def write(self, module, inputs, input_names, dynamic_axes, path, meta, opset):
        with _quiet_export(), torch.no_grad():
            traced = torch.jit.trace(module.eval(), inputs, check_trace=False)
            torch.jit.save(traced, str(path), _extra_files={"plip.json": json.dumps(meta, sort_keys=True)})
        return [path]

    def runner(self, path, threads=None):
        try:
            with _quiet_export():
                module = torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as error:
            raise PlipError(f"{path}: not a readable TorchScript file ({type(error).__name__}: {str(error)[:160]})") from error

        def run(*arrays):
            with torch.no_grad():
                return module(*(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays)).numpy()

        return run


@register_format
class OpenVinoFormat(GraphFormat):
    """OpenVINO IR (``.xml`` + ``.bin``, float32 weights), converted from the ONNX graph."""

    name = "openvino"
    suffix = ".xml"
    extra = "openvino"

    def write(self, module, inputs, input_names, dynamic_axes, path, meta, opset):
        ov = require("openvino", "openvino")
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            onnx_path = Path(tmp) / "graph.onnx"
            onnx_export(module, inputs, input_names, dynamic_axes, onnx_path, opset)
            model = ov.convert_model(str(onnx_path))
        model.set_rt_info(json.dumps(meta, sort_keys=True), [METADATA_KEY])
        ov.save_model(model, str(path), compress_to_fp16=False)
        return [path, path.with_suffix(".bin")]

    def runner(self, path, threads=None):
        ov = require("openvino", "openvino")
        config = {"INFERENCE_PRECISION_HINT": "f32", "EXECUTION_MODE_HINT": "ACCURACY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            compiled = ov.Core().compile_model(str(path), "CPU", config)
        except Exception as error:
            raise PlipError(f"{path}: not a readable OpenVINO model ({type(error).__name__}: {str(error)[:160]})") from error
        output = compiled.output(0)
        return lambda *arrays: compiled([np.ascontiguousarray(a) for a in arrays])[output]
