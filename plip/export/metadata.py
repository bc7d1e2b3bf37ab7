"""What an exported file says about itself: one dict, stored in the file and beside it.

Every export carries a metadata dict (:func:`build_metadata`): where the weights come
from, the embedding size, the inputs the graph expects (size, interpolation, channel order,
value range, mean / std) and whether its output is L2-normalised. It is written

* into the file: ONNX ``metadata_props`` (one entry per field, values JSON-encoded, plus
  ``plip`` holding the whole dict), TorchScript ``_extra_files["plip.json"]``, OpenVINO
  ``rt_info["plip"]``;
* beside it, as JSON: ``<file>.json`` (``image.onnx`` -> ``image.onnx.json``), readable
  without any ML package.

:func:`read_metadata` reads it back from either.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

from ..errors import PlipError
from ..version import __version__
from .conventions import InputConvention
from .graphs import IMAGE_INPUT, OUTPUT, TEXT_INPUTS

__all__ = ["build_metadata", "read_metadata", "side_file", "METADATA_KEY", "SCHEMA_VERSION"]

METADATA_KEY = "plip"
SCHEMA_VERSION = 1


def side_file(path: str | os.PathLike) -> Path:
    """The JSON side file of an exported file."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def build_metadata(
    model: Any,
    tower: str,
    graph_format: str,
    *,
    convention: InputConvention | None = None,
    normalized: bool = True,
    opset: int | None = None,
    quantization: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The metadata dict of one exported tower (``"image"`` or ``"text"``)."""
    config = model.config
    meta: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "producer": f"plip {__version__}",
        "model_name": model.name_or_path or "plip",
        "plip_version": __version__,
        "tower": tower,
        "format": graph_format,
        "embedding_dim": int(model.embed_dim),
        "output_name": OUTPUT,
        "output_normalized": bool(normalized),
        "dynamic_axes": {},
        "quantization": quantization,
    }
    if opset is not None:
        meta["opset"] = int(opset)
    if tower == "image":
        convention = convention or InputConvention()
        pre = config.preprocess
        stats = convention.mean_std(pre.mean, pre.std)
        height, width = (int(v) for v in config.vision.image_size)
        meta.update(
            input_names=[IMAGE_INPUT],
            input_layout="NCHW",
            input_size=[height, width],
            interpolation=pre.interpolation,
            resize="PIL" if pre.interpolation else None,
            channels=convention.channels,
            input_range=convention.range,
            input_norm=convention.norm,
            mean=None if stats is None else stats[0],
            std=None if stats is None else stats[1],
            model_mean=[float(v) for v in pre.mean],
            model_std=[float(v) for v in pre.std],
            dynamic_axes={IMAGE_INPUT: {"0": "batch"}, OUTPUT: {"0": "batch"}},
        )
    elif tower == "text":
        tokenizer = model.tokenizer
        meta.update(
            input_names=list(TEXT_INPUTS),
            input_dtype="int64",
            max_length=int(config.text.max_length),
            tokenizer="tokenizer.json",
            lowercase=True,
            pad_token_id=int(tokenizer.pad_token_id),
            cls_token_id=int(tokenizer.cls_token_id),
            sep_token_id=int(tokenizer.sep_token_id),
            truncation="longer captions keep their first max_length - 1 tokens and end with [SEP]",
            pooling=config.text.pooling,
            dynamic_axes={
                TEXT_INPUTS[0]: {"0": "batch", "1": "sequence"},
                TEXT_INPUTS[1]: {"0": "batch", "1": "sequence"},
                OUTPUT: {"0": "batch"},
            },
        )
    else:
        raise PlipError(f"tower must be 'image' or 'text', got {tower!r}")
    return meta


def onnx_metadata_props(meta: dict[str, Any]) -> dict[str, str]:
    """The ``metadata_props`` entries of ``meta`` (every field, plus the whole dict)."""
    props = {f"plip.{key}": value if isinstance(value, str) else json.dumps(value) for key, value in meta.items()}
    props[METADATA_KEY] = json.dumps(meta, sort_keys=True)
    return props


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of an exported file: from the file itself, else from its side file.

    Raises:
        PlipError: the file is missing, unreadable, or carries no plip metadata.
    """
    path = Path(path)
    if not path.exists():
        raise PlipError(f"{path}: no such file")
    from_file = _read_embedded(path)
    if from_file is not None:
        return from_file
    side = side_file(path)
    if side.is_file():
        try:
            return json.loads(side.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise PlipError(f"{side}: not a readable metadata file ({error})") from error
    raise PlipError(f"{path}: no plip metadata in the file and no side file {side.name}")


def _read_embedded(path: Path) -> dict[str, Any] | None:
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from .onnx_io import load_onnx_model

        model = load_onnx_model(path, load_weights=False)
        for prop in model.metadata_props:
            if prop.key == METADATA_KEY:
                return json.loads(prop.value)
        return None
    if suffix in (".pt", ".ts", ".torchscript"):
        import torch

        extra = {"plip.json": ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.jit.load announces its deprecation
                torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        except Exception as error:  # TorchScript raises RuntimeError subclasses of many kinds
            raise PlipError(f"{path}: not a readable TorchScript file ({type(error).__name__}: {str(error)[:200]})") from error
        return json.loads(extra["plip.json"]) if extra["plip.json"] else None
    if suffix == ".xml":
        try:
            import openvino
        except ImportError:
            return None
        model = openvino.Core().read_model(str(path))
        if model.has_rt_info([METADATA_KEY]):
            return json.loads(model.get_rt_info([METADATA_KEY]).astype(str))
        return None
    return None
