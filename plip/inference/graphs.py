"""Optimised CPU graphs of a loaded model: :meth:`PLIPModel.optimize_for_inference`.

Two independent options, both on the CPU in float32:

* ``image=True`` (exact): the image encoder is traced once into a frozen TorchScript graph
  (``torch.jit.freeze`` + ``torch.jit.optimize_for_inference``): batch norms folded into the
  convolutions, ReLUs and residual additions fused into them, weights pre-packed for oneDNN,
  activations kept in oneDNN's blocked layout. Embeddings equal the eager model's to float32
  rounding (tests check 1e-5; measured ~1e-7). Cost: about a second to build.
* ``image="compile"`` (exact): the image encoder compiled by ``torch.compile`` (inductor,
  with weight freezing) for one fixed micro-batch shape, the last micro-batch zero-padded.
  The fastest path (about 2x the official float32 forward on a 2-core CPU, 1.1x "trace"),
  but compiling takes ~15 s and needs a C++ compiler; worth it for large galleries.
* ``text="int8"`` (approximate, opt-in): the text encoder's linear layers run with dynamic
  int8 quantisation (``torch.ao.quantization.quantize_dynamic``: int8 weights, activations
  quantised per batch). About 3x the texts/s of the float32 model; embeddings keep a cosine
  similarity of about 0.999 with the float32 ones (``benchmarks/bench_encoding.py`` prints
  both). Activation scales are taken per batch, so a caption's embedding also varies a
  little (same order of error) with the captions it is batched with.

The graphs hold their own copy of the weights. Each use first checks that the model's
parameters and buffers are the same tensors at the same version as when the graphs were
built; after any change (an optimiser step, ``load_state_dict``, ``.to()``) the graphs are
dropped with a warning and the eager model is used, so a stale graph never answers.
"""

from __future__ import annotations

import copy
import importlib
import itertools
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal

import torch

from ..errors import PlipError
from ..utils.modes import eval_mode
from .checks import check_finite_state
from .micro_batch import image_micro_batch

if TYPE_CHECKING:
    from ..models.text_encoder import TextEncoder
    from .model import PLIPModel

__all__ = ["InferenceGraphs", "build_graphs", "apply_optimize_mode", "register_runtime", "RUNTIMES", "fingerprint", "image_graph", "text_graph", "is_optimized"]

TextMode = Literal["int8"]
_MAX_COMPILED_BATCH = 16
ImageMode = Literal["trace", "compile"]


@dataclass
class InferenceGraphs:
    """Optimised forwards of a model, valid while the model's weights are those of ``fingerprint``."""

    image: Callable[[torch.Tensor], torch.Tensor] | None
    image_size: tuple[int, int]
    #: ``(input_ids, attention_mask) -> embedding`` (not normalised), like ``TextEncoder.embed``
    text: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None
    fingerprint: tuple


#: runtime name -> ``builder(model) -> InferenceGraphs``; a runtime registers itself with
#: :func:`register_runtime` (``plip.export.runtime`` registers ``"onnxruntime"``).
RUNTIMES: dict[str, Callable[["PLIPModel"], InferenceGraphs]] = {}
#: modules that provide the runtimes shipped with plip, imported on first use (they live in
#: higher layers: exporting a model is what builds an onnxruntime session)
RUNTIME_PROVIDERS = {"onnxruntime": "plip.export.runtime"}


def register_runtime(name: str):
    """Decorator: ``builder(model) -> InferenceGraphs`` becomes ``optimize_for_inference(runtime=name)``."""

    def decorate(builder):
        RUNTIMES[name] = builder
        return builder

    return decorate


def fingerprint(model: "PLIPModel") -> tuple:
    """Identity and in-place version of every parameter and buffer: changes with any update."""
    return tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in itertools.chain(model.parameters(), model.buffers()))


def build_graphs(
    model: "PLIPModel", *, image: bool | ImageMode = True, text: TextMode | None = None, runtime: str | None = None
) -> InferenceGraphs:
    """Build the faster inference paths of ``model`` (it keeps them in ``model.inference_graphs``).

    Args:
        model: a float32 model on the CPU.
        image: ``True`` or ``"trace"`` for the frozen TorchScript image graph, ``"compile"``
            for the inductor-compiled one (both exact), ``False`` to keep the eager encoder.
        text: ``"int8"`` for dynamically quantised text linear layers (approximate), or
            ``None`` to keep the float32 text encoder.
        runtime: ``"onnxruntime"`` runs both towers as exported float32 ONNX graphs in
            onnxruntime (exact; :class:`plip.export.runtime.OrtRuntime`; ``image`` and
            ``text`` are then ignored); ``None`` or ``"torch"`` builds the PyTorch paths above.

    Raises:
        PlipError: the model is not float32 on the CPU, a mode is unknown, or compiling failed.
    """
    if runtime not in (None, "torch") and runtime not in RUNTIMES and runtime not in RUNTIME_PROVIDERS:
        raise PlipError(f"runtime must be 'torch' or one of {sorted(set(RUNTIMES) | set(RUNTIME_PROVIDERS))}, got {runtime!r}")
    if image is True:
        image = "trace"
    if image not in (False, None, "trace", "compile"):
        raise PlipError(f"image must be True, False, 'trace' or 'compile', got {image!r}")
    if text not in (None, "int8"):
        raise PlipError(f"text must be None or 'int8', got {text!r}")
    if model.device.type != "cpu" or model.dtype != torch.float32:
        raise PlipError(
            f"optimize_for_inference builds CPU float32 graphs; this model is {model.dtype} on {model.device} "
            "(on a GPU use plip.load(..., dtype=torch.float16) instead)"
        )
    # a traced graph folds NaN batch-norm statistics into constants that can give identical
    # finite outputs for every image, which the embedding check cannot see
    check_finite_state(model.state_dict(), f"model {model.name_or_path or ''}".strip())
    with eval_mode(model):
        size = tuple(model.config.vision.image_size)
        graph = None
        if runtime not in (None, "torch"):
            if runtime not in RUNTIMES:
                importlib.import_module(RUNTIME_PROVIDERS[runtime])  # the provider registers itself
            return RUNTIMES[runtime](model)
        if image == "trace":
            graph = _trace_image_encoder(model, size)
        elif image == "compile":
            graph = _CompiledImageEncoder(model, size)
        text_graph = _quantized_text(model).embed if text == "int8" else None
    return InferenceGraphs(graph, size, text_graph, fingerprint(model))


def _trace_image_encoder(model: "PLIPModel", size: tuple[int, int]) -> torch.jit.ScriptModule:
    example = torch.zeros(2, 3, *size).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about Python-level shape checks; the graph is only used for the
        # traced image size (see image_graph), where those checks are constant.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # PyTorch 2.10+ marks TorchScript deprecated in favour of torch.compile ("compile"
        # mode), which costs ~15 s of compiling where tracing costs ~1 s.
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
        traced = torch.jit.trace(model.visual, example, check_trace=False)
        return torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))


class _CompiledImageEncoder:
    """``torch.compile`` of a frozen copy of the image encoder, for one micro-batch shape."""

    def __init__(self, model: "PLIPModel", size: tuple[int, int]) -> None:
        import torch._inductor.config as inductor_config

        self._config = inductor_config
        # one shape for every call: small, so a short last micro-batch wastes little padding
        self.batch = min(image_micro_batch(model), _MAX_COMPILED_BATCH)
        visual = copy.deepcopy(model.visual).eval().to(memory_format=torch.channels_last)
        self._compiled = torch.compile(visual, dynamic=False)
        example = torch.zeros(self.batch, 3, *size).contiguous(memory_format=torch.channels_last)
        try:
            self(example)  # compile now, not in the middle of an encode
        except Exception as error:  # inductor raises many kinds (no compiler, unsupported op, ...)
            raise PlipError(
                f"torch.compile of the image encoder failed ({type(error).__name__}: {str(error)[:200]}); "
                "image='trace' needs no compiler"
            ) from error

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        n = images.shape[0]
        if n > self.batch:
            return torch.cat([self(part) for part in images.split(self.batch)])
        if n < self.batch:  # pad: one compiled shape, no recompiles (images are independent)
            images = torch.cat([images, images.new_zeros(self.batch - n, *images.shape[1:])])
        # freezing: weights become constants of the compiled graph (dropped on any change)
        with torch.no_grad(), self._config.patch(freezing=True):
            return self._compiled(images.contiguous(memory_format=torch.channels_last))[:n]


def _quantized_text(model: "PLIPModel") -> "TextEncoder":
    text = copy.deepcopy(model.text).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch announces the move of this API to torchao
        return torch.ao.quantization.quantize_dynamic(text, {torch.nn.Linear}, dtype=torch.qint8)


def _valid_graphs(model: "PLIPModel") -> InferenceGraphs | None:
    graphs = model.inference_graphs
    if graphs is None:
        return None
    if graphs.fingerprint != fingerprint(model):
        model.inference_graphs = None
        warnings.warn(
            "the model's weights, dtype or device changed after optimize_for_inference(); its optimised "
            "graphs were dropped and the model runs as usual (call optimize_for_inference() again)",
            stacklevel=2,
        )
        return None
    return graphs


def is_optimized(model: "PLIPModel") -> bool:
    """Whether ``model`` has valid optimised inference graphs."""
    return _valid_graphs(model) is not None


def image_graph(model: "PLIPModel", batch: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The optimised image encoder for ``batch``, or ``None`` (not built, stale, or another image size)."""
    graphs = _valid_graphs(model)
    if graphs is None or graphs.image is None or tuple(batch.shape[-2:]) != graphs.image_size:
        return None
    return graphs.image


def text_graph(model: "PLIPModel") -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """The optimised ``(input_ids, attention_mask) -> embedding``, or ``None`` (not built or stale)."""
    graphs = _valid_graphs(model)
    return None if graphs is None else graphs.text


def apply_optimize_mode(model: "PLIPModel", mode: str) -> "PLIPModel":
    """The ``--optimize`` policy of the commands: ``none``; ``trace`` / ``compile`` as asked;
    ``auto`` = the exact traced image graph for a float32 CPU model (else eager)."""
    if mode == "none":
        return model
    if mode != "auto":
        return model.optimize_for_inference(image=mode)
    if model.device.type != "cpu" or model.dtype != torch.float32:
        return model
    try:
        return model.optimize_for_inference(image="trace")
    except Exception as error:  # pragma: no cover - depends on the torch build
        warnings.warn(f"image graph not built ({type(error).__name__}: {error}); encoding eagerly", stacklevel=2)
        return model
