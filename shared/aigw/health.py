"""Health endpoint: no provider, no upstream client, so its function imports almost nothing.

Where the provider transport exists (the local server, the streaming function), health also
reports its connection pool: a pool with every connection busy answers 503, so a load
balancer stops sending new calls to a process whose provider calls would only queue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aigw import __version__
from aigw.response import GatewayResponse, json_response

if TYPE_CHECKING:
    from aigw.context import RequestContext
    from aigw.gateway import Gateway


async def health(ctx: RequestContext, gw: Gateway) -> GatewayResponse:
    body: dict[str, Any] = {"status": "success", "message": "Server is healthy", "version": __version__}
    transport = gw.built_transport
    if transport is None:
        return json_response(200, body)
    stats = transport.pool_stats()
    body["upstream_pool"] = {
        "in_use": stats.in_use, "limit": stats.limit, "waiting": stats.waiting,
        "busiest_host_in_use": stats.busiest_host_in_use, "per_host_limit": stats.per_host_limit,
    }
    if stats.in_use >= stats.limit:
        body.update(status="failure", message="upstream connection pool is saturated")
        return json_response(503, body)
    return json_response(200, body)
