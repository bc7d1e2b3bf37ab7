"""Metadata filters: ``camera=c3``, ``time>=2024-05-01``, ``camera!=c1``, ``camera=c1,c2``.

A filter is ``COLUMN OP VALUE`` with OP one of ``= != >= <= > <``; values are read as JSON
when they parse (``3``, ``2.5``, ``true``), else as strings; ``=`` and ``!=`` accept a
comma-separated list. ``id`` and ``path`` are columns too. Rows whose value is missing never
match a comparison. The Python API also takes a dict ``{column: value or list of values}``.
"""

from __future__ import annotations

import functools
import json
import operator
import re
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ..errors import PlipError

_PATTERN = re.compile(r"^\s*([A-Za-z_][\w.-]*)\s*(!=|>=|<=|=|>|<)\s*(.*?)\s*$")
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
}


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse(where: str | Mapping[str, Any] | Sequence[str] | None) -> list[tuple[str, str, Any]]:
    """``[(column, op, value)]`` from expressions or a dict (lists mean "one of")."""
    if where is None:
        return []
    if isinstance(where, Mapping):
        return [(col, "=", list(v) if isinstance(v, (list, tuple, set)) else [v]) for col, v in where.items()]
    if isinstance(where, str):
        where = [where]
    out = []
    for text in where:
        match = _PATTERN.match(text)
        if not match:
            raise PlipError(f"filter {text!r}: expected COLUMN OP VALUE with OP one of = != >= <= > <")
        col, op, raw = match.groups()
        # "camera=3" matches the number 3 and the string "3".
        value = [x for v in raw.split(",") for x in (_value(v), v)] if op in ("=", "!=") else _value(raw)
        out.append((col, op, value))
    return out


class CodedColumn:
    """A column as integer codes into its distinct values, built once: a filter is then one
    test per distinct value and a vectorised lookup, instead of a Python test per row (about
    0.5 us a row, 0.5 s per query at a million rows). Iterates over the values like a list."""

    def __init__(self, values: Sequence[Any]) -> None:
        self.values = values
        self.lookup: dict[Any, int] = {}
        #: one value per code, as the column holds it (lists and dicts too)
        self.distinct: list[Any] = []

        def code(value: Any) -> int:
            key = _hashable(value)
            found = self.lookup.get(key)
            if found is None:
                found = self.lookup[key] = len(self.distinct)
                self.distinct.append(value)
            return found

        self.codes = np.fromiter((code(v) for v in values), dtype=np.int64, count=len(values))

    def __iter__(self):
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def isin(self, wanted: Iterable[Any]) -> np.ndarray:
        """Rows whose value is one of ``wanted`` (hashable forms, as :func:`mask` makes them)."""
        codes = [self.lookup[w] for w in wanted if w in self.lookup]
        return np.isin(self.codes, np.asarray(codes, dtype=np.int64))

    def compare(self, compare: Callable[[Any, Any], bool], value: Any) -> np.ndarray:
        """Rows whose value ``v`` has ``compare(v, value)`` (missing values never match)."""
        numbers = self.numbers if _exact_number(value) else None
        if numbers is not None:  # NaN (a missing value) compares False, as _compare says
            per_code = compare(numbers, value)
        else:
            per_code = np.fromiter((_compare(compare, v, value) for v in self.distinct), dtype=bool,
                                   count=len(self.distinct))
        return per_code[self.codes]

    @functools.cached_property
    def numbers(self) -> np.ndarray | None:
        """The distinct values as float64 (None as NaN) when each is a number float64 holds
        exactly, else None; built on first use."""
        if not all(v is None or _exact_number(v) for v in self.distinct):
            return None
        return np.array([np.nan if v is None else v for v in self.distinct], dtype=np.float64)


def mask(filters: list[tuple[str, str, Any]], columns: Mapping[str, Iterable[Any]], rows: int) -> np.ndarray:
    """Boolean mask of the rows matching every filter (columns: lists or :class:`CodedColumn`)."""
    keep = np.ones(rows, dtype=bool)
    for col, op, value in filters:
        if col not in columns:
            raise PlipError(f"filter on {col!r}: no such column (columns: {', '.join(sorted(columns))})")
        data = columns[col]
        if op in ("=", "!="):
            wanted = set(_hashable(v) for v in value)
            if isinstance(data, CodedColumn):
                hit = data.isin(wanted)
            else:
                hit = np.fromiter((_hashable(v) in wanted for v in data), dtype=bool, count=rows)
            keep &= hit if op == "=" else ~hit
        else:
            compare = _COMPARE[op]
            if isinstance(data, CodedColumn):
                keep &= data.compare(compare, value)
            else:
                keep &= np.fromiter((_compare(compare, v, value) for v in data), dtype=bool, count=rows)
    return keep


def _exact_number(value: Any) -> bool:
    """An int or float (not a bool) that float64 holds exactly, so numpy compares it as Python does."""
    if isinstance(value, bool):
        return False
    return isinstance(value, float) or (isinstance(value, int) and abs(value) <= 2**53)


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else value


def _compare(compare: Callable[[Any, Any], bool], a: Any, b: Any) -> bool:
    if a is None:
        return False
    try:
        return bool(compare(a, b))
    except TypeError:
        return bool(compare(str(a), str(b)))
