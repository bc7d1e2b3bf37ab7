"""PLIP inside the ReID tool-kits people already use, with no glue code.

Each submodule imports its client package only when it is imported itself, so
``import plip`` never pulls in torchreid, fast-reid or boxmot:

- :mod:`plip.integrations.torchreid`: ``import plip.integrations.torchreid`` registers
  ``plip_bot``, ``plip_mgn`` and ``plip_rn50`` in ``torchreid.models.build_model``, and
  :func:`~plip.integrations.torchreid.datamanager_kwargs` gives ``ImageDataManager`` the
  model's input size and normalisation.
- :mod:`plip.integrations.fastreid`: the ``build_plip_backbone`` backbone and the
  ``PLIPMGN`` meta-architecture, registered in fast-reid's registries, plus shipped
  configs (:func:`~plip.integrations.fastreid.config_path`).
- :mod:`plip.integrations.boxmot`: :class:`~plip.integrations.boxmot.PLIPReID`, an
  appearance model with boxmot's ``get_features(xyxy, bgr_image)`` contract.

Install the clients with ``pip install "plip-person[integrations]"`` (fast-reid separately:
``pip install fastreid --no-deps``, see the docs).
"""

from __future__ import annotations

import importlib

from ..errors import PlipError

__all__ = ["require"]


def require(package: str, extra: str = "integrations") -> object:
    """Import the client ``package`` or raise a :class:`~plip.errors.PlipError` saying how to install it."""
    try:
        return importlib.import_module(package)
    except ImportError as error:
        hint = "pip install fastreid --no-deps (see docs/integrations/fastreid.md)" if package == "fastreid" else (
            f'pip install "plip-person[{extra}]"'
        )
        raise PlipError(f"plip.integrations needs {package!r}, which cannot be imported ({error}); install it: {hint}") from error
