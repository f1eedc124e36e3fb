"""A provider's answer, normalised inside the attempt: OpenAI-shaped success or a gateway error.

A 2xx is transformed (for providers with their own format) and checked against the shape the
endpoint promises before routing decides, so a malformed 2xx is a failed attempt that a
fallback moves on from, never a 200 carrying an error. A non-2xx becomes a ``ProviderError``
with the provider's status and its message, type, param and code where it gives them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from aigw.config.model import Target
from aigw.errors import InvalidProviderResponse, ProviderError
from aigw.kinds import EndpointKind
from aigw.providers.base import MalformedResponse, Provider, ProviderEndpoint
from aigw.redact import Scrubber

# The list every OpenAI-shaped success body of a kind carries.
_SHAPE = {
    EndpointKind.CHAT: "choices",
    EndpointKind.COMPLETIONS: "choices",
    EndpointKind.EMBEDDINGS: "data",
    EndpointKind.MODELS: "data",
}
_MAX_ERROR_TEXT = 512


def _check_shape(kind: EndpointKind, body: Any, provider: str) -> Mapping[str, Any]:
    key = _SHAPE[kind]
    items = body.get(key) if isinstance(body, dict) else None
    if isinstance(items, list):
        for item in items:
            if not isinstance(item, dict):
                break
        else:
            assert isinstance(body, dict)
            return body
    raise InvalidProviderResponse(f"{provider} returned a {kind.label} answer without a list of objects in '{key}'",
                                  provider=provider)


def success(provider: Provider, endpoint: ProviderEndpoint, kind: EndpointKind, target: Target,
            raw: bytes) -> tuple[bytes, Mapping[str, Any] | None]:
    """The OpenAI-shaped body to send, and its token usage; InvalidProviderResponse if unreadable."""
    name = provider.name
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidProviderResponse(f"{name} returned a body that is not JSON", provider=name) from None
    if not isinstance(parsed, dict):
        raise InvalidProviderResponse(f"{name} returned a body that is not a JSON object", provider=name)
    if endpoint.response is None:
        body = _check_shape(kind, parsed, name)
        out = raw  # passed through byte for byte
    else:
        try:
            body = _check_shape(kind, endpoint.response(parsed, target), name)
        except MalformedResponse as exc:
            raise InvalidProviderResponse(str(exc), provider=name) from None
        except (TypeError, ValueError, KeyError, AttributeError, IndexError):
            raise InvalidProviderResponse(f"{name} returned a body of an unexpected shape", provider=name) from None
        try:
            out = orjson.dumps(body)
        except TypeError:
            raise InvalidProviderResponse(f"{name} returned values that are not JSON", provider=name) from None
    usage = body.get("usage")
    return out, usage if isinstance(usage, dict) else None


def failure(provider: Provider, status: int, raw: bytes, scrubber: Scrubber) -> ProviderError:
    """The provider's error answer in OpenAI's fields, prefixed with its name, with its status."""
    name = provider.name
    try:
        parsed = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        parsed = None
    fields = provider.parse_error(parsed) if isinstance(parsed, dict) else None
    if fields is not None:
        return ProviderError(f"{name} error: {fields.message}", provider=name, status=status, type=fields.type,
                             param=fields.param, code=fields.code)
    # Scrubbed before it is cut: a key straddling the cut would no longer match afterwards.
    text = scrubber.bytes(raw)[:_MAX_ERROR_TEXT].decode("utf-8", "replace").strip()
    return ProviderError(f"{name} error: {text or f'upstream returned status {status}'}", provider=name,
                         status=status)
