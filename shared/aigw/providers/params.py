"""A generic engine that maps OpenAI request params to a provider's params, described as data.

A provider's mapping is a table ``{openai_name: ParamSpec | (ParamSpec, ...)}``; one OpenAI
param may feed several provider fields (``messages`` -> ``messages`` and ``system``). The
output follows the table's order, params the table does not name are dropped, and only the
complex fields need code (a ``transform``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aigw.errors import MissingParam

Json = dict[str, Any]


class _Omit:
    def __repr__(self) -> str:
        return "OMIT"


# Returned by a transform to leave the provider field out (None would be sent as null).
OMIT: Any = _Omit()
_NO_DEFAULT: Any = object()


@dataclass(frozen=True, slots=True)
class ParamSpec:
    # Provider field; dots nest ("metadata.user_id" -> {"metadata": {"user_id": ...}}).
    target: str
    # Used when the OpenAI param is absent; a callable is called with the whole body.
    default: Any = _NO_DEFAULT
    # Numbers (not booleans) are clamped into [min, max].
    min: float | None = None
    max: float | None = None
    # Given the whole OpenAI body (complex fields read several params); may return OMIT.
    transform: Callable[[Mapping[str, Any]], Any] | None = None
    # Absent with no default: the request is refused before it reaches the provider.
    required: bool = False


ParamTable = Mapping[str, ParamSpec | tuple[ParamSpec, ...]]


def map_params(body: Mapping[str, Any], spec: ParamTable) -> Json:
    out: Json = {}
    for name, entry in spec.items():
        for param in entry if isinstance(entry, tuple) else (entry,):
            if name in body:
                value = param.transform(body) if param.transform is not None else body[name]
                value = _clamp(value, param)
            elif param.default is not _NO_DEFAULT:
                value = param.default(body) if callable(param.default) else param.default
            elif param.required:
                raise MissingParam(f"missing required parameter {name!r}", param=name)
            else:
                continue
            if value is not OMIT:
                _set_path(out, param.target, value)
    return out


def _clamp(value: Any, param: ParamSpec) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if param.min is not None and value < param.min:
        return param.min
    if param.max is not None and value > param.max:
        return param.max
    return value


def _set_path(out: Json, path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = out
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[leaf] = value
