"""Opening ONNX files: ``onnx.load`` and onnxruntime sessions with one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import PlipError

__all__ = ["require", "load_onnx_model", "require_onnxruntime", "make_session"]


def load_onnx_model(path: str | os.PathLike, load_weights: bool = True):
    """``onnx.load`` with a clear error for a missing, truncated or corrupt file."""
    onnx = require("onnx", "onnx")
    path = Path(path)
    if not path.is_file():
        raise PlipError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path), load_external_data=load_weights)
    except Exception as error:  # protobuf's DecodeError and friends
        raise PlipError(f"{path}: not a valid ONNX file, truncated or corrupt ({type(error).__name__}: {str(error)[:160]})") from error
    if not model.graph.node or not model.graph.input:
        raise PlipError(f"{path}: not a valid ONNX file (no graph); truncated or corrupt?")
    if load_weights:
        try:
            onnx.checker.check_model(model)
        except Exception as error:
            raise PlipError(f"{path}: invalid ONNX model ({type(error).__name__}: {str(error)[:200]})") from error
    return model


def require(module: str, extra: str):
    """Import an optional dependency, or a one-line PlipError naming the pip extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise PlipError(f"{module} is not installed: pip install 'plip-person[{extra}]'") from None


def require_onnxruntime():
    """The ``onnxruntime`` module, or a one-line PlipError naming the extra."""
    try:
        import onnxruntime
    except ImportError:
        raise PlipError("onnxruntime is not installed: pip install 'plip-person[onnx]'") from None
    return onnxruntime


def make_session(model: str | os.PathLike | bytes, threads: int | None = None):
    """An onnxruntime CPU session (all graph optimisations) for a file or serialised model.

    ``threads`` defaults to ``torch.get_num_threads()``, so ``torch.set_num_threads`` and
    ``OMP_NUM_THREADS`` limit both runtimes alike. A truncated or corrupt file is a PlipError.
    """
    ort = require_onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    where = "serialised model" if isinstance(model, bytes) else str(model)
    if not isinstance(model, bytes):
        if not Path(model).is_file():
            raise PlipError(f"{where}: no such ONNX file")
        model = str(model)
    try:
        return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime's InvalidProtobuf / Fail / InvalidGraph
        raise PlipError(
            f"{where}: onnxruntime cannot load it, truncated or corrupt? ({type(error).__name__}: {str(error)[:200]})"
        ) from error
