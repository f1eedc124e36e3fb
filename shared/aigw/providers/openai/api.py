"""OpenAI's URLs and headers."""

from __future__ import annotations

from aigw.config.model import Target
from aigw.kinds import EndpointKind
from aigw.providers.base import Provider, ProviderEndpoint, openai_error_fields

BASE_URL = "https://api.openai.com/v1"

# The gateway's endpoints are OpenAI's own: no transforms, bytes pass through.
ENDPOINTS = {
    EndpointKind.CHAT: ProviderEndpoint("/chat/completions"),
    EndpointKind.COMPLETIONS: ProviderEndpoint("/completions"),
    EndpointKind.EMBEDDINGS: ProviderEndpoint("/embeddings"),
    EndpointKind.MODELS: ProviderEndpoint("/models", method="GET"),
}


def base_url(target: Target) -> str:
    return target.custom_host or BASE_URL


def auth_headers(api_key: str, target: Target) -> dict[str, str]:
    return {"authorization": f"Bearer {api_key}"}


def extra_headers(target: Target) -> dict[str, str]:
    headers: dict[str, str] = {}
    if org := target.options.get("openai_organization"):
        headers["openai-organization"] = str(org)
    if project := target.options.get("openai_project"):
        headers["openai-project"] = str(project)
    return headers


PROVIDER = Provider(
    name="openai",
    base_url=base_url,
    auth_headers=auth_headers,
    extra_headers=extra_headers,
    endpoints=ENDPOINTS,
    parse_error=openai_error_fields,
)
