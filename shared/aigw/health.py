"""Health endpoint: no provider, no upstream client, so its function imports almost nothing."""

from __future__ import annotations

from aigw import __version__
from aigw.request import GatewayRequest
from aigw.response import GatewayResponse, json_response


async def health(request: GatewayRequest, gw: object) -> GatewayResponse:
    return json_response(200, {"status": "success", "message": "Server is healthy", "version": __version__})
