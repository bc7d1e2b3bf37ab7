"""Errors of :mod:`plip.index` (all :class:`plip.PlipError` subclasses)."""

from __future__ import annotations

from ..errors import PlipError


class IndexFormatError(PlipError):
    """An index folder is missing, incomplete or corrupt."""


class ModelMismatchError(PlipError):
    """The model given to an index is not the one the index was built with."""


class MissingShardError(IndexFormatError):
    """An encoding shard that the merge needs is not on disk (a rank did not finish)."""
