"""The forwarding path shared by every provider-backed endpoint, as four named stages.

    resolve  who is calling (auth), which config (inline, or a saved config's id)
    parse    the body (once), the routing tree and request options
    route    the pure router over the per-target call chain
    respond  the outcome as a body or a stream, in the route's error format, scrubbed

A new capability adds a stage step or a wrapper in ``_chain``; it does not grow this file.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aigw.auth import Principal
from aigw.body import decode_object
from aigw.calls.attempt import Attempt
from aigw.calls.chain import Call, caching, compose, recorded, resolving_virtual_keys, sending, within_deadline
from aigw.calls.spec import CallSpec
from aigw.config.model import Target
from aigw.context import RequestContext
from aigw.errors import GatewayError
from aigw.gateway import Gateway
from aigw.kinds import EndpointKind
from aigw.portkey_headers import RequestOptions, config_reference, read_options
from aigw.respond import failed_before_routing, respond
from aigw.response import GatewayResponse
from aigw.routing.engine import Outcome, RouterEnv, route
from aigw.state.store import StoreBudget, request_budget

BodyCheck = Callable[[dict[str, Any]], None]


class Resolved:
    __slots__ = ("principal", "saved_config")

    def __init__(self, principal: Principal, saved_config: Mapping[str, Any] | None) -> None:
        self.principal, self.saved_config = principal, saved_config


async def proxy(ctx: RequestContext, gw: Gateway, kind: EndpointKind, body_check: BodyCheck | None = None,
                ) -> GatewayResponse:
    try:
        resolved = await resolve(ctx, gw)
        options, spec = parse(ctx, gw, resolved, kind, body_check)
        outcome = await route_request(ctx, gw, options, spec)
    except GatewayError as exc:
        return failed_before_routing(ctx, exc)
    return respond(ctx, outcome)


async def resolve(ctx: RequestContext, gw: Gateway) -> Resolved:
    """Auth, then the saved config an id names (both may call out, later to the control plane)."""
    headers = ctx.request.headers
    principal = await gw.authenticator.authenticate(headers)
    ctx.principal = principal
    config_id = config_reference(headers)
    saved = await gw.configs.saved_config(config_id, principal) if config_id is not None else None
    return Resolved(principal, saved)


def parse(ctx: RequestContext, gw: Gateway, resolved: Resolved, kind: EndpointKind,
          body_check: BodyCheck | None) -> tuple[RequestOptions, CallSpec]:
    request, settings = ctx.request, gw.settings
    body: dict[str, Any] = decode_object(request.body) if request.method == "POST" else {}
    if body_check is not None:
        body_check(body)
    options = read_options(request.headers, settings.trusted_custom_hosts, resolved.saved_config)
    ctx.config, ctx.metadata, ctx.secrets = options.root, options.metadata, options.secrets
    spec = ctx.spec = CallSpec(
        kind=kind,
        body=body,
        raw_body=request.body,
        stream=kind.streams and body.get("stream") is True,
        request_headers=request.headers,
        request_api_key=options.api_key,
        max_response_bytes=settings.max_response_bytes,
        timeout_ms=settings.upstream_timeout_ms,
        idle_timeout_ms=settings.upstream_idle_timeout_ms,
    )
    return options, spec


async def route_request(ctx: RequestContext, gw: Gateway, options: RequestOptions, spec: CallSpec,
                        ) -> Outcome[Attempt]:
    settings = gw.settings
    env = RouterEnv(
        rng=gw.rng,
        sleep=gw.sleep,
        clock=gw.clock,
        context={"metadata": options.metadata, "params": spec.body, "url": {"pathname": ctx.request.path}},
        retry_base_ms=settings.retry_base_ms,
        retry_max_backoff_ms=settings.retry_max_backoff_ms,
        retry_after_cap_ms=settings.retry_after_cap_ms,
        remaining_s=ctx.remaining_s,
    )
    if settings.cache_store is not None:
        request_budget.set(StoreBudget(settings.redis_timeout_ms / 1000))
    if options.root.sticky_below:
        env.sticky = picker = gw.sticky.for_request(
            {"metadata": options.metadata, "params": spec.body, "headers": ctx.request.headers})
        ctx.sticky = picker.decisions
    if options.root.breaker_below:
        env.breaker = gw.breakers.for_request(ctx.skipped)
    chain = _chain(gw)

    def call(target: Target) -> Awaitable[Attempt]:
        return chain(target, ctx)

    return await route(options.root, call, env)


def _chain(gw: Gateway) -> Call:
    """The call chain of ``gw``, composed once: a capability adds its wrapper to this list."""
    chain: Call | None = gw.memo.get("call_chain")
    if chain is None:
        chain = gw.memo["call_chain"] = compose(sending(lambda: gw.transport), [
            recorded,
            within_deadline,
            resolving_virtual_keys(lambda: gw.virtual_keys),
            caching(lambda: gw.response_cache),
        ])
    return chain
