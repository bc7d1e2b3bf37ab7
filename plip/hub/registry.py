"""The registry of named models and where their weights come from."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

OFFICIAL_REPO_URL = "https://github.com/Zplusdragon/PLIP"


@dataclass(frozen=True)
class ModelEntry:
    """A named model.

    Attributes:
        name: registry name (``plip.load(name)``).
        description: one line for ``plip models``.
        hub_repo: Hugging Face Hub repository holding the converted weights (our folder format).
        revision: Hub revision (branch, tag or commit) pinned for reproducibility.
        params: parameter count, for display.
        official_source: where the original weights can be obtained, if they are not ours.
        embedded: package-relative folder for a model shipped inside the wheel.
    """

    name: str
    description: str
    hub_repo: str | None = None
    revision: str = "main"
    params: str = ""
    official_source: str | None = None
    embedded: str | None = None

    @property
    def source(self) -> str:
        if self.embedded:
            return "embedded in the package"
        return f"hf-hub:{self.hub_repo}@{self.revision}"


MODELS: dict[str, ModelEntry] = {}


def register_model(entry: ModelEntry) -> ModelEntry:
    MODELS[entry.name] = entry
    return entry


register_model(
    ModelEntry(
        name="plip-rn50",
        description="PLIP Modified ResNet-50 + BERT-base, pre-trained on SYNTH-PEDES (official release)",
        hub_repo="plip-person/plip-rn50",
        revision="main",
        params="147M",
        official_source=(
            f"PLIP_RN50.pth.tar from the official repository {OFFICIAL_REPO_URL} "
            "(README: Google Drive / Baidu Yun links)"
        ),
    )
)


register_model(
    ModelEntry(
        name="plip-tiny-synth",
        description="small PLIP trained by this project on synthetic persons (offline demo model; synthetic people only)",
        params="3.4M",
        embedded="assets/models/plip-tiny-synth",
    )
)


def embedded_folder(name: str) -> Path:
    """The folder of a model shipped inside the package (``plip-tiny-synth``)."""
    entry = MODELS[name]
    if not entry.embedded:
        raise KeyError(f"{name} is not embedded in the package")
    return Path(str(resources.files("plip").joinpath(entry.embedded)))


def list_models() -> list[str]:
    """Names accepted by :func:`plip.load`."""
    return sorted(MODELS)
