"""``send``: one call of one target to its provider, read and normalised into an ``Attempt``.

Non-streaming answers (and every error) are read whole, up to ``max_response_bytes``. A
successful stream is read up to its first chunk before routing commits to it. The whole call
is bounded by the target's ``request_timeout`` (a 408, as the reference gateway answers), else
by the gateway's default upstream timeout, and never runs past the request's deadline (both
504); a connection failure is a 502. All of these are statuses, so routing retries and falls
back on them like on a provider's own errors.
"""

from __future__ import annotations

import asyncio
import time

from aigw.calls import normalise
from aigw.calls.attempt import Attempt
from aigw.calls.provider_request import build_request, key_for, response_headers
from aigw.calls.spec import CallSpec
from aigw.calls.stream import ProviderStream, first_event_error, is_sse_start
from aigw.calls.watch import IDLE, Expired, Watch
from aigw.config.model import Target
from aigw.errors import (
    GatewayDeadline,
    InvalidProviderResponse,
    InvalidRequest,
    ProviderError,
    StreamStalled,
    UpstreamConnectionFailed,
    UpstreamError,
    UpstreamTimeout,
)
from aigw.providers.base import Provider, ProviderEndpoint
from aigw.providers.registry import get_provider
from aigw.redact import scrubber_for
from aigw.upstream.transport import Transport, TransportError, UpstreamResponse


class _TooLarge(Exception):
    pass


async def _read_capped(response: UpstreamResponse, limit: int, watch: Watch) -> bytes:
    """Read a whole body within ``watch``'s bounds, refusing one over ``limit`` before it is all
    in memory."""
    parts: list[bytes] = []
    size = 0
    while True:
        with watch:  # not watch.wait(): a coroutine per read costs on the hot path
            chunk = await response.next_chunk()
        if not chunk:
            return b"".join(parts)
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        parts.append(chunk)
        if response.ended():
            return b"".join(parts)


async def send(transport: Transport, target: Target, spec: CallSpec, deadline: float | None) -> Attempt:
    """Call ``target`` once. ``deadline`` (monotonic seconds) bounds the call and its stream."""
    assert target.provider is not None  # virtual keys are resolved by the chain before send
    provider = get_provider(target.provider)
    try:
        key = key_for(target, provider, spec)
        endpoint, provider_body, data, headers, url = build_request(provider, target, spec, key)
    except InvalidRequest as exc:
        # A target that cannot be called (no deployment, no key, endpoint not supported) is a
        # failed target: a fallback moves on to the next one instead of aborting the request.
        return Attempt.failed(target, exc, provider=provider)
    attempt = Attempt(target, 0, provider=provider, secret=key)
    # The target's request_timeout (a 408, as the reference answers), never beyond the operator's
    # UPSTREAM_TIMEOUT_MS (a 504: a client cannot hold a connection longer), nor the deadline.
    own_ms = target.request_timeout_ms
    own_binds = own_ms is not None and own_ms <= spec.timeout_ms
    budget_s = (own_ms if own_binds and own_ms is not None else spec.timeout_ms) / 1000
    left = None if deadline is None else deadline - time.monotonic()
    by_deadline = left is not None and left < budget_s
    idle_s = min(spec.idle_timeout_ms, own_ms or spec.idle_timeout_ms) / 1000
    response: UpstreamResponse | None = None
    loop = asyncio.get_running_loop()
    watch = Watch(loop.time() + (left if by_deadline and left is not None else budget_s))
    try:
        response = await watch.wait(transport.request(endpoint.method, url, headers, data))
        attempt.status = response.status
        attempt.headers = response_headers(response.headers)
        watch.idle(idle_s)  # the answer has begun: from here each wait is bounded too
        if spec.stream and 200 <= response.status < 300:
            first = await watch.wait(response.next_chunk())
            if not first:
                raise TransportError("stream ended before its first byte")
            if is_sse_start(first) and (stream_error := first_event_error(first)) is None:
                transformer = endpoint.stream(target, provider_body) if endpoint.stream else None
                attempt.stream = ProviderStream(response, first, provider.name, transformer, idle_s, deadline)
                response = None  # handed over to the stream
                return attempt
            if is_sse_start(first):
                response.close()
                response = None
                return _failed(attempt, InvalidProviderResponse(
                    f"{provider.name} stream began with an error: {stream_error}", provider=provider.name))
            raw = first + await _read_capped(response, spec.max_response_bytes - len(first), watch)
        else:
            raw = await _read_capped(response, spec.max_response_bytes, watch)
        response = None  # read whole: the connection went back to the pool
    except Expired as exc:
        return _failed(attempt, _timed_out(exc, provider.name, idle_s, by_deadline, own_ms if own_binds else None,
                                           spec.timeout_ms))
    except (ValueError, UnicodeError):
        # Backstop: the parser refuses such values, but a header the client forwards could still
        # be one http.client will not send. Not a bug of ours, not the provider's: a 400.
        return _failed(attempt, InvalidRequest("a header for the provider is not a valid HTTP header value"))
    except _TooLarge:
        return _failed(attempt, InvalidProviderResponse(
            f"{provider.name} answered with more than {spec.max_response_bytes} bytes", provider=provider.name))
    except TransportError as exc:
        # The transport names only the failure's kind, never the URL or headers.
        return _failed(attempt, UpstreamConnectionFailed(f"could not reach {provider.name}: {exc}",
                                                         provider=provider.name))
    finally:
        watch.close()
        if response is not None:
            response.close()  # half-read: the connection cannot be reused
    return _normalised(attempt, provider, endpoint, spec, raw)


def _timed_out(exc: Expired, provider: str, idle_s: float, by_deadline: bool, own_ms: int | None,
               default_ms: int) -> UpstreamError:
    """Which bound ran out: the idle one, the request's deadline, the target's request_timeout
    (408, as the reference answers) or the gateway's own UPSTREAM_TIMEOUT_MS (504)."""
    if exc.reason == IDLE:
        return StreamStalled(f"{provider} stopped sending its answer for {round(idle_s * 1000)} ms", provider=provider)
    if by_deadline:
        return GatewayDeadline(f"the gateway's time for this request ran out while waiting for {provider}",
                               provider=provider)
    if own_ms is not None:
        return UpstreamTimeout(f"Request exceeded the timeout sent in the request: {own_ms}ms", provider=provider)
    return GatewayDeadline(f"{provider} did not answer within {default_ms} ms", provider=provider)


def _failed(attempt: Attempt, error: InvalidRequest | UpstreamError) -> Attempt:
    attempt.status, attempt.error = error.status, error
    if not isinstance(error, ProviderError):
        attempt.headers = {}
    return attempt


def _normalised(attempt: Attempt, provider: Provider, endpoint: ProviderEndpoint, spec: CallSpec,
                raw: bytes) -> Attempt:
    status = attempt.status
    if 200 <= status < 300:
        try:
            attempt.body, attempt.usage = normalise.success(provider, endpoint, spec.kind, attempt.target, raw)
        except InvalidProviderResponse as exc:
            return _failed(attempt, exc)
        return attempt
    scrubber = scrubber_for((attempt.secret, spec.request_api_key))
    error = normalise.failure(provider, status if 400 <= status <= 599 else 502, raw, scrubber)
    return _failed(attempt, error)

