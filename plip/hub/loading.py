"""``plip.load``: one entry point for every way a model can be named."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import CheckpointError, ModelNotFoundError, PlipError
from .official import is_official_checkpoint_path, load_official
from .pretrained import CONFIG_NAME, REQUIRED_FILES, WEIGHTS_NAME, load_pretrained_folder
from .registry import MODELS

HUB_PREFIX = "hf-hub:"
TOKENIZER_FILES = ("vocab.txt",)
_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
}


def load(
    name_or_path: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    config=None,
    runtime: str | None = None,
):
    """Load a PLIP model, ready for inference (eval mode, preprocessing and tokenizer attached).

    Args:
        name_or_path: a registry name (``"plip-rn50"``, see :func:`plip.list_models`),
            ``"hf-hub:org/repo[@revision]"``, a folder written by ``save_pretrained`` /
            ``plip convert``, or an official checkpoint file (``PLIP_RN50.pth.tar``).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ... (default: CPU).
        dtype: ``float32`` (default), ``bfloat16`` or ``float16`` (float16 needs CUDA).
        revision: Hub revision overriding the registry's or the ``@rev`` suffix.
        cache_dir: Hugging Face cache folder (default: the ``HF_HUB_CACHE`` / ``HF_HOME`` one).
        config (PLIPConfig | None): a :class:`~plip.models.PLIPConfig` for an official checkpoint whose
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


@dataclass(frozen=True)
class ModelSource:
    """Where a model name points: a model ``folder`` (ours) or an ``official`` checkpoint file.

    Attributes:
        kind: ``"folder"`` or ``"official"``.
        path: the folder or the checkpoint file (Hub downloads resolve to their cache folder).
        weights: the safetensors file inside ``path`` for ``folder`` sources.
        name: the registry name, if the spec was one.
    """

    kind: str
    path: Path
    weights: Path | None = None
    name: str | None = None


def resolve_source(
    spec: str, *, revision: str | None = None, cache_dir: str | os.PathLike | None = None
) -> ModelSource:
    """Resolve a registry name, ``hf-hub:org/repo[@rev]``, folder or file to a local source,
    downloading from the Hub (or reading its cache) where needed."""
    if spec.startswith(HUB_PREFIX):
        repo, _, rev = spec[len(HUB_PREFIX):].partition("@")
        folder = download_from_hub(repo, revision or rev or "main", cache_dir=cache_dir)
        return ModelSource("folder", folder, folder / WEIGHTS_NAME)
    if spec in MODELS:
        return _registered_source(spec, revision, cache_dir)
    path = Path(spec).expanduser()
    if path.is_dir():
        return ModelSource("folder", path, path / WEIGHTS_NAME)
    if path.is_file():
        if path.suffix == ".safetensors" and (path.parent / CONFIG_NAME).is_file():
            return ModelSource("folder", path.parent, path)
        return ModelSource("official", path)
    if is_official_checkpoint_path(spec) or os.sep in spec or spec.startswith("."):
        raise ModelNotFoundError(f"{spec}: no such file or folder")
    known = ", ".join(sorted(MODELS))
    raise ModelNotFoundError(
        f"unknown model {spec!r}: not a registered name ({known}), an 'hf-hub:org/repo' "
        f"reference, a model folder or a checkpoint file"
    )


def _registered_source(name: str, revision: str | None, cache_dir) -> ModelSource:
    entry = MODELS[name]
    if entry.embedded:
        from importlib import resources

        folder = Path(str(resources.files("plip").joinpath(entry.embedded)))
        return ModelSource("folder", folder, folder / WEIGHTS_NAME, name=name)
    try:
        folder = download_from_hub(entry.hub_repo, revision or entry.revision, cache_dir=cache_dir)
    except ModelNotFoundError as err:
        hint = ""
        if entry.official_source:
            hint = (
                f" The original weights are {entry.official_source}; "
                f"plip.load('PLIP_RN50.pth.tar') (or plip.backbone) uses that file directly, and "
                f"`plip convert PLIP_RN50.pth.tar {name}/` turns it into a model folder."
            )
        raise ModelNotFoundError(f"{err}.{hint}") from None
    return ModelSource("folder", folder, folder / WEIGHTS_NAME, name=name)


def _load_fp32(spec: str, revision: str | None, cache_dir: str | os.PathLike | None, config=None):
    source = resolve_source(spec, revision=revision, cache_dir=cache_dir)
    if source.kind == "official":
        return load_official(source.path, config=config)
    model = load_pretrained_folder(source.path)
    if source.name:
        model.name_or_path = source.name
    return model


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def download_from_hub(repo: str, revision: str = "main", cache_dir: str | os.PathLike | None = None) -> Path:
    """Fetch a model folder from the Hub (or its cache) and verify the weights' checksum.

    Honours ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` as set when called (not only at import).
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if not repo or repo.count("/") != 1:
        raise ModelNotFoundError(f"Hub repository must look like 'org/name', got {repo!r}")
    endpoint = os.environ.get("HF_ENDPOINT") or None
    offline = _hub_offline()
    paths = {}
    for filename in REQUIRED_FILES + TOKENIZER_FILES:
        try:
            paths[filename] = hf_hub_download(
                repo, filename, revision=revision, cache_dir=cache_dir,
                endpoint=endpoint, local_files_only=offline,
            )
        except LocalEntryNotFoundError:
            if offline:
                raise ModelNotFoundError(
                    f"hf-hub:{repo}@{revision} is not in the local cache and HF_HUB_OFFLINE is set: "
                    f"download it once online (`huggingface-cli download {repo}`), or copy a model "
                    f"folder here and pass its path to plip.load"
                ) from None
            raise ModelNotFoundError(
                f"hf-hub:{repo}@{revision} could not be downloaded (no connection to "
                f"{endpoint or 'https://huggingface.co'})"
            ) from None
        except EntryNotFoundError:  # after LocalEntryNotFoundError, its subclass
            if filename in TOKENIZER_FILES:
                continue  # the bundled vocabulary is used instead
            raise ModelNotFoundError(f"hf-hub:{repo}@{revision} has no {filename}") from None
        except (RepositoryNotFoundError, RevisionNotFoundError) as err:
            raise ModelNotFoundError(f"hf-hub:{repo}@{revision} was not found on the Hub ({type(err).__name__})") from None
        except OSError as err:
            raise ModelNotFoundError(f"hf-hub:{repo}@{revision}: download failed: {err}") from None
    _verify_blob(Path(paths[WEIGHTS_NAME]), f"hf-hub:{repo}@{revision}/{WEIGHTS_NAME}")
    return Path(paths[CONFIG_NAME]).parent


def _verify_blob(snapshot_file: Path, label: str) -> None:
    """Check a cached LFS file against its sha256 (the blob's name in the Hub cache)."""
    blob = snapshot_file.resolve()
    expected = blob.name
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        return  # not an LFS blob: nothing to check against
    digest = hashlib.sha256()
    with open(blob, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        for path in (snapshot_file, blob):
            try:
                path.unlink()
            except OSError:
                pass
        raise CheckpointError(
            f"{label}: checksum mismatch (sha256 {digest.hexdigest()[:12]}..., expected {expected[:12]}...): "
            f"the download is corrupted and was removed from the cache; try again"
        )
