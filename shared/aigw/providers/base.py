"""What a provider is: URLs and headers, and one ``ProviderEndpoint`` per endpoint kind.

A provider lives in its own folder (``api.py`` for URLs and headers, one module per
endpoint transform) and exports ``PROVIDER``; the registry names it in one line. An
endpoint whose provider speaks OpenAI's format leaves the transforms unset, and the
request and response bytes pass through untouched (the fast path).

Transforms raise ``MalformedResponse`` (or fail reading an unexpected shape) when a 2xx is
not what the provider documents; the call then counts as failed, so a fallback moves on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aigw.config.model import Target
from aigw.kinds import EndpointKind

Json = dict[str, Any]


class MalformedResponse(ValueError):
    """A provider's 2xx body is not the shape its API documents."""


class StreamTransformer(Protocol):
    """Turns the provider's stream into OpenAI ``chat.completion.chunk`` SSE bytes."""

    def feed(self, chunk: bytes) -> list[bytes]:
        """Take raw upstream bytes (any split); return zero or more complete SSE events."""
        ...

    def close(self) -> list[bytes]:
        """The upstream ended cleanly: return what is left, ending with ``data: [DONE]``."""
        ...


@dataclass(frozen=True)
class ProviderEndpoint:
    path: str
    method: str = "POST"
    # OpenAI-shaped request body -> provider body. None: the body is forwarded as it came.
    request: Callable[[Json, Target], Json] | None = None
    # Provider success body -> OpenAI-shaped body. None: forwarded as it came.
    response: Callable[[Json, Target], Json] | None = None
    # Factory of a stream transformer, given the target and the provider request body.
    # None: the provider already streams OpenAI SSE, forwarded chunk by chunk.
    stream: Callable[[Target, Json], StreamTransformer] | None = None


@dataclass(frozen=True)
class ProviderError:
    """A provider's error reduced to OpenAI's fields."""

    message: str
    type: str | None = None
    param: str | None = None
    code: str | None = None


@dataclass(frozen=True)
class Provider:
    name: str
    base_url: Callable[[Target], str]
    auth_headers: Callable[[str, Target], dict[str, str]]
    endpoints: Mapping[EndpointKind, ProviderEndpoint]
    parse_error: Callable[[Json], ProviderError | None]
    requires_api_key: bool = True
    # Extra headers from provider options (organisation, API version, beta flags, ...).
    extra_headers: Callable[[Target], dict[str, str]] = field(default=lambda target: {})
    # Builds the full URL; the default joins base URL and endpoint path.
    url: Callable[[Provider, Target, ProviderEndpoint, Json], str] | None = None

    def endpoint_url(self, target: Target, endpoint: ProviderEndpoint, body: Json) -> str:
        if self.url is not None:
            return self.url(self, target, endpoint, body)
        return self.base_url(target) + endpoint.path


def openai_error_fields(body: Json) -> ProviderError | None:
    """Read ``{"error": {"message", "type", "param", "code"}}``, OpenAI's (and many peers') shape."""
    err = body.get("error")
    if isinstance(err, Mapping):
        message = err.get("message")
        code = err.get("code")
        return ProviderError(
            message=str(message) if message is not None else "",
            type=err.get("type") if isinstance(err.get("type"), str) else None,
            param=err.get("param") if isinstance(err.get("param"), str) else None,
            code=str(code) if code is not None else None,
        )
    if isinstance(err, str):
        return ProviderError(message=err)
    return None
