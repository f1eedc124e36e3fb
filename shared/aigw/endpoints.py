"""The gateway's provider-backed endpoints, one small function each, shared by every shell.

An endpoint takes the request's ``RequestContext`` and the ``Gateway`` and returns a
``GatewayResponse``; the Lambda, Azure and local shells only translate events.
"""

from __future__ import annotations

from aigw.body import check_chat, check_completions, check_embeddings
from aigw.context import RequestContext
from aigw.gateway import Gateway
from aigw.kinds import EndpointKind
from aigw.proxy import proxy
from aigw.response import GatewayResponse


async def chat_completions(ctx: RequestContext, gw: Gateway) -> GatewayResponse:
    return await proxy(ctx, gw, EndpointKind.CHAT, check_chat)


async def completions(ctx: RequestContext, gw: Gateway) -> GatewayResponse:
    return await proxy(ctx, gw, EndpointKind.COMPLETIONS, check_completions)


async def embeddings(ctx: RequestContext, gw: Gateway) -> GatewayResponse:
    return await proxy(ctx, gw, EndpointKind.EMBEDDINGS, check_embeddings)


async def models(ctx: RequestContext, gw: Gateway) -> GatewayResponse:
    return await proxy(ctx, gw, EndpointKind.MODELS)
