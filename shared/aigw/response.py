"""The gateway's response: a complete body or a stream of chunks, plus helpers to build them."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

import orjson

from aigw.errors import ErrorFormat, GatewayError, render_error

JSON_CT = "application/json"
SSE_CT = "text/event-stream"
# A provider's response headers passed on are bounded in total (calls.send): on Lambda the whole
# answer must fit in 6 MB, and the shell counts on headers staying within twice this, escaped.
MAX_PROVIDER_HEADER_BYTES = 32 * 1024


@dataclass(slots=True)
class GatewayResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    # When set, the body is streamed chunk by chunk (Server-Sent Events) and ``body`` is unused.
    stream: AsyncGenerator[bytes, None] | None = None


def json_response(status: int, payload: object, headers: dict[str, str] | None = None) -> GatewayResponse:
    out = {"content-type": JSON_CT}
    if headers:
        out.update(headers)
    return GatewayResponse(status, out, orjson.dumps(payload))


def error_response(exc: GatewayError, fmt: ErrorFormat = ErrorFormat.OPENAI,
                   headers: dict[str, str] | None = None) -> GatewayResponse:
    out = {"content-type": JSON_CT}
    if headers:
        out.update(headers)
    return GatewayResponse(exc.status, out, render_error(exc, fmt))
