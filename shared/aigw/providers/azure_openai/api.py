"""Azure OpenAI's URLs and headers.

URL: ``https://{resource_name}.openai.azure.com/openai/deployments/{deployment_id}/{path}?api-version=...``;
``custom_host`` replaces ``https://{resource_name}.openai.azure.com/openai`` (API Management,
private endpoints), as the reference gateway does.
"""

from __future__ import annotations

from urllib.parse import quote

from aigw.config.model import Target
from aigw.errors import InvalidRequest
from aigw.kinds import EndpointKind
from aigw.providers.base import Json, Provider, ProviderEndpoint, openai_error_fields

DEFAULT_API_VERSION = "2024-10-21"

ENDPOINTS = {
    EndpointKind.CHAT: ProviderEndpoint("/chat/completions"),
    EndpointKind.COMPLETIONS: ProviderEndpoint("/completions"),
    EndpointKind.EMBEDDINGS: ProviderEndpoint("/embeddings"),
    EndpointKind.MODELS: ProviderEndpoint("/models", method="GET"),
}


def _option(target: Target, key: str) -> str | None:
    value = target.options.get(key)
    return str(value) if value else None


def base_url(target: Target) -> str:
    if target.custom_host:
        return target.custom_host
    resource = _option(target, "resource_name")
    if not resource:
        raise InvalidRequest(
            "azure-openai needs a resource name (x-portkey-azure-resource-name or resource_name)",
            param=target.param("resource_name"),
        )
    return f"https://{quote(resource, safe='')}.openai.azure.com/openai"


def url(provider: Provider, target: Target, endpoint: ProviderEndpoint, body: Json) -> str:
    version = _option(target, "api_version") or DEFAULT_API_VERSION
    query = f"?api-version={quote(version, safe='')}"
    if endpoint.path == "/models":
        return f"{base_url(target)}/models{query}"
    deployment = _option(target, "deployment_id")
    if not deployment:
        raise InvalidRequest(
            "azure-openai needs a deployment id (x-portkey-azure-deployment-id or deployment_id)",
            param=target.param("deployment_id"),
        )
    return f"{base_url(target)}/deployments/{quote(deployment, safe='')}{endpoint.path}{query}"


def auth_headers(api_key: str, target: Target) -> dict[str, str]:
    # Entra ID tokens travel as a bearer token; resource keys as `api-key`.
    if target.options.get("azure_auth_mode") == "entra":
        return {"authorization": f"Bearer {api_key}"}
    return {"api-key": api_key}


PROVIDER = Provider(
    name="azure-openai",
    base_url=base_url,
    auth_headers=auth_headers,
    endpoints=ENDPOINTS,
    parse_error=openai_error_fields,
    url=url,
)
