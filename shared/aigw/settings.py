"""Settings, read once from a mapping (``os.environ`` by default) so tests can pass their own."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from aigw.custom_host import parse_trusted_hosts


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return None
    if raw not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
    return raw


@dataclass(frozen=True)
class Settings:
    # Auth mode: "none" (local default) or "api_key" (requires x-portkey-api-key).
    auth_mode: str = "none"
    # This gateway's own public base URL (seed 000's GATEWAY_BASEPATH).
    gateway_basepath: str | None = None
    service_name: str = "aigw"
    max_body_bytes: int = 16 * 1024 * 1024
    max_header_bytes: int = 64 * 1024
    # A provider answer (non-streamed) larger than this is refused with 502, never buffered whole.
    max_response_bytes: int = 64 * 1024 * 1024
    # Hosts a custom_host may point at even though the SSRF guard would refuse them.
    trusted_custom_hosts: frozenset[str] = frozenset({"127.0.0.1", "::1", "localhost"})
    # Retry backoff: base * 2**n with full jitter, capped; Retry-After above the cap is not waited for.
    retry_base_ms: int = 200
    retry_max_backoff_ms: int = 10_000
    retry_after_cap_ms: int = 60_000
    # Upstream connection pool of the one shared HTTP client per execution environment.
    upstream_pool_size: int = 256
    upstream_connect_timeout_ms: int = 10_000
    # "aiohttp" or "stdlib"; None lets the shell choose (Lambda route functions: stdlib).
    upstream_client: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        trusted = env.get("TRUSTED_CUSTOM_HOSTS")
        if trusted is None and env.get("AWS_LAMBDA_RUNTIME_API"):
            # On Lambda, loopback is the Runtime API (127.0.0.1:9001): trust nothing by default.
            trusted = ""
        auth_mode = env.get("AUTH_MODE", "none").strip().lower() or "none"
        if auth_mode not in {"none", "api_key"}:
            raise ValueError(f"AUTH_MODE must be 'none' or 'api_key', got {auth_mode!r}")
        return cls(
            auth_mode=auth_mode,
            gateway_basepath=env.get("GATEWAY_BASEPATH") or None,
            service_name=env.get("SERVICE_NAME") or "aigw",
            max_body_bytes=_int(env, "MAX_REQUEST_BODY_BYTES", cls.max_body_bytes),
            max_header_bytes=_int(env, "MAX_REQUEST_HEADER_BYTES", cls.max_header_bytes),
            max_response_bytes=_int(env, "MAX_RESPONSE_BODY_BYTES", cls.max_response_bytes),
            trusted_custom_hosts=parse_trusted_hosts(trusted),
            retry_base_ms=_int(env, "RETRY_BASE_MS", cls.retry_base_ms),
            retry_max_backoff_ms=_int(env, "RETRY_MAX_BACKOFF_MS", cls.retry_max_backoff_ms),
            retry_after_cap_ms=_int(env, "RETRY_AFTER_CAP_MS", cls.retry_after_cap_ms),
            upstream_pool_size=_int(env, "UPSTREAM_POOL_SIZE", cls.upstream_pool_size),
            upstream_connect_timeout_ms=_int(env, "UPSTREAM_CONNECT_TIMEOUT_MS", cls.upstream_connect_timeout_ms),
            upstream_client=_choice(env, "UPSTREAM_CLIENT", ("aiohttp", "stdlib")),
        )

