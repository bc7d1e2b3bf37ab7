"""Building models: :func:`create_model` (from a config) and :func:`load` (from any source).

Like open_clip's ``create_model_and_transforms``, the factory builds the towers and attaches
what turns raw inputs into tensors: ``model.preprocess`` (the model's own image size,
interpolation, mean and std) and ``model.tokenizer`` (its vocabulary and ``max_length``).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from ..data.transforms import ImagePreprocess
from ..errors import PlipError
from ..hub.folder import read_folder
from ..hub.official import IMAGE_ENTRY, TEXT_ENTRY, infer_config, read_official_checkpoint
from ..hub.sources import resolve_source
from ..hub.state_dict import load_state_dict_strict
from ..models.config import PLIPConfig
from ..tokenizer import PLIPTokenizer
from .checks import check_finite_state
from .model import PLIPModel

__all__ = ["create_model", "load"]

_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
}


def create_model(config: PLIPConfig | str, tokenizer: PLIPTokenizer | None = None) -> PLIPModel:
    """A randomly initialised :class:`PLIPModel` with its preprocessing and tokenizer attached.

    Args:
        config: a :class:`~plip.models.PLIPConfig`, or a registered architecture name
            (``"rn50"``, ``"small"``, ``"tiny"``: :data:`plip.models.ARCHITECTURES`).
        tokenizer: defaults to the bundled bert-base-uncased vocabulary at
            ``config.text.max_length`` tokens.
    """
    if isinstance(config, str):
        config = PLIPConfig.preset(config)
    model = PLIPModel(config)
    attach_inputs(model, tokenizer)
    return model


def attach_inputs(model: PLIPModel, tokenizer: PLIPTokenizer | None = None) -> PLIPModel:
    """Give ``model`` the preprocessing and tokenizer of its own config."""
    model.preprocess = ImagePreprocess(model.config.preprocess)
    model.tokenizer = tokenizer or PLIPTokenizer(max_length=model.config.text.max_length)
    if model.tokenizer.max_length != model.config.text.max_length:
        raise PlipError(
            f"tokenizer max_length {model.tokenizer.max_length} differs from the model's "
            f"text.max_length {model.config.text.max_length}"
        )
    return model


def load(
    name_or_path: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    config: PLIPConfig | None = None,
    runtime: str | None = None,
) -> PLIPModel:
    """Load a PLIP model, ready for inference (eval mode, preprocessing and tokenizer attached).

    Args:
        name_or_path: a registry name (``"plip-rn50"``, see :func:`plip.list_models`),
            ``"hf-hub:org/repo[@revision]"``, a folder written by ``save_pretrained`` /
            ``plip convert``, or an official checkpoint file (``PLIP_RN50.pth.tar``).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ... (default: CPU).
        dtype: ``float32`` (default), ``bfloat16`` or ``float16`` (float16 needs CUDA).
        revision: Hub revision overriding the registry's or the ``@rev`` suffix.
        cache_dir: Hugging Face cache folder (default: the ``HF_HUB_CACHE`` / ``HF_HOME`` one).
        config: a :class:`~plip.models.PLIPConfig` for an official checkpoint whose
            architecture cannot be inferred from its shapes (ignored for other sources).
        runtime: ``"onnxruntime"`` runs ``encode_image`` / ``encode_text`` in onnxruntime
            (``model.optimize_for_inference(runtime="onnxruntime")``; float32 CPU, exact);
            ``None`` / ``"torch"``: PyTorch.
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    dtype = _resolve_dtype(dtype, device)
    model = _load_fp32(os.fspath(name_or_path), revision=revision, cache_dir=cache_dir, config=config)
    model = model.to(device=device, dtype=dtype).eval()
    if device.type == "cpu":
        model.visual.to(memory_format=torch.channels_last)  # ~2x faster convolutions on CPU
    if runtime not in (None, "torch"):
        model.optimize_for_inference(runtime=runtime)
    return model


def _resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        if dtype.lower() not in _DTYPES:
            raise PlipError(f"dtype {dtype!r} is not one of {sorted(set(_DTYPES))}")
        dtype = _DTYPES[dtype.lower()]
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise PlipError(f"dtype {dtype} is not supported (float32, bfloat16, float16)")
    if dtype == torch.float16 and device.type == "cpu":
        raise PlipError("dtype float16 needs a CUDA device; use bfloat16 on CPU")
    return dtype


def _load_fp32(spec: str, revision: str | None, cache_dir: str | os.PathLike | None, config=None) -> PLIPModel:
    source = resolve_source(spec, revision=revision, cache_dir=cache_dir)
    if source.kind == "official":
        return load_official(source.path, config=config)
    contents = read_folder(source.path)
    check_finite_state(contents.state_dict, str(contents.weights_path))
    model = create_model(contents.config, tokenizer=contents.tokenizer)
    load_state_dict_strict(model, contents.state_dict, str(contents.weights_path))
    model.name_or_path = source.name or str(source.path)
    return model


def load_official(path: str | os.PathLike, config: PLIPConfig | None = None, **overrides: Any) -> PLIPModel:
    """Build a :class:`PLIPModel` from an official checkpoint (strict; architecture inferred
    from the checkpoint unless ``config`` is given; ``overrides`` are
    :func:`~plip.hub.official.infer_config`'s ``vision_heads``, ``text_heads`` and ``pooling``)."""
    path = os.fspath(path)
    image, text = read_official_checkpoint(path)
    check_finite_state(image, f"{path} [{IMAGE_ENTRY}]")
    check_finite_state(text, f"{path} [{TEXT_ENTRY}]")
    model = create_model(config or infer_config(image, text, path, **overrides))
    load_state_dict_strict(model.visual, image, f"{path} [{IMAGE_ENTRY}]")
    load_state_dict_strict(model.text, text, f"{path} [{TEXT_ENTRY}]")
    model.name_or_path = path
    return model
