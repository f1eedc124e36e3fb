"""Anthropic's URLs, headers and error body.

Headers: ``x-api-key``, ``anthropic-version`` (default 2023-06-01, overridable per target) and
``anthropic-beta`` only when the client asks for a beta (``x-portkey-anthropic-beta`` or the
``anthropic_beta`` config field). The reference sends a retired beta flag on every request;
a beta changes the API's behaviour, so it is never turned on behind the client's back.
"""

from __future__ import annotations

from collections.abc import Mapping

from aigw.config.model import Target
from aigw.kinds import EndpointKind
from aigw.providers.anthropic import chat, chat_stream
from aigw.providers.base import Json, Provider, ProviderEndpoint, ProviderError, openai_error_fields

BASE_URL = "https://api.anthropic.com/v1"
DEFAULT_VERSION = "2023-06-01"

# Only chat exists for Anthropic here; the core answers 400 for the other endpoints.
ENDPOINTS = {
    EndpointKind.CHAT: ProviderEndpoint(
        "/messages",
        request=chat.to_anthropic,
        response=chat.from_anthropic,
        stream=chat_stream.make_transformer,
    ),
}


def base_url(target: Target) -> str:
    return target.custom_host or BASE_URL


def auth_headers(api_key: str, target: Target) -> dict[str, str]:
    return {"x-api-key": api_key}


def extra_headers(target: Target) -> dict[str, str]:
    headers = {"anthropic-version": str(target.options.get("anthropic_version") or DEFAULT_VERSION)}
    beta = target.options.get("anthropic_beta")
    if beta:
        headers["anthropic-beta"] = str(beta)
    return headers


def parse_error(body: Json) -> ProviderError | None:
    """Read ``{"type": "error", "error": {"type", "message"}}``; param and code are always null."""
    err = body.get("error")
    if isinstance(err, Mapping):
        message, etype = err.get("message"), err.get("type")
        return ProviderError(
            message=str(message) if message is not None else "",
            type=etype if isinstance(etype, str) else None,
        )
    return openai_error_fields(body)


PROVIDER = Provider(
    name="anthropic",
    base_url=base_url,
    auth_headers=auth_headers,
    extra_headers=extra_headers,
    endpoints=ENDPOINTS,
    parse_error=parse_error,
)
