"""The respond stage: the outcome routing settled on becomes the client's response.

Success: the OpenAI-shaped body, or the stream of OpenAI SSE events as they arrive. Failure:
the error rendered in the route's ingress format, naming the provider, with its status. Every
byte and header that leaves is scrubbed of the keys the request used. The Portkey response
headers say which target answered and how many retries it took.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING

import orjson

from aigw.aclose import aclose
from aigw.calls.attempt import Attempt
from aigw.context import RequestContext
from aigw.errors import GatewayError, render_error
from aigw.redact import scrubber_for
from aigw.response import JSON_CT, SSE_CT, GatewayResponse, error_response

if TYPE_CHECKING:
    from aigw.routing.engine import Outcome


# The sticky decision of the last sticky node the request passed: HIT, NEW or REPICK.
STICKY_HEADER = "x-portkey-sticky-status"


def portkey_headers(ctx: RequestContext) -> dict[str, str]:
    """What every response of a provider-backed route carries, errors before routing included."""
    return {"x-portkey-trace-id": ctx.trace_id, "x-portkey-cache-status": ctx.cache_status}


def failed_before_routing(ctx: RequestContext, exc: GatewayError) -> GatewayResponse:
    ctx.error = exc
    return error_response(exc, ctx.error_format, portkey_headers(ctx))


def respond(ctx: RequestContext, outcome: Outcome[Attempt]) -> GatewayResponse:
    """Scrubbed of ``ctx.secrets`` (what the request carried: its provider key, the gateway key,
    the config's keys) and of the key the answering attempt used."""
    attempt = outcome.attempt
    secrets = ctx.secrets
    scrubber = scrubber_for(secrets if attempt.secret in secrets else (*secrets, attempt.secret))
    if attempt.error is not None:
        # A provider's message may echo a key: scrubbed here, before the context (and the log
        # record built from it) keeps the error, not only in the bytes sent.
        attempt.error.message = scrubber.text(attempt.error.message)
    ctx.last_used_path, ctx.retries, ctx.error = outcome.leaf.path, outcome.retries, attempt.error
    headers = scrubber.headers(attempt.headers) if attempt.headers else {}
    headers.update(portkey_headers(ctx))
    provider = attempt.provider_name
    if provider is not None:
        headers["x-portkey-provider"] = provider
    headers["x-portkey-last-used-option-index"] = outcome.leaf.path
    headers["x-portkey-retry-attempt-count"] = str(outcome.retries)
    if ctx.sticky:
        headers[STICKY_HEADER] = ctx.sticky[-1][1]
    if attempt.stream is not None:
        headers["content-type"] = SSE_CT
        headers["cache-control"] = "no-cache"
        events = _counting_usage(ctx, attempt.stream.events(on_error=ctx.stream_failed))
        if ctx.observed:
            events = _keeping_answer(ctx, events)
        return GatewayResponse(attempt.status, headers, stream=scrubber.stream(events) if scrubber.active else events)
    headers["content-type"] = JSON_CT
    if attempt.error is None:
        ctx.usage = attempt.usage
        body = scrubber.bytes(attempt.body)
        if ctx.observed:
            ctx.response_body = body
        return GatewayResponse(attempt.status, headers, body)
    return GatewayResponse(attempt.status, headers, scrubber.bytes(render_error(attempt.error, ctx.error_format)))


async def _keeping_answer(ctx: RequestContext, events: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    """Pass events on; the answer they amount to is kept for whoever reads the request after."""
    from aigw.calls.assembly import StreamAssembler

    assembler = StreamAssembler()
    try:
        async for event in events:
            assembler.feed(event)
            yield event
    finally:
        await aclose(events)
        answer = assembler.answer()
        if answer is not None:
            ctx.response_body = orjson.dumps(answer)


async def _counting_usage(ctx: RequestContext, events: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    """Pass events on; the (last) chunk carrying ``usage`` sets the request's token usage."""
    try:
        async for event in events:
            if b'"usage":{' in event or b'"usage": {' in event:
                _take_usage(ctx, event)
            yield event
    finally:
        await aclose(events)


def _take_usage(ctx: RequestContext, event: bytes) -> None:
    for line in event.splitlines():
        if line.startswith(b"data:"):
            try:
                chunk = orjson.loads(line[5:])
            except orjson.JSONDecodeError:
                continue
            usage = chunk.get("usage") if isinstance(chunk, dict) else None
            if isinstance(usage, dict):
                ctx.usage = usage
