"""What every attempt of one client request shares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aigw.kinds import EndpointKind


class CallSpec:
    # A plain class, not a dataclass: ~0.6 ms less of every route function's cold start.
    __slots__ = ("kind", "body", "raw_body", "stream", "request_headers", "request_api_key", "max_response_bytes",
                 "timeout_ms", "idle_timeout_ms")

    def __init__(self, kind: EndpointKind, body: dict[str, Any], raw_body: bytes, stream: bool,
                 request_headers: Mapping[str, str], request_api_key: str | None, max_response_bytes: int,
                 timeout_ms: int, idle_timeout_ms: int) -> None:
        self.kind = kind
        self.body = body
        self.raw_body = raw_body
        self.stream = stream
        self.request_headers = request_headers
        # The provider key the client sent; a target's own api_key wins over it.
        self.request_api_key = request_api_key
        self.max_response_bytes = max_response_bytes
        # Bounds of every attempt unless the target's request_timeout is shorter: total time, and
        # the longest gap between two chunks of a stream or body.
        self.timeout_ms = timeout_ms
        self.idle_timeout_ms = idle_timeout_ms
