"""Load data pickles (numpy arrays, lists, dicts) without running arbitrary code.

``pickle.load`` can call any importable function a file names, so a downloaded
``dataset_all.pkl`` could run code. :func:`load_data_pickle` uses an unpickler whose
``find_class`` only resolves an allow-list of harmless constructors: numpy array,
dtype and scalar reconstruction, a few builtin containers, and ``easydict.EasyDict``
(rebuilt as a plain ``dict``, so easydict need not be installed). Any other reference
raises :class:`~plip.errors.DataError` before anything is called.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

__all__ = ["load_data_pickle"]


class _AttrDict(dict):
    """Stand-in for ``easydict.EasyDict``: a dict that accepts the pickled ``__dict__``.

    A pickled EasyDict carries its items (SETITEMS) and then its ``__dict__`` (BUILD),
    which mirrors the items; only keys missing from the items are taken from it.
    """

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state = state[0]
        if isinstance(state, dict):
            for key, value in state.items():
                self.setdefault(key, value)


def _numpy_function(name: str) -> Callable[..., Any]:
    try:  # numpy >= 2
        from numpy._core import multiarray, numeric
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    return {"_reconstruct": multiarray._reconstruct, "scalar": multiarray.scalar,
            "_frombuffer": numeric._frombuffer}[name]  # fmt: skip


def _allowed() -> dict[tuple[str, str], Any]:
    table: dict[tuple[str, str], Any] = {}
    # numpy 1.x files name numpy.core, numpy 2.x files numpy._core: accept both.
    for core in ("numpy.core", "numpy._core"):
        table[(f"{core}.multiarray", "_reconstruct")] = _numpy_function("_reconstruct")
        table[(f"{core}.multiarray", "scalar")] = _numpy_function("scalar")
        table[(f"{core}.numeric", "_frombuffer")] = _numpy_function("_frombuffer")
    table[("numpy", "ndarray")] = np.ndarray
    table[("numpy", "dtype")] = np.dtype
    # Protocol-2 files (and Python 2 ones, under the __builtin__ name) encode bytes this way.
    table[("_codecs", "encode")] = _latin1_encode
    for module in ("builtins", "__builtin__"):
        for name, obj in (
            ("dict", dict),
            ("list", list),
            ("tuple", tuple),
            ("set", set),
            ("frozenset", frozenset),
            ("range", range),
            ("xrange", range),
        ):
            table[(module, name)] = obj
    table[("collections", "OrderedDict")] = _AttrDict
    table[("easydict", "EasyDict")] = _AttrDict
    return table


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    # Only the text-to-bytes use that pickle makes of it: no codec lookup by name.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return text.encode("latin-1")


class _RestrictedUnpickler(pickle.Unpickler):
    _table = _allowed()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._table[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def _plain(value: Any) -> Any:
    """Turn the EasyDict stand-ins into plain dicts, recursively."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    return value


def load_data_pickle(path: str | Path) -> Any:
    """Load a pickle made only of numpy arrays/scalars, builtin containers and EasyDicts.

    EasyDicts come back as plain ``dict``. Raises :class:`DataError` naming the file if
    it is missing, unreadable, or refers to anything outside the allow-list (which is
    refused before it could run).
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            data = _RestrictedUnpickler(handle, encoding="latin1").load()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except pickle.UnpicklingError as error:
        raise DataError(f"{path}: not a safe data pickle ({error})") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, OverflowError) as error:  # fmt: skip
        raise DataError(
            f"{path}: corrupt or unsupported pickle ({type(error).__name__}: {error})"
        ) from None
    return _plain(data)
