"""The AWS Lambda shell: API Gateway HTTP API (payload 2.0) and Function URL events.

Mangum adapts the event to ASGI and back; its event loop lives as long as the execution
environment, so the shared upstream connection pool survives between invocations. API
Gateway buffers, so a stream is delivered as one complete SSE body here; the streaming
Function URL runs the same ASGI app behind the Lambda Web Adapter instead (see template.yaml).

Around Mangum: an event it cannot read is answered 400 in the OpenAI shape (not API Gateway's
generic 500), and an answer larger than Lambda's 6 MB synchronous limit becomes a clean 502
that points to the streaming URL (Lambda would fail the invocation instead).
"""

from __future__ import annotations

from typing import Any

import orjson
from mangum import Mangum

from aigw.adapters.asgi import GatewayApp
from aigw.adapters.bugs import log_bug
from aigw.adapters.lambda_events import event_problem, misread_risk
from aigw.adapters.lambda_limits import too_large
from aigw.errors import GatewayError, InvalidEvent, render_error
from aigw.gateway import Gateway
from aigw.routes import RouteSpec, RouteTable
from aigw.settings import LAMBDA_ROUTE, LAMBDA_SYNC_RESPONSE_LIMIT


def _answer(exc: GatewayError, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"statusCode": exc.status, "headers": {"content-type": "application/json", **(headers or {})},
            "body": render_error(exc).decode(), "isBase64Encoded": False}


class LambdaHttpHandler:
    """``handler(event, context)``: validate, run the app through Mangum, bound the answer.

    The app itself collects streams and refuses answers over ``response_limit`` (so the request's
    context records the 502 the client gets); the check of the finished result here is a backstop.
    """

    def __init__(self, routes: RouteSpec | RouteTable, gateway: Gateway,
                 response_limit: int = LAMBDA_SYNC_RESPONSE_LIMIT) -> None:
        # Mangum delivers the body whole and never reports a client leaving: no watcher for it.
        self.app = GatewayApp(routes, gateway, buffer_limit=response_limit, watch_client=False)
        self._mangum = Mangum(self.app, lifespan="off")
        self._limit = response_limit

    def __call__(self, event: Any, context: Any) -> dict[str, Any]:
        problem = misread_risk(event)
        if problem is not None:
            return _answer(InvalidEvent(f"the request could not be read: {problem}"))
        try:
            result: dict[str, Any] = self._mangum(event, context)
        except Exception as exc:
            problem = event_problem(event)  # the full check, only now that Mangum failed on it
            if problem is not None:
                return _answer(InvalidEvent(f"the request could not be read: {problem}"))
            log_bug("lambda handler", exc)  # a bug: never a raw invocation error (API Gateway's bare 500)
            return _answer(GatewayError("internal gateway error"))
        # Backstop for what the app's own bound missed; a short body cannot reach the limit (JSON
        # escaping at most sextuples it), so the result is measured only for long ones.
        if len(result.get("body") or "") * 6 > self._limit and len(orjson.dumps(result)) > self._limit:
            headers = result.get("headers") or {}
            trace = {"x-portkey-trace-id": headers["x-portkey-trace-id"]} if "x-portkey-trace-id" in headers else {}
            return _answer(too_large(), trace)
        return result


def http_handler(route: RouteSpec, gateway: Gateway | None = None, *, upstream: bool = True) -> LambdaHttpHandler:
    """A Lambda handler serving one route (API Gateway has already routed the request).

    One request at a time per execution environment: the http.client transport serves it
    without aiohttp's ~210 ms import (``UPSTREAM_CLIENT`` overrides). With ``upstream`` the
    route's code and the transport (and its TLS context) are loaded during init, not on the
    first request.
    """
    if gateway is None:
        gateway = Gateway.from_env(LAMBDA_ROUTE)
    route.handler()  # imported now: the cold start is paid in init
    if upstream:
        gateway.transport  # noqa: B018 - built now, so the cold start is paid in init
    return LambdaHttpHandler(route, gateway)


def router_handler(routes: RouteTable, gateway: Gateway | None = None) -> LambdaHttpHandler:
    """A Lambda handler that routes by path and method itself (API Gateway's $default route)."""
    if gateway is None:
        gateway = Gateway.from_env(LAMBDA_ROUTE)
    return LambdaHttpHandler(routes, gateway)
