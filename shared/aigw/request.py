"""The gateway's view of one HTTP request, independent of the shell (ASGI, Lambda, Azure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(slots=True)
class GatewayRequest:
    method: str
    path: str
    # Header names are lower-cased by the shell; repeated headers are joined with ", ".
    headers: dict[str, str]
    body: bytes = b""
    query: str = ""
    # Values of the route's path parameters (``/v1/prompts/{id}/completions`` -> {"id": ...}).
    path_params: Mapping[str, str] = field(default_factory=dict)
