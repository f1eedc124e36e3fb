"""The generic parameter-mapping engine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from aigw.errors import InvalidRequest
from aigw.providers.params import OMIT, MissingParam, ParamSpec, map_params


def _double(body: Mapping[str, Any]) -> Any:
    return body["n"] * 2


@pytest.mark.parametrize(
    ("body", "spec", "expected"),
    [
        ({"a": 1}, {"a": ParamSpec("b")}, {"b": 1}),  # renamed
        ({"a": 1, "zzz": 2}, {"a": ParamSpec("a")}, {"a": 1}),  # unknown params dropped
        ({"user": "u"}, {"user": ParamSpec("metadata.user_id")}, {"metadata": {"user_id": "u"}}),  # dotted path nests
        (
            {"u": "x", "v": "y"},
            {"u": ParamSpec("m.a"), "v": ParamSpec("m.b")},
            {"m": {"a": "x", "b": "y"}},
        ),  # two paths share a parent
        ({}, {"t": ParamSpec("t", default=1)}, {"t": 1}),  # default when absent
        ({"t": 0.5}, {"t": ParamSpec("t", default=1)}, {"t": 0.5}),  # given value wins
        ({"n": 2}, {"x": ParamSpec("x", default=lambda b: b["n"] + 1)}, {"x": 3}),  # callable default sees the body
        ({}, {"t": ParamSpec("t")}, {}),  # absent, no default: left out
        ({"t": None}, {"t": ParamSpec("t", min=0)}, {"t": None}),  # explicit null is passed on
        ({"t": 3}, {"t": ParamSpec("t", min=0, max=1)}, {"t": 1}),  # clamped to max
        ({"t": -2.5}, {"t": ParamSpec("t", min=0, max=1)}, {"t": 0}),  # clamped to min
        ({"t": 0.7}, {"t": ParamSpec("t", min=0, max=1)}, {"t": 0.7}),
        ({"t": True}, {"t": ParamSpec("t", max=0)}, {"t": True}),  # booleans are not numbers here
        ({"t": "9"}, {"t": ParamSpec("t", max=1)}, {"t": "9"}),  # nor strings
        ({"n": 4}, {"n": ParamSpec("n2", transform=_double)}, {"n2": 8}),  # transform gets the body
        ({"n": 4}, {"n": ParamSpec("n", transform=_double, max=5)}, {"n": 5}),  # clamp after transform
        ({"n": 4}, {"n": ParamSpec("n", transform=lambda b: OMIT)}, {}),  # OMIT leaves the field out
        (
            {"n": 4},
            {"n": (ParamSpec("a"), ParamSpec("b", transform=_double))},
            {"a": 4, "b": 8},
        ),  # one param feeds several fields
        (
            {"x": 1, "y": 2},
            {"x": ParamSpec("same"), "y": ParamSpec("same")},
            {"same": 2},
        ),  # later table entries overwrite earlier ones
    ],
)
def test_map_params(body: dict[str, Any], spec: dict[str, Any], expected: dict[str, Any]) -> None:
    assert map_params(body, spec) == expected


def test_output_follows_table_order_not_body_order() -> None:
    spec = {"a": ParamSpec("a"), "b": ParamSpec("b"), "c": ParamSpec("c", default=0)}
    assert list(map_params({"b": 1, "a": 2}, spec)) == ["a", "b", "c"]


def test_required_without_default_is_refused() -> None:
    with pytest.raises(MissingParam) as info:
        map_params({}, {"messages": ParamSpec("messages", required=True)})
    assert isinstance(info.value, InvalidRequest)
    assert info.value.status == 400 and info.value.param == "messages"


def test_required_with_default_uses_default() -> None:
    assert map_params({}, {"model": ParamSpec("model", default="m", required=True)}) == {"model": "m"}


def test_body_is_not_mutated() -> None:
    body = {"user": "u", "t": 5}
    map_params(body, {"user": ParamSpec("metadata.user_id"), "t": ParamSpec("t", max=1)})
    assert body == {"user": "u", "t": 5}
