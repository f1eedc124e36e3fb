"""The route table: fixed paths, templates with parameters, 404 and 405, lazy handlers."""

import sys

import pytest

from aigw.errors import MethodNotAllowed, NotFound
from aigw.routes import ROUTES, RouteSpec, RouteTable


async def _h(ctx, gw):
    return None


TABLE = RouteTable([
    RouteSpec("a", "POST", "/v1/chat/completions", _h),
    RouteSpec("p", "POST", "/v1/prompts/{id}/completions", _h),
    RouteSpec("g", "GET", "/v1/prompts/{id}", _h),
])


def test_fixed_path_and_trailing_slash():
    spec, params = TABLE.resolve("POST", "/v1/chat/completions/")
    assert spec.name == "a" and params == {}


def test_path_parameters_are_extracted():
    spec, params = TABLE.resolve("POST", "/v1/prompts/pp-42/completions")
    assert spec.name == "p" and params == {"id": "pp-42"}
    assert TABLE.resolve("GET", "/v1/prompts/x")[1] == {"id": "x"}


@pytest.mark.parametrize("method, path, exc", [
    ("POST", "/v1/nope", NotFound),
    ("POST", "/v1/prompts//completions", NotFound),  # an empty parameter is no match
    ("GET", "/v1/chat/completions", MethodNotAllowed),
    ("DELETE", "/v1/prompts/x/completions", MethodNotAllowed),
])
def test_unknown_routes_and_methods(method, path, exc):
    with pytest.raises(exc):
        TABLE.resolve(method, path)


def test_405_names_the_allowed_methods():
    with pytest.raises(MethodNotAllowed, match="allowed: POST"):
        ROUTES.resolve("GET", "/v1/chat/completions")


def test_handlers_are_imported_only_when_asked_for():
    spec = RouteSpec("t", "GET", "/t", "tests.support.lazy_handler_module:handler")
    assert "tests.support.lazy_handler_module" not in sys.modules
    assert spec.handler().__name__ == "handler"
    assert "tests.support.lazy_handler_module" in sys.modules
