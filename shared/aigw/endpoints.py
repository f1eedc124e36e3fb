"""The gateway's endpoints, one small function each, shared by every shell.

An endpoint takes a ``GatewayRequest`` and the ``Gateway`` and returns a
``GatewayResponse``; the Lambda, Azure and local shells only translate events.
"""

from __future__ import annotations

from aigw.body import check_chat, check_completions, check_embeddings
from aigw.gateway import Gateway
from aigw.proxy import proxy
from aigw.request import GatewayRequest
from aigw.response import GatewayResponse


async def chat_completions(request: GatewayRequest, gw: Gateway) -> GatewayResponse:
    return await proxy(request, gw, "chat", body_check=check_chat)


async def completions(request: GatewayRequest, gw: Gateway) -> GatewayResponse:
    return await proxy(request, gw, "completions", body_check=check_completions)


async def embeddings(request: GatewayRequest, gw: Gateway) -> GatewayResponse:
    return await proxy(request, gw, "embeddings", body_check=check_embeddings)


async def models(request: GatewayRequest, gw: Gateway) -> GatewayResponse:
    return await proxy(request, gw, "models")
