"""Errors of :mod:`plip.index` (all :class:`plip.PlipError` subclasses)."""

from __future__ import annotations

from ..errors import MissingShardError, PlipError

# MissingShardError lives in plip.errors: plip encode (plip.inference.shards) raises it too.
__all__ = ["IndexFormatError", "ModelMismatchError", "MissingShardError"]


class IndexFormatError(PlipError):
    """An index folder is missing, incomplete or corrupt."""


class ModelMismatchError(PlipError):
    """The model given to an index is not the one the index was built with."""
