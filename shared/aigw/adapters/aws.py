"""The AWS Lambda shell: API Gateway HTTP API (payload 2.0) and Function URL events.

Mangum adapts the event to ASGI and back; its event loop lives as long as the execution
environment, so the shared upstream connection pool survives between invocations. API
Gateway buffers, so a stream is delivered as one complete SSE body here; the streaming
Function URL runs the same ASGI app behind the Lambda Web Adapter instead (see template.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mangum import Mangum

from aigw.adapters.asgi import Endpoint, GatewayApp
from aigw.gateway import Gateway


def http_handler(endpoint: Endpoint, gateway: Gateway | None = None, *, upstream: bool = True) -> Any:
    """A Lambda handler serving one route (API Gateway has already routed the request).

    One request at a time per execution environment: the http.client transport serves it
    without aiohttp's ~210 ms import (``UPSTREAM_CLIENT`` overrides). With ``upstream`` the
    transport (and its TLS context) is built during init, not on the first request.
    """
    if gateway is None:
        gateway = Gateway.from_env(default_client="stdlib")
    if upstream:
        gateway.transport  # noqa: B018 - built now, so the cold start is paid in init
    app = GatewayApp({}, gateway, fixed=endpoint)
    return Mangum(app, lifespan="off")


def router_handler(routes: Mapping[str, Mapping[str, Endpoint]], gateway: Gateway | None = None) -> Any:
    """A Lambda handler that routes by path and method itself (API Gateway's $default route)."""
    if gateway is None:
        gateway = Gateway.from_env(default_client="stdlib")
    return Mangum(GatewayApp(routes, gateway), lifespan="off")
