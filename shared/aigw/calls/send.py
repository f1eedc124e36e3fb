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
from collections.abc import Mapping

import orjson

from aigw.calls import normalise
from aigw.calls.attempt import Attempt
from aigw.calls.spec import CallSpec
from aigw.calls.stream import ProviderStream
from aigw.calls.watch import IDLE, Expired, Watch
from aigw.config.model import Target
from aigw.errors import (
    GatewayDeadline,
    InvalidProviderResponse,
    InvalidRequest,
    MissingProviderKey,
    ProviderError,
    StreamStalled,
    UnsupportedEndpoint,
    UpstreamConnectionFailed,
    UpstreamError,
    UpstreamTimeout,
)
from aigw.providers.base import Json, Provider, ProviderEndpoint
from aigw.providers.registry import get_provider
from aigw.redact import scrubber_for
from aigw.upstream.transport import Transport, TransportError, UpstreamResponse

# Response headers of the provider that are not passed on to the client.
_DROP_RESPONSE_HEADERS = frozenset(
    {"content-length", "content-encoding", "transfer-encoding", "connection", "keep-alive", "set-cookie",
     "date", "server", "alt-svc", "strict-transport-security", "vary"}
)
# Request headers a client may not forward: they describe this hop's framing, not the request.
_UNFORWARDABLE = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer",
     "proxy-authorization", "proxy-connection", "expect"}
)
# The sniffed start of an SSE stream: anything else (a JSON error with status 200) is no stream.
_SSE_STARTS = (b"data:", b"event:", b"id:", b"retry:", b":")


class _TooLarge(Exception):
    pass


def _key_for(target: Target, provider: Provider, spec: CallSpec) -> str | None:
    key = target.api_key or spec.request_api_key
    if provider.requires_api_key and not key:
        raise MissingProviderKey(
            f"no API key for provider {provider.name!r}: send it in the Authorization header or set api_key in the config",
            param=target.param("api_key"),
        )
    return key


def build_request(provider: Provider, target: Target, spec: CallSpec,
                  key: str | None) -> tuple[ProviderEndpoint, Json, bytes | None, dict[str, str], str]:
    endpoint = provider.endpoints.get(spec.kind)
    if endpoint is None:
        raise UnsupportedEndpoint(f"provider {provider.name!r} does not support the {spec.kind.label} endpoint")
    body = {**spec.body, **target.override_params} if target.override_params else spec.body
    provider_body = endpoint.request(body, target) if endpoint.request is not None else body
    if endpoint.method == "GET":
        data = None
    elif provider_body is spec.body:
        data = spec.raw_body  # untouched: forward the client's bytes as they came
    else:
        data = orjson.dumps(provider_body)
    headers = {
        h: spec.request_headers[h]
        for h in target.forward_headers
        if h in spec.request_headers and h not in _UNFORWARDABLE
    }
    headers.update(provider.extra_headers(target))
    if data is not None:
        headers["content-type"] = "application/json"
    if key:
        headers.update(provider.auth_headers(key, target))
    return endpoint, provider_body, data, headers, provider.endpoint_url(target, endpoint, provider_body)


# Provider response headers passed on are bounded in total: on Lambda the whole answer must fit
# in 6 MB, and the shell relies on headers staying well under 64 KB (JSON escaping included).
MAX_RESPONSE_HEADER_BYTES = 32 * 1024


def response_headers(raw: Mapping[str, str]) -> dict[str, str]:
    """The provider's headers worth passing on, within ``MAX_RESPONSE_HEADER_BYTES`` (the rest are
    dropped). Non-ASCII values are dropped too: Lambda's shell (Mangum) decodes header values as
    UTF-8 and would fail the whole invocation on a provider's latin-1 byte."""
    out: dict[str, str] = {}
    size = 0
    for k, v in raw.items():
        if k in _DROP_RESPONSE_HEADERS or not v.isascii():
            continue
        size += len(k) + len(v)
        if size > MAX_RESPONSE_HEADER_BYTES:
            break
        out[k] = v
    return out


async def _read_capped(response: UpstreamResponse, limit: int, watch: Watch) -> bytes:
    """Read a whole body within ``watch``'s bounds, refusing one over ``limit`` before it is all
    in memory."""
    parts: list[bytes] = []
    size = 0
    while True:
        watch.begin()  # inline, not watch.wait(): a coroutine per read costs on the hot path
        try:
            chunk = await response.next_chunk()
        except asyncio.CancelledError:
            expired = watch.expired()
            if expired is not None:
                raise expired from None
            raise
        finally:
            watch.end()
        if not chunk:
            return b"".join(parts)
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        parts.append(chunk)


def _first_event_error(chunk: bytes) -> str | None:
    """What a stream's first event says when it is an error (``event: error`` or a JSON ``error``
    object): a provider that fails before its first token, with status 200. Such a stream is a
    failed attempt, so retries and fallbacks move on. None for anything else."""
    head, sep, _ = chunk.partition(b"\n\n")
    if not sep:
        head = chunk
    lines = head.splitlines()
    named_error = any(line.strip() == b"event: error" or line.strip() == b"event:error" for line in lines)
    for line in lines:
        if line.startswith(b"data:"):
            try:
                data = orjson.loads(line[5:])
            except orjson.JSONDecodeError:
                return "an unreadable error event" if named_error else None
            if isinstance(data, dict) and (named_error or "error" in data):
                error = data.get("error")
                message = error.get("message") if isinstance(error, dict) else error
                return str(message)[:200] if message else "an error event"
            return None
    return None


def _is_sse_start(chunk: bytes) -> bool:
    return chunk.lstrip(b"\xef\xbb\xbf\r\n \t").startswith(_SSE_STARTS)


async def send(transport: Transport, target: Target, spec: CallSpec, deadline: float | None) -> Attempt:
    """Call ``target`` once. ``deadline`` (monotonic seconds) bounds the call and its stream."""
    assert target.provider is not None  # virtual keys are resolved by the chain before send
    provider = get_provider(target.provider)
    try:
        key = _key_for(target, provider, spec)
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
            if _is_sse_start(first) and (stream_error := _first_event_error(first)) is None:
                transformer = endpoint.stream(target, provider_body) if endpoint.stream else None
                attempt.stream = ProviderStream(response, first, provider.name, transformer, idle_s, deadline)
                response = None  # handed over to the stream
                return attempt
            if _is_sse_start(first):
                response.close()
                response = None
                return _failed(attempt, InvalidProviderResponse(
                    f"{provider.name} stream began with an error: {stream_error}", provider=provider.name))
            raw = first + await _read_capped(response, spec.max_response_bytes - len(first), watch)
        else:
            raw = await _read_capped(response, spec.max_response_bytes, watch)
        response = None  # read whole: the connection went back to the pool
    except Expired as exc:
        error: UpstreamError
        if exc.reason == IDLE:
            error = StreamStalled(f"{provider.name} stopped sending its answer for {round(idle_s * 1000)} ms",
                                  provider=provider.name)
        elif by_deadline:
            error = GatewayDeadline(f"the gateway's time for this request ran out while waiting for {provider.name}",
                                    provider=provider.name)
        elif own_binds:
            error = UpstreamTimeout(f"Request exceeded the timeout sent in the request: {own_ms}ms",
                                    provider=provider.name)
        else:
            error = GatewayDeadline(f"{provider.name} did not answer within {spec.timeout_ms} ms",
                                    provider=provider.name)
        return _failed(attempt, error)
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

