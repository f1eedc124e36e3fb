"""The forwarding path shared by every provider-backed endpoint.

authenticate -> decode the body once -> read x-portkey-* headers into a target tree ->
route (strategies, retries, fallbacks) -> turn the chosen attempt into the response.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from aigw.body import decode_object
from aigw.errors import GatewayError
from aigw.gateway import Gateway
from aigw.portkey_headers import RequestOptions, read_options
from aigw.request import GatewayRequest
from aigw.response import GatewayResponse, error_response
from aigw.routing.engine import RouterEnv, route
from aigw.upstream.attempt import CallSpec, send
from aigw.upstream.relay import to_response

BodyCheck = Callable[[dict[str, Any]], None]


def new_trace_id() -> str:
    """A random (version 4) UUID. Not ``uuid.uuid4``: the uuid module costs ~6 ms of cold start."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _trace_id(headers: dict[str, str]) -> str:
    raw = headers.get("x-portkey-trace-id")
    # An invalid trace id is reported by read_options; here we only need one to echo.
    return raw if raw and len(raw) <= 256 and raw.isprintable() else new_trace_id()


async def proxy(
    request: GatewayRequest, gw: Gateway, endpoint: str, *, body_check: BodyCheck | None = None
) -> GatewayResponse:
    trace_id = _trace_id(request.headers)
    base = {"x-portkey-trace-id": trace_id, "x-portkey-cache-status": "DISABLED"}
    try:
        await gw.auth.authenticate(request.headers)
        body: dict[str, Any] = decode_object(request.body) if request.method == "POST" else {}
        if body_check is not None:
            body_check(body)
        options: RequestOptions = read_options(request.headers, gw.settings.trusted_custom_hosts)
        stream = body.get("stream") is True and endpoint in ("chat", "completions")
        settings = gw.settings
        spec = CallSpec(
            endpoint, body, request.body, stream, request.headers, options.api_key, settings.max_response_bytes
        )
        env = RouterEnv(
            rng=gw.rng,
            sleep=gw.sleep,
            clock=gw.clock,
            context={"metadata": options.metadata, "params": body, "url": {"pathname": request.path}},
            retry_base_ms=settings.retry_base_ms,
            retry_max_backoff_ms=settings.retry_max_backoff_ms,
            retry_after_cap_ms=settings.retry_after_cap_ms,
        )
        outcome = await route(options.root, lambda target: send(gw.transport, target, spec), env)
    except GatewayError as exc:
        return error_response(exc, base)
    return to_response(outcome, base, secrets=(outcome.leaf.api_key, options.api_key))
