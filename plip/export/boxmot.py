"""boxmot's side of an image export (``target="boxmot"``).

What boxmot (``boxmot.reid``) expects, read from its sources:

* the backend is chosen by the file suffix (``boxmot/reid/core/formats.py``): ``.onnx``,
  ``.torchscript`` (TorchScript), ``.xml`` (OpenVINO); ``.pt`` is a PyTorch checkpoint of
  boxmot's own architectures there, so plip's usual TorchScript suffix cannot be used. The
  backend takes the graph's first input / first output, NCHW float32;
* crops are cut from the BGR frame, resized to the input size with ``cv2.INTER_LINEAR``,
  converted to RGB, scaled to [0, 1] and normalised with the ImageNet mean / std
  (``boxmot/reid/core/crops.py``); features are L2-normalised afterwards;
* the crop size comes from the side file ``<file>.metadata.json``
  (``model_kwargs.img_size``; ``boxmot/reid/core/artifacts.py``), else from the model
  name, else 256x128. A static input size in the ONNX graph also overrides it.

So plip writes the graph with ImageNet / [0, 1] / RGB input folded in, under boxmot's
suffix (:data:`BOXMOT_SUFFIXES`; a folder ``out`` receives ``plip_reid<suffix>``), and the
side file always (a 256x128 model does not need it, but it names the model and its contract;
without it boxmot's TorchScript and OpenVINO backends would feed 256x128 crops).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..utils.io import atomic_write_text

__all__ = ["boxmot_metadata_path", "write_boxmot_metadata", "boxmot_metadata", "BOXMOT_SUFFIXES", "BOXMOT_STEM"]

#: The file suffix boxmot selects each backend by, per plip export format.
BOXMOT_SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript", "openvino": ".xml"}
#: The file name (without suffix) a folder ``out`` receives for boxmot.
BOXMOT_STEM = "plip_reid"


def boxmot_metadata_path(path: str | Path) -> Path:
    """boxmot's side file of ``path``: ``reid.onnx`` -> ``reid.onnx.metadata.json``."""
    path = Path(path)
    return path.with_suffix(f"{path.suffix}.metadata.json")


def boxmot_model_name(model_name: Any) -> str:
    """A name for boxmot's side file: ``plip-tiny-synth`` as it is, a folder by its last part,
    ``plip_`` in front of a name that does not say plip (``/runs/swin/model`` -> ``plip_model``)."""
    import re

    name = Path(str(model_name).rstrip("/\\")).name or "model"
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
    return name if name.lower().startswith("plip") else f"plip_{name}"


def boxmot_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """The side-file content boxmot reads (schema 1 of ``boxmot.reid.core.artifacts``)."""
    height, width = meta["input_size"]
    return {
        "schema_version": 1,
        "model_name": boxmot_model_name(meta["model_name"]),
        "format": meta["format"],
        "input_name": meta["input_names"][0],
        "output_names": [meta["output_name"]],
        "input_shape": [1, 3, height, width],
        "img_size": [height, width],
        "model_kwargs_schema_version": 1,
        "model_kwargs": {"img_size": [height, width], "feat_dim": int(meta["embedding_dim"])},
        "preprocess": "resize",
        "precision": "int8" if meta.get("quantization") else "float32",
        "dynamic_batch": True,
        "producer": meta["producer"],
    }


def write_boxmot_metadata(path: str | Path, meta: dict[str, Any]) -> Path:
    """Write boxmot's side file next to the exported image graph ``path``."""
    side = boxmot_metadata_path(path)
    atomic_write_text(side, json.dumps(boxmot_metadata(meta), indent=2, sort_keys=True) + "\n")
    return side
