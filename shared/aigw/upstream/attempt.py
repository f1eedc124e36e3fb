"""One call to one provider target: build the provider request, send it, read the answer.

Non-streaming answers (and every error) are read whole. A successful stream is read up to
its first chunk before routing commits to it: a provider that fails before sending a byte
can still be retried or fallen back from; after that, the stream belongs to the client.
A timeout becomes status 408 and a connection failure 502, so routing treats them as
statuses (both are retryable and fall-back-able).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson

from aigw.config.model import Target
from aigw.errors import GatewayError, InvalidRequest, MissingProviderKey
from aigw.providers.base import Endpoint, Json, Provider
from aigw.providers.registry import get_provider
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


class UpstreamTimeout(GatewayError):
    status = 408
    type = "timeout_error"


class UpstreamConnectionFailed(GatewayError):
    status = 502
    type = "api_error"
    code = "upstream_connection_failed"


class UpstreamInvalidBody(GatewayError):
    status = 502
    type = "api_error"
    code = "upstream_invalid_body"


_UNCALLED = Endpoint(path="")


@dataclass
class UpstreamAttempt:
    target: Target
    provider: Provider
    endpoint: Endpoint
    provider_body: Json
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    # Set for a successful stream: the open response and the first chunk already read.
    response: UpstreamResponse | None = None
    first_chunk: bytes = b""
    # Set when no usable HTTP answer came (timeout, connection failure).
    error: GatewayError | None = None

    async def discard(self) -> None:
        if self.response is not None:
            self.response.close()
            self.response = None


@dataclass(frozen=True)
class CallSpec:
    """What every attempt of one client request shares."""

    endpoint_name: str
    body: Json
    raw_body: bytes
    stream: bool
    request_headers: Mapping[str, str]
    request_api_key: str | None
    max_response_bytes: int = 64 * 1024 * 1024


def _key_for(target: Target, provider: Provider, spec: CallSpec) -> str | None:
    key = target.api_key or spec.request_api_key
    if provider.requires_api_key and not key:
        raise MissingProviderKey(
            f"no API key for provider {provider.name!r}: send it in the Authorization header or set api_key in the config",
            param="api_key",
        )
    return key


def build_request(provider: Provider, target: Target, spec: CallSpec) -> tuple[Endpoint, Json, bytes | None, dict[str, str], str]:
    endpoint = provider.endpoints.get(spec.endpoint_name)
    if endpoint is None:
        raise InvalidRequest(f"provider {provider.name!r} does not support the {spec.endpoint_name} endpoint")
    key = _key_for(target, provider, spec)
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


def response_headers(raw: Mapping[str, str]) -> dict[str, str]:
    # Non-ASCII values are dropped: Lambda's shell (Mangum) decodes header values as UTF-8 and
    # would fail the whole invocation on a provider's latin-1 byte.
    return {k: v for k, v in raw.items() if k not in _DROP_RESPONSE_HEADERS and v.isascii()}


class _TooLarge(Exception):
    pass


async def _read_capped(response: UpstreamResponse, limit: int) -> bytes:
    """Read a whole body, refusing one over ``limit`` before it is all in memory."""
    parts: list[bytes] = []
    size = 0
    while chunk := await response.next_chunk():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        parts.append(chunk)
    return b"".join(parts)


async def send(transport: Transport, target: Target, spec: CallSpec) -> UpstreamAttempt:
    if target.provider is None:
        raise InvalidRequest("virtual keys are resolved by the control plane, which is not configured", param="virtual_key")
    provider = get_provider(target.provider)
    try:
        endpoint, provider_body, data, headers, url = build_request(provider, target, spec)
    except InvalidRequest as exc:
        # A target that cannot be called (no deployment, no key, endpoint not supported) is a
        # failed target: a fallback moves on to the next one instead of aborting the request.
        return UpstreamAttempt(target, provider, _UNCALLED, {}, status=exc.status, error=exc)
    timeout_s = target.request_timeout_ms / 1000 if target.request_timeout_ms else None
    attempt = UpstreamAttempt(target, provider, endpoint, provider_body, status=0)
    response: UpstreamResponse | None = None
    try:
        async with asyncio.timeout(timeout_s):
            response = await transport.request(endpoint.method, url, headers, data)
            attempt.status = response.status
            attempt.headers = response_headers(response.headers)
            if spec.stream and 200 <= response.status < 300:
                first = await response.next_chunk()
                if not first:
                    raise TransportError("stream ended before its first byte")
                attempt.response, attempt.first_chunk = response, first
            else:
                attempt.body = await _read_capped(response, spec.max_response_bytes)
            response = None  # read whole, or handed over to the attempt
    except TimeoutError:
        attempt.status, attempt.headers, attempt.body = 408, {}, b""
        attempt.error = UpstreamTimeout(
            f"Request exceeded the timeout sent in the request: {target.request_timeout_ms}ms"
        )
    except (ValueError, UnicodeError):
        # Backstop: the parser refuses such values, but a header the client forwards could still
        # be one http.client will not send. Not a bug of ours, not the provider's: a 400.
        attempt.status, attempt.headers, attempt.body = 400, {}, b""
        attempt.error = InvalidRequest("a header for the provider is not a valid HTTP header value")
    except _TooLarge:
        attempt.status, attempt.headers, attempt.body = 502, {}, b""
        attempt.error = UpstreamInvalidBody(f"{provider.name} answered with more than {spec.max_response_bytes} bytes")
    except TransportError as exc:
        attempt.status, attempt.headers, attempt.body = 502, {}, b""
        # The transport names only the failure's kind, never the URL or headers.
        attempt.error = UpstreamConnectionFailed(f"could not reach {provider.name}: {exc}")
    finally:
        if response is not None:
            response.close()  # half-read: the connection cannot be reused
    return attempt
