"""The gateway's view of one HTTP request, independent of the shell (ASGI, Lambda, Azure)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class GatewayRequest:
    method: str
    path: str
    # Header names are lower-cased by the shell; repeated headers are joined with ", ".
    headers: dict[str, str]
    body: bytes = b""
    query: str = ""
