"""What every attempt of one client request shares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aigw.kinds import EndpointKind


@dataclass(frozen=True, slots=True)
class CallSpec:
    kind: EndpointKind
    body: dict[str, Any]
    raw_body: bytes
    stream: bool
    request_headers: Mapping[str, str]
    # The provider key the client sent; a target's own api_key wins over it.
    request_api_key: str | None
    max_response_bytes: int
    # Bounds of every attempt unless the target's request_timeout is shorter: total time, and
    # the longest gap between two chunks of a stream or body.
    timeout_ms: int
    idle_timeout_ms: int
