"""Leave Python: export a model's towers to ONNX, TorchScript or OpenVINO.

>>> import plip
>>> model = plip.load("plip-tiny-synth")
>>> plip.export(model, "exported", tower="both", format="onnx")        # exported/image.onnx, text.onnx, tokenizer.json
>>> plip.export(model, "reid.onnx", tower="image", target="boxmot")    # a file boxmot's ReID backend loads

``plip.export`` is this package and is callable: ``plip.export(...)`` is
:func:`plip.export.api.export`. The onnxruntime inference runtime is
:class:`plip.export.runtime.OrtRuntime`. Heavy packages (onnx, onnxruntime, openvino) are
imported on first use.
"""

from __future__ import annotations

import sys
import types
from typing import Any

__all__ = ["export", "read_metadata", "ExportResult", "OrtRuntime"]


def export(model: Any, out, **kwargs: Any):
    """Export ``model``'s towers; see :func:`plip.export.api.export`."""
    from .api import export as _export

    return _export(model, out, **kwargs)


def read_metadata(path):
    """The metadata of an exported file; see :func:`plip.export.metadata.read_metadata`."""
    from .metadata import read_metadata as _read

    return _read(path)


def __getattr__(name: str):
    if name == "ExportResult":
        from .api import ExportResult

        return ExportResult
    if name == "OrtRuntime":
        from .runtime import OrtRuntime

        return OrtRuntime
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """Lets ``plip.export(model, ...)`` call :func:`export` while ``plip.export`` stays the package."""

    def __call__(self, model: Any, out, **kwargs: Any):
        return export(model, out, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
