"""The gateway's response: a complete body or a stream of chunks, plus helpers to build them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import orjson

from aigw.errors import GatewayError

JSON_CT = "application/json"
SSE_CT = "text/event-stream"


@dataclass(slots=True)
class GatewayResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    # When set, the body is streamed chunk by chunk (Server-Sent Events) and ``body`` is unused.
    stream: AsyncIterator[bytes] | None = None


def json_response(status: int, payload: object, headers: dict[str, str] | None = None) -> GatewayResponse:
    out = {"content-type": JSON_CT}
    if headers:
        out.update(headers)
    return GatewayResponse(status, out, orjson.dumps(payload))


def error_response(exc: GatewayError, headers: dict[str, str] | None = None) -> GatewayResponse:
    return json_response(exc.status, exc.to_body(), headers)
