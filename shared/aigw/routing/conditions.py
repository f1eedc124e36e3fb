"""Conditional-routing queries: compiled once when the config is parsed, evaluated per request.

A query is a mapping of field paths (``metadata.plan``, ``params.model``, ``url.pathname``)
to a literal (implicit ``$eq``) or an operator object, plus ``$and`` / ``$or`` lists of
queries. ``$ne`` and ``$nin`` hold when the field is absent; every other operator fails.

``$regex`` uses RE2 (``google-re2``): matching is linear in the input, so a hostile pattern
cannot stall a worker the way a backtracking engine can.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import re2

from aigw.errors import InvalidConfig

Predicate = Callable[[Mapping[str, Any]], bool]
_MISSING = object()
_MAX_PATTERN = 1024
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.max_mem = 1 << 20  # bounds compiled-program memory per pattern
_RE2_OPTIONS.log_errors = False


def lookup(context: Mapping[str, Any], path: str) -> Any:
    value: Any = context
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return _MISSING
    return value


# The longest leading number, as JavaScript's parseFloat reads one ("10abc" -> 10, " 2e3" -> 2000).
_LEADING_NUMBER = re.compile(r"\s*([+-]?(?:Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))")


def _number(value: Any) -> float | None:
    """The reference compares ``parseFloat(actual)`` with ``parseFloat(expected)``: numbers as they
    are, strings by their leading number (metadata values arrive as strings); None is NaN."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        match = _LEADING_NUMBER.match(value)
        return float(match.group(1).replace("Infinity", "inf")) if match else None
    return None


def _strict_equal(a: Any, b: Any) -> bool:
    """JavaScript's ``===`` for JSON values: no coercion ("5" is not 5, true is not 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    return bool(a == b)


def _compile_operator(op: str, arg: Any, where: str) -> Callable[[Any], bool]:
    if op == "$eq":
        return lambda v: v is not _MISSING and _strict_equal(v, arg)
    if op == "$ne":
        return lambda v: v is _MISSING or not _strict_equal(v, arg)
    if op in ("$in", "$nin"):
        if not isinstance(arg, list):
            raise InvalidConfig(f"{op} expects a list", param=where)
        members = list(arg)
        if op == "$in":
            return lambda v: v is not _MISSING and any(_strict_equal(v, m) for m in members)
        return lambda v: v is _MISSING or not any(_strict_equal(v, m) for m in members)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if isinstance(arg, bool) or not isinstance(arg, (int, float, str)):
            raise InvalidConfig(f"{op} expects a number or a string", param=where)
        cmp: Callable[[Any, Any], bool] = {
            "$gt": lambda a, b: a > b,
            "$gte": lambda a, b: a >= b,
            "$lt": lambda a, b: a < b,
            "$lte": lambda a, b: a <= b,
        }[op]

        expected = _number(arg)

        def relation(v: Any) -> bool:
            actual = None if v is _MISSING else _number(v)
            return actual is not None and expected is not None and cmp(actual, expected)

        return relation
    if op == "$regex":
        if not isinstance(arg, str) or len(arg) > _MAX_PATTERN:
            raise InvalidConfig(f"$regex expects a pattern string of at most {_MAX_PATTERN} characters", param=where)
        try:
            pattern = re2.compile(arg, options=_RE2_OPTIONS)
        except re2.error as exc:
            reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
            raise InvalidConfig(f"invalid $regex pattern: {reason}", param=where) from None
        return lambda v: isinstance(v, str) and pattern.search(v) is not None
    raise InvalidConfig(f"unknown operator {op!r}", param=where)


def _compile_field(path: str, spec: Any, where: str) -> Predicate:
    if isinstance(spec, Mapping) and spec and all(isinstance(k, str) and k.startswith("$") for k in spec):
        checks = [_compile_operator(op, arg, f"{where}.{op}") for op, arg in spec.items()]
    else:
        checks = [_compile_operator("$eq", spec, where)]

    def predicate(context: Mapping[str, Any]) -> bool:
        value = lookup(context, path)
        return all(check(value) for check in checks)

    return predicate


MAX_QUERY_DEPTH = 16


def _combined(subs: list[Predicate], *, every: bool) -> Predicate:
    if every:
        return lambda ctx: all(s(ctx) for s in subs)
    return lambda ctx: any(s(ctx) for s in subs)


def compile_query(query: Any, where: str, depth: int = 0) -> Predicate:
    """Turn a query object into a predicate over ``{"metadata", "params", "url"}``."""
    if depth > MAX_QUERY_DEPTH:
        raise InvalidConfig(f"$and / $or nest deeper than {MAX_QUERY_DEPTH} levels", param=where)
    if not isinstance(query, Mapping):
        raise InvalidConfig("a condition query must be an object", param=where)
    parts: list[Predicate] = []
    for key, spec in query.items():
        if key in ("$and", "$or"):
            if not isinstance(spec, list) or not spec:
                raise InvalidConfig(f"{key} expects a non-empty list of queries", param=f"{where}.{key}")
            subs = [compile_query(q, f"{where}.{key}[{i}]", depth + 1) for i, q in enumerate(spec)]
            parts.append(_combined(subs, every=key == "$and"))
        elif key.startswith("$"):
            raise InvalidConfig(f"unknown operator {key!r}", param=f"{where}.{key}")
        else:
            parts.append(_compile_field(key, spec, f"{where}.{key}"))
    return lambda ctx: all(p(ctx) for p in parts)
