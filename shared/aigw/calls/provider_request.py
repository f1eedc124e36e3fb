"""What one target's provider call is made of: its key, endpoint, body, headers and URL, and
which of the provider's response headers go back to the client."""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from aigw.calls.spec import CallSpec
from aigw.config.model import Target
from aigw.errors import MissingProviderKey, UnsupportedEndpoint
from aigw.providers.base import Json, Provider, ProviderEndpoint
from aigw.response import MAX_PROVIDER_HEADER_BYTES

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

def key_for(target: Target, provider: Provider, spec: CallSpec) -> str | None:
    key = target.api_key or spec.request_api_key
    if provider.requires_api_key and not key:
        raise MissingProviderKey(
            f"no API key for provider {provider.name!r}: send it in the Authorization header or set api_key in the config",
            param=target.param("api_key"),
        )
    return key


def build_request(provider: Provider, target: Target, spec: CallSpec,
                  key: str | None) -> tuple[ProviderEndpoint, Json, bytes | None, dict[str, str], str]:
    """The endpoint, the provider's body (as JSON and as bytes, the client's own bytes when
    untouched), the headers and the URL of ``target``'s call; InvalidRequest if it cannot be made."""
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


def response_headers(raw: Mapping[str, str]) -> dict[str, str]:
    """The provider's headers worth passing on, within ``MAX_PROVIDER_HEADER_BYTES`` (the rest are
    dropped). Non-ASCII values are dropped too: Lambda's shell (Mangum) decodes header values as
    UTF-8 and would fail the whole invocation on a provider's latin-1 byte."""
    out: dict[str, str] = {}
    size = 0
    for k, v in raw.items():
        if k in _DROP_RESPONSE_HEADERS or not v.isascii():
            continue
        size += len(k) + len(v)
        if size > MAX_PROVIDER_HEADER_BYTES:
            break
        out[k] = v
    return out
