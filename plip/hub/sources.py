"""Where a model name points: the registry, the Hub (download + cache + checksum), folders, files.

:func:`resolve_source` turns any spec :func:`plip.load` accepts into a local source.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError, ModelNotFoundError
from .folder import CONFIG_NAME, REQUIRED_FILES, WEIGHTS_NAME
from .official import is_official_checkpoint_path
from .registry import MODELS, embedded_folder

HUB_PREFIX = "hf-hub:"
TOKENIZER_FILES = ("vocab.txt",)


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
    path = Path(spec).expanduser()
    if spec in MODELS:
        if (path / CONFIG_NAME).is_file():
            # the README's `plip convert ... plip-rn50/` writes exactly such a folder
            warnings.warn(
                f"loading the local folder {path.resolve()}, not the registered model {spec!r} "
                f"({MODELS[spec].source}); pass 'hf-hub:{MODELS[spec].hub_repo or 'org/repo'}' to load the "
                "registered one",
                stacklevel=3,
            )
            return ModelSource("folder", path, path / WEIGHTS_NAME, name=spec)
        return _registered_source(spec, revision, cache_dir)
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
        folder = embedded_folder(name)
        return ModelSource("folder", folder, folder / WEIGHTS_NAME, name=name)
    try:
        folder = download_from_hub(entry.hub_repo, revision or entry.revision, cache_dir=cache_dir)
    except ModelNotFoundError as err:
        hint = ""
        if entry.official_source:
            hint = (
                f" The original weights are {entry.official_source}; "
                f"plip.load('PLIP_RN50.pth.tar') (or plip.backbone) uses that file directly, and "
                f"`plip convert PLIP_RN50.pth.tar {name}/` turns it into a model folder, which "
                f"plip.load({name!r}) then loads when run from the folder holding it."
            )
        raise ModelNotFoundError(f"{err}.{hint}") from None
    return ModelSource("folder", folder, folder / WEIGHTS_NAME, name=name)


def download_command(repo: str, revision: str = "main") -> str:
    """The shell command that puts ``repo@revision`` into the Hugging Face cache (the ``hf``
    CLI of current huggingface_hub; ``huggingface-cli`` is no longer installed)."""
    return f"hf download {repo} --revision {revision}"


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def _endpoint_reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub endpoint opens within ``timeout`` seconds.

    huggingface_hub retries a failed request five times with back-off (about 30 s) before it
    gives up; one probe first lets an offline machine use its cache, or fail, at once. Behind a
    proxy a direct connection proves nothing, so the Hub is then assumed reachable.
    """
    import socket
    from urllib.parse import urlsplit

    if any(os.environ.get(name) for name in _PROXY_VARIABLES):
        return True
    parts = urlsplit(url)
    if not parts.hostname:
        return True  # let huggingface_hub report a malformed endpoint
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
        return True
    except OSError:
        return False


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
    # no connection: the cache is all there is (a cached model loads without waiting on retries)
    unreachable = not offline and not _endpoint_reachable(endpoint or "https://huggingface.co")
    paths = {}
    for filename in REQUIRED_FILES + TOKENIZER_FILES:
        try:
            paths[filename] = hf_hub_download(
                repo, filename, revision=revision, cache_dir=cache_dir,
                endpoint=endpoint, local_files_only=offline or unreachable,
            )
        except LocalEntryNotFoundError:
            if offline:
                raise ModelNotFoundError(
                    f"hf-hub:{repo}@{revision} is not in the local cache and HF_HUB_OFFLINE is set: "
                    f"download it once online (`{download_command(repo, revision)}`), or copy a model "
                    f"folder here and pass its path to plip.load"
                ) from None
            raise ModelNotFoundError(
                f"hf-hub:{repo}@{revision} could not be downloaded (no connection to "
                f"{endpoint or 'https://huggingface.co'}; on a machine with one: `{download_command(repo, revision)}`)"
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
