"""Reading the ``x-portkey-*`` request headers into the routing tree and request options.

With ``x-portkey-config`` the config decides everything about routing; without it, the
provider headers describe a single target, validated by the same parser.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import orjson

from aigw.config.model import Target
from aigw.config.parse import MAX_API_KEY_LENGTH, is_inline_config, parse_config, parse_config_text
from aigw.errors import InvalidHeader, InvalidRequest

PREFIX = "x-portkey-"
MAX_METADATA_KEYS = 64
MAX_METADATA_VALUE = 4096
_PLACEHOLDER_KEYS = frozenset({"", "undefined", "null", "none"})

# Header -> config field, for requests routed by headers alone.
_TARGET_HEADERS = {
    "x-portkey-provider": "provider",
    "x-portkey-virtual-key": "virtual_key",
    "x-portkey-custom-host": "custom_host",
    "x-portkey-azure-resource-name": "resource_name",
    "x-portkey-azure-deployment-id": "deployment_id",
    "x-portkey-azure-api-version": "api_version",
    "x-portkey-azure-auth-mode": "azure_auth_mode",
    "x-portkey-openai-organization": "openai_organization",
    "x-portkey-openai-project": "openai_project",
    "x-portkey-anthropic-version": "anthropic_version",
    "x-portkey-anthropic-beta": "anthropic_beta",
}


# Every header a request routed by headers alone may use (the key of the parse cache).
_ROUTING_HEADERS = (*_TARGET_HEADERS, "x-portkey-forward-headers", "x-portkey-request-timeout")

_HEADER_OF_FIELD = {
    **{field: header for header, field in _TARGET_HEADERS.items()},
    "forward_headers": "x-portkey-forward-headers",
    "request_timeout": "x-portkey-request-timeout",
}


class RequestOptions:
    __slots__ = ("root", "metadata", "api_key", "secrets")

    def __init__(self, root: Target, metadata: Mapping[str, Any], api_key: str | None,
                 secrets: tuple[str, ...]) -> None:
        self.root = root
        self.metadata = metadata
        # The provider key the client sent (Authorization bearer, x-api-key or api-key).
        self.api_key = api_key
        # Every key the request carries (its provider key, the gateway key, the config's keys):
        # any answer is scrubbed of all of them, whichever target gave it.
        self.secrets = secrets


def secret_value(value: str, param: str) -> str:
    """A key from a header, checked as every secret is: scrubbed from all that leaves, so bounded
    in length (and free of line breaks and NUL, which no HTTP client sends)."""
    if len(value) > MAX_API_KEY_LENGTH:
        raise InvalidHeader(f"{param} is longer than {MAX_API_KEY_LENGTH} characters", param=param)
    if "\r" in value or "\n" in value or "\0" in value:
        raise InvalidHeader(f"{param} holds a line break or NUL", param=param)
    return value


def _usable(key: str, param: str) -> str | None:
    key = key.strip()
    if key.lower() in _PLACEHOLDER_KEYS:
        return None
    return secret_value(key, param)


def gateway_key(headers: Mapping[str, str]) -> str | None:
    """The gateway key (``x-portkey-api-key``), checked as a secret whatever the auth mode."""
    raw = headers.get("x-portkey-api-key")
    return secret_value(raw.strip(), "x-portkey-api-key") if raw else None


def bearer_key(headers: Mapping[str, str]) -> str | None:
    """The provider key: a bearer token, else ``x-api-key``, else ``api-key``. Another scheme
    (``Basic ...``) is not a key and is never forwarded as one."""
    scheme, _, rest = headers.get("authorization", "").strip().partition(" ")
    key = _usable(rest, "authorization") if scheme.lower() == "bearer" else None
    for alt in ("x-api-key", "api-key"):
        if not key:
            key = _usable(headers.get(alt, ""), alt)
    return key


def _metadata(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidHeader(f"x-portkey-metadata is not valid JSON: {exc}", param="x-portkey-metadata") from None
    if not isinstance(value, dict):
        raise InvalidHeader("x-portkey-metadata must be a JSON object", param="x-portkey-metadata")
    if len(value) > MAX_METADATA_KEYS:
        raise InvalidHeader(f"x-portkey-metadata has more than {MAX_METADATA_KEYS} keys", param="x-portkey-metadata")
    for key, item in value.items():
        if isinstance(item, (dict, list)) or (isinstance(item, str) and len(item) > MAX_METADATA_VALUE):
            raise InvalidHeader(
                f"metadata values must be strings of at most {MAX_METADATA_VALUE} characters",
                param=f"x-portkey-metadata.{key}",
            )
    return value


def _timeout_ms(raw: str | None) -> int | None:
    if raw is None or not raw.strip():
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InvalidHeader("x-portkey-request-timeout must be an integer (ms)", param="x-portkey-request-timeout") from None
    if value <= 0:
        raise InvalidHeader("x-portkey-request-timeout must be a positive integer (ms)",
                            param="x-portkey-request-timeout")
    return value


@lru_cache(maxsize=256)
def _target_from_headers(items: tuple[tuple[str, str], ...], trusted: frozenset[str]) -> Target:
    fields: dict[str, Any] = {}
    for header, value in items:
        if header == "x-portkey-forward-headers":
            fields["forward_headers"] = [h.strip() for h in value.split(",") if h.strip()]
        elif header == "x-portkey-request-timeout":
            fields["request_timeout"] = _timeout_ms(value)
        else:
            fields[_TARGET_HEADERS[header]] = value
    if "provider" not in fields and "virtual_key" not in fields:
        raise InvalidHeader(
            "no provider: send x-portkey-provider (or x-portkey-virtual-key, or an x-portkey-config)",
            param="x-portkey-provider",
        )
    try:
        return parse_config(fields, trusted)
    except InvalidRequest as exc:
        # Name the header the client sent, not the config field it became.
        exc.param = _HEADER_OF_FIELD.get(exc.param or "", exc.param)
        raise


def config_reference(headers: Mapping[str, str]) -> str | None:
    """The id of a saved config (``x-portkey-config: pc-...``), which the resolve stage fetches."""
    raw = headers.get("x-portkey-config")
    if raw is None or is_inline_config(raw):
        return None
    return raw.strip()


def read_options(headers: Mapping[str, str], trusted_hosts: frozenset[str],
                 saved_config: Mapping[str, Any] | None = None) -> RequestOptions:
    """The routing tree and request options. ``saved_config`` is the config an id named, already
    fetched; otherwise an inline ``x-portkey-config`` decides, else the provider headers do."""
    config = headers.get("x-portkey-config")
    if saved_config is not None or config is not None:
        # The header timeout applies wherever the config sets none (as the reference does).
        timeout = _timeout_ms(headers.get("x-portkey-request-timeout"))
        if saved_config is not None:
            root = parse_config(saved_config, trusted_hosts, timeout)
        else:
            assert config is not None
            root = parse_config_text(config.strip(), trusted_hosts, timeout)
    else:
        items = tuple([(h, headers[h]) for h in _ROUTING_HEADERS if headers.get(h)])
        root = _target_from_headers(items, trusted_hosts)
    api_key = bearer_key(headers)
    own = gateway_key(headers)
    secrets = root.secrets
    if api_key or own:
        secrets = (*[k for k in (api_key, own) if k], *secrets)
    return RequestOptions(root=root, metadata=_metadata(headers.get("x-portkey-metadata")), api_key=api_key,
                          secrets=secrets)
