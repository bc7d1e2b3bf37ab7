"""Typed configuration coercion: a dataclass tree built from a (JSON / YAML) mapping.

One coercer for every config of the package (model ``config.json`` files, training recipes,
downstream model folders). :func:`build_dataclass` checks each value against its field's
type hint and returns it in that type (lists become tuples where the hint is a tuple,
integers become floats where a float is expected); a mistake raises
:class:`~plip.errors.ConfigError` naming the key path and the file. Keys the mapping does
not hold keep their dataclass defaults; :func:`present_keys` tells which keys were given,
so that a caller can require fields that have defaults.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from typing import Any, Collection, Literal, Mapping, Sequence, TypeVar, Union

from ..errors import ConfigError

__all__ = ["build_dataclass", "present_keys", "type_name", "field_hints", "unknown_key_error"]

C = TypeVar("C")


@functools.lru_cache(maxsize=None)
def field_hints(cls: type) -> dict[str, Any]:
    """The resolved type hints of a dataclass (``from __future__ import annotations`` safe)."""
    return typing.get_type_hints(cls)


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def type_name(tp: Any) -> str:
    """A type hint in words, for error messages (``list of int``, ``one of 'a', 'b'``)."""
    if tp is type(None):
        return "null"
    if _is_union(tp):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, tuple, dict):
        args = typing.get_args(tp)
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return f"list of {type_name(args[0])}"
        if origin is tuple:
            return f"list of {len(args)} ({', '.join(type_name(a) for a in args)})"
        if origin is list:
            return f"list of {type_name(args[0])}"
        return f"mapping of {type_name(args[0])} to {type_name(args[1])}"
    if dataclasses.is_dataclass(tp):
        return "mapping (section)"
    return getattr(tp, "__name__", str(tp))


def unknown_key_error(key: str, choices: Sequence[str], origin: str) -> ConfigError:
    """An unknown key, with the closest valid spellings (or the valid keys)."""
    leaf = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(leaf, list(choices), n=3, cutoff=0.6)
    parent = key[: -len(leaf)]
    hint = f"; did you mean {', '.join(repr(parent + c) for c in close)}?" if close else \
        f"; valid keys here: {', '.join(sorted(choices))}"
    return ConfigError(f"unknown config key '{key}'{origin}{hint}")


def _bad_type(key: str, tp: Any, value: Any, origin: str) -> ConfigError:
    return ConfigError(
        f"config key '{key}' expects {type_name(tp)}, got {value!r} ({type(value).__name__}){origin}"
    )


def _split_list(value: str) -> list[Any]:
    """``"30,50"`` (a command-line list) as items parsed like YAML scalars."""
    import yaml

    return [yaml.safe_load(v) for v in value.split(",")]


def _coerce(value: Any, tp: Any, key: str, origin: str) -> Any:
    """Check ``value`` against the type hint ``tp``; return it in the field's Python type."""
    if tp is Any:
        return value
    if _is_union(tp):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise _bad_type(key, tp, value, origin)
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, origin)
            except ConfigError:
                pass
        raise _bad_type(key, tp, value, origin)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise _bad_type(key, tp, value, origin)
        return _build(tp, value, key + ".", origin)
    origin_tp = typing.get_origin(tp)
    if origin_tp is Literal:
        choices = typing.get_args(tp)
        if value in choices and type(value) in {type(c) for c in choices}:
            return value
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"config key '{key}' must be {type_name(tp)}, got {value!r}{origin}{hint}")
    if origin_tp in (list, tuple):
        if isinstance(value, str) and "," in value:
            value = _split_list(value)
        if not isinstance(value, (list, tuple)):
            raise _bad_type(key, tp, value, origin)
        args = typing.get_args(tp)
        if origin_tp is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise _bad_type(key, tp, value, origin)
            items = [_coerce(v, a, f"{key}[{i}]", origin) for i, (v, a) in enumerate(zip(value, args))]
        else:
            items = [_coerce(v, args[0], f"{key}[{i}]", origin) for i, v in enumerate(value)]
        return tuple(items) if origin_tp is tuple else items
    if origin_tp is dict:
        if not isinstance(value, Mapping):
            raise _bad_type(key, tp, value, origin)
        k_tp, v_tp = typing.get_args(tp)
        return {_coerce(k, k_tp, key, origin): _coerce(v, v_tp, f"{key}.{k}", origin)
                for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _bad_type(key, tp, value, origin)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _bad_type(key, tp, value, origin)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise _bad_type(key, tp, value, origin)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _bad_type(key, tp, value, origin)
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise _bad_type(key, tp, value, origin)


def _build(cls: type[C], data: Mapping[str, Any], prefix: str, origin: str) -> C:
    hints, fields = field_hints(cls), _fields(cls)
    kwargs = {}
    for name, value in data.items():
        if not isinstance(name, str) or name not in fields:
            raise unknown_key_error(f"{prefix}{name}", list(fields), origin)
        kwargs[name] = _coerce(value, hints[name], f"{prefix}{name}", origin)
    missing = [n for n, f in fields.items() if n not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"config key '{prefix}{missing[0]}' is required{origin}")
    return cls(**kwargs)


def present_keys(data: Mapping[str, Any], prefix: str = "") -> set[str]:
    """The dotted key paths a (nested) mapping gives, sections included (``{"a.b", "a"}``)."""
    keys: set[str] = set()
    for name, value in data.items():
        path = f"{prefix}{name}"
        keys.add(path)
        if isinstance(value, Mapping):
            keys |= present_keys(value, path + ".")
    return keys


def build_dataclass(cls: type[C], data: Mapping[str, Any] | None, *, source: str = "", prefix: str = "",
                    require: Collection[str] = ()) -> C:
    """Build the dataclass ``cls`` (sections nested as dataclass fields) from ``data``.

    Args:
        cls: the dataclass.
        data: a mapping of field names to values (nested mappings for sections); ``None``
            is the empty mapping.
        source: the file (or "command line") the mapping came from, named in errors.
        prefix: the key path of ``data`` inside its file (``"vision."``), named in errors.
        require: dotted key paths (relative to ``data``) that must be given even though the
            dataclass has a default for them.

    Raises:
        ConfigError: an unknown key (with the closest spellings), a value of the wrong type,
            or a required key absent, naming the key path and ``source``.
    """
    origin = f" (in {source})" if source else ""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        where = f"config key '{prefix.rstrip('.')}'" if prefix else "config"
        raise ConfigError(f"{where}{origin} must be a mapping, got {type(data).__name__}")
    if require:
        given = present_keys(data)
        absent = sorted(k for k in require if k not in given)
        if absent:
            raise ConfigError(f"config key '{prefix}{absent[0]}' is required{origin}")
    return _build(cls, data, prefix, origin)
