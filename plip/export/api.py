"""``plip.export``: write a model's towers as ONNX / TorchScript / OpenVINO files.

Everything is built in a staging folder next to the destination, checked (every graph
against the PyTorch towers; int8 graphs against the float32 ones by the accuracy gate of
:mod:`plip.export.gate`), and only then moved into place: a failed export writes nothing.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..errors import PlipError
from .conventions import BOXMOT, InputConvention
from .formats import MIN_OPSET, get_format
from .graphs import IMAGE_INPUT, TEXT_INPUTS, OUTPUT, ImageGraph, TextGraph, example_images, example_tokens
from .metadata import build_metadata, side_file

__all__ = ["export", "ExportResult", "TOWERS", "TARGETS", "PARITY_TOLERANCE"]

TOWERS = ("image", "text", "both")
TARGETS = ("boxmot",)
#: Largest |exported - PyTorch| allowed on the export-time check (normalised embeddings).
PARITY_TOLERANCE = 1e-4
TOKENIZER_FILE = "tokenizer.json"
#: Suffixes read as a graph file name (not a folder) in ``out``.
GRAPH_SUFFIXES = (".onnx", ".pt", ".xml", ".ts", ".torchscript")


@dataclass
class ExportResult:
    """What :func:`export` wrote.

    Attributes:
        files: the graph of each tower (``{"image": path, "text": path}``).
        written: every file written (graphs, side files, tokenizer, format companions).
        metadata: the metadata dict of each tower.
        parity: the export-time max |exported - PyTorch| of each tower (None: not checked).
        gate: the int8 accuracy-gate figures of each quantised tower.
    """

    files: dict[str, Path]
    written: list[Path]
    metadata: dict[str, dict[str, Any]]
    parity: dict[str, float | None] = field(default_factory=dict)
    gate: dict[str, dict[str, Any]] = field(default_factory=dict)


def export(
    model: Any,
    out: str | os.PathLike,
    *,
    tower: str = "both",
    format: str = "onnx",
    input_norm: str = "plip",
    input_range: str = "0-1",
    channels: str = "rgb",
    target: str | None = None,
    normalize: bool = True,
    quantize: str | None = None,
    calibration: str | os.PathLike | None = None,
    calibration_size: int = 128,
    int8_stages: Sequence[str] | None = None,
    min_cosine: float = 0.99,
    max_r1_drop: float = 1.0,
    evaluation: Any = None,
    opset: int = MIN_OPSET,
    check: bool = True,
    overwrite: bool = False,
    log: Callable[[str], None] | None = print,
) -> ExportResult:
    """Export the image and/or text tower of ``model``.

    Args:
        model: a :class:`plip.PLIPModel` or anything :func:`plip.load` takes.
        out: a file (``model.onnx``, single tower) or a folder, which receives
            ``image.<ext>`` / ``text.<ext>``. The text graph gets ``tokenizer.json`` beside it.
        tower: ``"image"``, ``"text"`` or ``"both"``.
        format: ``"onnx"``, ``"torchscript"`` or ``"openvino"``.
        input_norm, input_range, channels: the image tensor the consumer feeds
            (:class:`~plip.export.conventions.InputConvention`); the conversion to the
            model's own is folded into the graph.
        target: ``"boxmot"`` picks boxmot's conventions (ImageNet mean / std, [0, 1], RGB
            after its BGR -> RGB conversion) and file suffixes (``.onnx``, ``.torchscript``,
            ``.xml``; a folder ``out`` receives ``plip_reid<suffix>``) and writes its
            ``<file>.metadata.json``.
        normalize: L2-normalise the output inside the graph.
        quantize: ``"int8"`` (ONNX only): static per-channel QDQ for the image tower,
            dynamic for the text tower, kept only if it passes the accuracy gate.
        calibration: folder of images for the int8 image calibration (default: a
            synthetic gallery of ``calibration_size`` images, unseen by the gate).
        int8_stages: the image graph's stages quantised (names inside ``/visual/<stage>/`` of
            the exported nodes; default :data:`plip.export.quantize.INT8_STAGES`, ``layer3`` and
            ``layer4``, measured on plip-tiny-synth); each must hold convolutions. The gate
            still decides.
        min_cosine, max_r1_drop: the gate: smallest cosine to float32 on held-out inputs,
            largest R@1 drop in points on the synthetic gallery.
        evaluation: the gate's gallery: a :class:`plip.data.textreid.TextReIDSplit`
            (default: the demo's synthetic gallery, 100 identities x 4 images, seed 2026).
        opset: ONNX opset (>= 17).
        check: run every written graph and compare it with PyTorch (needs the format's runtime).
        overwrite: replace existing files.
        log: where progress and the gate figures go (``None``: silent).

    Raises:
        PlipError: bad arguments, a missing optional package, a parity failure or a gate refusal.
    """
    say = log or (lambda _line: None)
    model = _as_model(model)
    if tower not in TOWERS:
        raise PlipError(f"tower must be one of {list(TOWERS)}, got {tower!r}")
    if target is not None and target not in TARGETS:
        raise PlipError(f"target must be one of {list(TARGETS)} or None, got {target!r}")
    fmt = get_format(format)
    if quantize not in (None, "int8"):
        raise PlipError(f"quantize must be None or 'int8', got {quantize!r}")
    if quantize and fmt.name != "onnx":
        raise PlipError(f"quantize='int8' writes ONNX QDQ graphs; format {fmt.name!r} is not supported for it")
    if target == "boxmot":
        if tower != "image":
            raise PlipError("target 'boxmot' exports the image tower only (tower='image')")
        if (input_norm, input_range, channels) != ("plip", "0-1", "rgb"):
            raise PlipError("target 'boxmot' sets the input conventions itself; leave input_norm/input_range/channels")
        from .boxmot import BOXMOT_STEM, BOXMOT_SUFFIXES

        if fmt.name not in BOXMOT_SUFFIXES:
            raise PlipError(f"boxmot cannot read format {fmt.name!r}")
        convention, suffix, stem = BOXMOT, BOXMOT_SUFFIXES[fmt.name], BOXMOT_STEM
        if Path(out).suffix.lower() in GRAPH_SUFFIXES and Path(out).suffix.lower() != suffix:
            raise PlipError(
                f"{out}: boxmot picks its ReID backend by the file suffix and reads {fmt.name} only from "
                f"'*{suffix}' files (e.g. {Path(out).with_suffix(suffix).name})"
            )
    else:
        convention, suffix, stem = InputConvention(input_norm, input_range, channels), fmt.suffix, None
    if opset < MIN_OPSET:
        raise PlipError(f"opset must be >= {MIN_OPSET}, got {opset}")
    towers = ("image", "text") if tower == "both" else (tower,)
    destinations = _destinations(Path(out), towers, suffix, stem)
    companions = _companions(destinations, fmt, target)
    if not overwrite:
        existing = [p for p in companions if p.exists()]
        if existing:
            raise PlipError(f"{existing[0]} exists (pass overwrite=True / --overwrite to replace it)")

    parent = _common_parent(companions)
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".plip-export-", dir=parent))
    try:
        result = ExportResult(files={}, written=[], metadata={})
        for name in towers:
            staged = staging / destinations[name].name
            meta, parity, gate = _export_tower(
                model, name, fmt, staged, convention, normalize, quantize, calibration, calibration_size,
                min_cosine, max_r1_drop, evaluation, opset, check, say, int8_stages=int8_stages,
            )
            result.metadata[name], result.parity[name] = meta, parity
            if gate is not None:
                result.gate[name] = gate
            if name == "text":
                _save_tokenizer(model, staging / TOKENIZER_FILE)
            if target == "boxmot":
                from .boxmot import write_boxmot_metadata

                write_boxmot_metadata(staged, meta)
        for path in companions:  # every check passed: move the files into place
            os.replace(staging / path.name, path)
            result.written.append(path)
        result.files = {name: destinations[name] for name in towers}
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for name in towers:
        parity = result.parity[name]
        said = "not checked" if parity is None else f"{parity:.2e}"
        say(f"wrote {result.files[name]} ({fmt.name}, {name} tower{', int8' if quantize else ''}; "
            f"max |diff| to PyTorch {said})")
    return result


def _save_tokenizer(model: Any, path: Path) -> None:
    """``tokenizer.json`` (Hugging Face ``tokenizers`` format) truncating as plip does:
    [CLS], the first ``max_length - 2`` word pieces, [SEP]."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(model.tokenizer.backend.to_str())
    tokenizer.enable_truncation(max_length=int(model.config.text.max_length))
    tokenizer.save(str(path))


def _as_model(model: Any):
    if isinstance(model, (str, os.PathLike)):
        from ..inference import load

        model = load(model)
    if not hasattr(model, "visual") or not hasattr(model, "text") or not hasattr(model, "config"):
        raise PlipError(f"export needs a PLIPModel (or a name / folder plip.load takes), got {type(model).__name__}")
    if model.device.type != "cpu" or model.dtype != torch.float32:
        model = copy.deepcopy(model).to(device="cpu", dtype=torch.float32)
    return model


def _destinations(out: Path, towers: tuple[str, ...], suffix: str, stem: str | None = None) -> dict[str, Path]:
    """Each tower's file: ``out`` itself (one tower, the format's suffix) or ``out/<stem or tower><suffix>``."""
    if len(towers) == 1 and out.suffix.lower() == suffix:
        return {towers[0]: out}
    if out.suffix and out.suffix.lower() in GRAPH_SUFFIXES:
        raise PlipError(
            f"{out}: a file name needs one tower and the format's suffix {suffix!r}; "
            "for both towers give a folder"
        )
    return {name: out / f"{stem or name}{suffix}" for name in towers}


def _companions(destinations: dict[str, Path], fmt, target: str | None) -> list[Path]:
    files = []
    for name, path in destinations.items():
        files.append(path)
        if fmt.name == "openvino":
            files.append(path.with_suffix(".bin"))
        files.append(side_file(path))
        if name == "text":
            files.append(path.with_name(TOKENIZER_FILE))
        if target == "boxmot":
            from .boxmot import boxmot_metadata_path

            files.append(boxmot_metadata_path(path))
    return files


def _common_parent(paths: list[Path]) -> Path:
    parents = {p.parent for p in paths}
    if len(parents) != 1:
        raise PlipError(f"exported files must share one folder, got {sorted(map(str, parents))}")
    return parents.pop()


def _export_tower(model, name, fmt, path, convention, normalize, quantize, calibration, calibration_size,
                  min_cosine, max_r1_drop, evaluation, opset, check, say, int8_stages=None):
    import json

    was_training = model.training
    model.eval()
    try:
        if name == "image":
            pre = model.config.preprocess
            module = ImageGraph(model.visual, convention, pre.mean, pre.std, normalize).eval()
            inputs = (example_images(tuple(model.config.vision.image_size)),)
            input_names = [IMAGE_INPUT]
            dynamic_axes = {IMAGE_INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}
        else:
            module = TextGraph(model.text, normalize).eval()
            inputs = example_tokens(model.tokenizer.vocab_size, model.tokenizer.pad_token_id)
            input_names = list(TEXT_INPUTS)
            dynamic_axes = {n: {0: "batch", 1: "sequence"} for n in TEXT_INPUTS}
            dynamic_axes[OUTPUT] = {0: "batch"}
        meta = build_metadata(model, name, fmt.name, convention=convention if name == "image" else None,
                              normalized=normalize, opset=opset if fmt.name != "torchscript" else None)
        fmt.write(module, inputs, input_names, dynamic_axes, path, meta, opset)
        parity = _check_parity(module, fmt, path, name, model) if check else None
        gate = None
        if quantize:
            from .quantize import quantize_tower

            gate = quantize_tower(model, name, path, convention, meta, calibration, calibration_size,
                                  min_cosine, max_r1_drop, evaluation, say, int8_stages=int8_stages)
            meta = gate.pop("metadata")
        from ..utils.io import atomic_write_text

        atomic_write_text(side_file(path), json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return meta, parity, gate
    finally:
        model.train(was_training)


def _check_parity(module, fmt, path: Path, name: str, model) -> float:
    """Run the written file on fresh inputs (other batch sizes and lengths than traced)."""
    run = fmt.runner(path)
    if name == "image":
        size = tuple(model.config.vision.image_size)
        cases = [(torch.randn(n, 3, *size, generator=torch.Generator().manual_seed(n)),) for n in (1, 3)]
    else:
        cases = [example_tokens(model.tokenizer.vocab_size, model.tokenizer.pad_token_id, length)
                 for length in (1 + 2, model.config.text.max_length)]
    worst = 0.0
    with torch.no_grad():
        for case in cases:
            expected = module(*case).numpy()
            got = run(*(t.numpy() for t in case))
            if got.shape != expected.shape:
                raise PlipError(f"{fmt.name} {name} graph gives shape {got.shape}, PyTorch {expected.shape}")
            scale = max(1.0, float(np.abs(expected).max())) if not module.normalize else 1.0
            worst = max(worst, float(np.abs(got - expected).max()) / scale)
    if not worst <= PARITY_TOLERANCE:
        raise PlipError(f"{fmt.name} {name} graph differs from PyTorch by {worst:.3g} (> {PARITY_TOLERANCE}); nothing written")
    return worst
