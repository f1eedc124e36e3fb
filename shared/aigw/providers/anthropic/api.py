"""Anthropic's URLs, headers and error body.

Headers as the reference gateway sends them: ``x-api-key``, ``anthropic-version`` (default
2023-06-01) and ``anthropic-beta`` (default ``messages-2023-12-15``), the last two
overridable per target (``x-portkey-anthropic-version`` / ``-beta`` or config fields).
"""

from __future__ import annotations

from collections.abc import Mapping

from aigw.config.model import Target
from aigw.providers.anthropic import chat, chat_stream
from aigw.providers.base import Endpoint, Json, Provider, ProviderError, openai_error_fields

BASE_URL = "https://api.anthropic.com/v1"
DEFAULT_VERSION = "2023-06-01"
DEFAULT_BETA = "messages-2023-12-15"

# Only chat exists for Anthropic here; the core answers 400 for the other endpoints.
ENDPOINTS = {
    "chat": Endpoint(
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
    return {
        "anthropic-version": str(target.options.get("anthropic_version") or DEFAULT_VERSION),
        "anthropic-beta": str(target.options.get("anthropic_beta") or DEFAULT_BETA),
    }


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
