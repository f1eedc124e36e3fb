"""The gateway's routes as data: method, path template, handler, and the ingress error format.

Handlers are named by reference (``module:function``) and imported on first use, so a shell
that serves one route (a per-route Lambda) imports only that route's code, and the route
table itself costs nothing to import. Path templates may hold parameters
(``/v1/prompts/{id}/completions``); their values reach the handler in ``request.path_params``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from importlib import import_module
from typing import TYPE_CHECKING

from aigw.errors import ErrorFormat, MethodNotAllowed, NotFound

if TYPE_CHECKING:
    from aigw.context import RequestContext
    from aigw.gateway import Gateway
    from aigw.response import GatewayResponse

Handler = Callable[["RequestContext", "Gateway"], Awaitable["GatewayResponse"]]


class RouteSpec:
    # A plain class, not a dataclass: every route function imports this module at cold start.
    __slots__ = ("name", "method", "path", "handler_ref", "error_format", "_segments")

    def __init__(self, name: str, method: str, path: str, handler_ref: str | Handler,
                 error_format: ErrorFormat = ErrorFormat.OPENAI) -> None:
        self.name = name  # the function serving it (functions/<name>/)
        self.method = method
        self.path = path  # template: literal segments and {param} segments
        # "module:function" (imported on first use), or the handler itself
        self.handler_ref = handler_ref
        self.error_format = error_format
        self._segments = _split(path)

    def __repr__(self) -> str:
        return f"RouteSpec({self.method} {self.path} -> {self.name})"

    def handler(self) -> Handler:
        ref = self.handler_ref
        return _load(ref) if isinstance(ref, str) else ref

    def match(self, path: str) -> dict[str, str] | None:
        """The path parameters when ``path`` fits this template, else None."""
        if "{" not in self.path:
            return {} if _split(path) == self._segments else None
        parts = _split(path)
        if len(parts) != len(self._segments):
            return None
        params: dict[str, str] = {}
        for want, got in zip(self._segments, parts, strict=True):
            if want.startswith("{") and want.endswith("}"):
                if not got:
                    return None
                params[want[1:-1]] = got
            elif want != got:
                return None
        return params


def _split(path: str) -> tuple[str, ...]:
    trimmed = path.strip("/")
    return tuple(trimmed.split("/")) if trimmed else ()


_LOADED: dict[str, Handler] = {}
_NO_PARAMS: Mapping[str, str] = {}


def _load(ref: str) -> Handler:
    handler = _LOADED.get(ref)
    if handler is None:
        module, _, name = ref.partition(":")
        handler = _LOADED[ref] = getattr(import_module(module), name)
    return handler


class RouteTable:
    def __init__(self, specs: Iterable[RouteSpec]) -> None:
        self.specs = tuple(specs)
        # Fixed paths are one dict lookup (the hot path); templates are tried in order after.
        self._fixed: dict[tuple[str, ...], dict[str, RouteSpec]] = {}
        self._exact: dict[tuple[str, str], RouteSpec] = {}  # (method, path as written): the hot path
        self._templated: list[RouteSpec] = []
        for spec in self.specs:
            if "{" in spec.path:
                self._templated.append(spec)
            else:
                self._fixed.setdefault(spec._segments, {})[spec.method] = spec
                self._exact[(spec.method, spec.path)] = spec

    def resolve(self, method: str, path: str) -> tuple[RouteSpec, Mapping[str, str]]:
        exact = self._exact.get((method, path))
        if exact is not None:
            return exact, _NO_PARAMS
        fixed = self._fixed.get(_split(path))
        if fixed is not None:
            spec = fixed.get(method)
            if spec is None:
                raise _not_allowed(method, path, fixed)
            return spec, {}
        matches: dict[str, tuple[RouteSpec, dict[str, str]]] = {}
        for spec in self._templated:
            found = spec.match(path)
            if found is not None:
                matches.setdefault(spec.method, (spec, found))
        if not matches:
            raise NotFound(f"no route for {method} {path}")
        if method not in matches:
            raise _not_allowed(method, path, matches)
        return matches[method]


def _not_allowed(method: str, path: str, allowed: Mapping[str, object]) -> MethodNotAllowed:
    return MethodNotAllowed(f"{method} is not allowed on {path}; allowed: {', '.join(sorted(allowed))}")


HEALTH = RouteSpec("health", "GET", "/v1/health", "aigw.health:health")
ROOT = RouteSpec("health", "GET", "/", "aigw.health:health")
CHAT_COMPLETIONS = RouteSpec("chat_completions", "POST", "/v1/chat/completions", "aigw.endpoints:chat_completions")
COMPLETIONS = RouteSpec("completions", "POST", "/v1/completions", "aigw.endpoints:completions")
EMBEDDINGS = RouteSpec("embeddings", "POST", "/v1/embeddings", "aigw.endpoints:embeddings")
MODELS = RouteSpec("models", "GET", "/v1/models", "aigw.endpoints:models")

ROUTES = RouteTable([ROOT, HEALTH, CHAT_COMPLETIONS, COMPLETIONS, EMBEDDINGS, MODELS])
