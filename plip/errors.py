"""Exceptions raised by plip.

Every error a user can cause (a bad file, a bad value, a missing download) is a
:class:`PlipError` subclass whose message names the file, field or value at fault,
so that the command line can print it as a one-line reason.
"""

from __future__ import annotations


class PlipError(Exception):
    """Base class of the errors plip raises for bad input."""


class CheckpointError(PlipError):
    """A checkpoint file is unreadable, unsafe, or does not match the model."""


class ConfigError(PlipError, ValueError):
    """A configuration key or value is invalid."""


class ModelNotFoundError(PlipError):
    """A model name, folder or Hub repository cannot be resolved."""


class DataError(PlipError):
    """A dataset or annotation file is missing or malformed."""


class ImageLoadError(PlipError):
    """An image cannot be read or decoded."""


class MissingShardError(PlipError):
    """An encoding shard that a merge needs is not on disk (a process or rank did not finish)."""
