"""Settings, read once from a mapping (``os.environ`` by default) so tests can pass their own.

What differs between shells (local server, per-route Lambda, Lambda streaming, Azure) comes
from the ``ShellDefaults`` the shell passes explicitly; nothing here guesses the platform from
the environment (on Azure, loopback must not become a trusted custom host by accident).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aigw.custom_host import DEFAULT_TRUSTED_HOSTS, parse_trusted_hosts

MIB = 1024 * 1024
# Lambda's synchronous invocation response (the whole JSON the function returns) is at most
# 6 MB; leave room for the status, headers and JSON escaping of the body.
LAMBDA_SYNC_RESPONSE_LIMIT = 6 * MIB
LAMBDA_MAX_PROVIDER_BODY = LAMBDA_SYNC_RESPONSE_LIMIT - 256 * 1024
# A streamed Lambda response (Function URL, RESPONSE_STREAM) may reach 20 MB.
LAMBDA_STREAM_RESPONSE_LIMIT = 20 * MIB


class ShellDefaults(NamedTuple):
    name: str
    # "aiohttp" for concurrent servers; "stdlib" where one request runs at a time and aiohttp's
    # import does not fit the cold-start budget (per-route Lambda functions).
    upstream_client: str
    # Custom hosts allowed although private: loopback for a developer's local Ollama; nothing
    # on cloud functions, where loopback is the platform's own runtime API.
    trusted_custom_hosts: frozenset[str]
    # A non-streamed provider answer larger than this is refused (502) instead of buffered.
    max_response_bytes: int
    # Whether request logs go to LOG_FOLDER by default (the local server); the cloud shells log
    # through their queue (logging-pipeline issue), never to a read-only or ephemeral disk.
    logs_to_folder: bool = False


# Folder logging is opt-in for now (LOG_STORE=folder or LOG_FOLDER): measured, it still costs the
# local server 1.2-1.4x its CPU per request (~150 us building each record), which the
# logging-pipeline issue must bring down before it becomes make run's default.
LOCAL = ShellDefaults("local", "aiohttp", DEFAULT_TRUSTED_HOSTS, 64 * MIB, logs_to_folder=False)
LAMBDA_ROUTE = ShellDefaults("lambda", "stdlib", frozenset(), LAMBDA_MAX_PROVIDER_BODY)
LAMBDA_STREAM = ShellDefaults("lambda-stream", "aiohttp", frozenset(), LAMBDA_STREAM_RESPONSE_LIMIT)
AZURE = ShellDefaults("azure", "aiohttp", frozenset(), 64 * MIB)


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
    return raw


def _key_hashes(env: Mapping[str, str]) -> frozenset[str]:
    from aigw.auth import parse_key_hashes

    entries = (env.get("GATEWAY_API_KEY_HASHES") or "").split(",")
    path = env.get("GATEWAY_API_KEYS_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as fh:
                entries += [line.split("#", 1)[0] for line in fh]
        except OSError as exc:
            raise ValueError(f"GATEWAY_API_KEYS_FILE cannot be read: {type(exc).__name__}") from None
    return parse_key_hashes(entries)


CACHE_STORES = ("redis", "aws-elastic-cache", "custom")


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no"):
        return False
    raise ValueError(f"{name} must be true or false, got {raw!r}")


def _cache_store(env: Mapping[str, str]) -> dict[str, Any]:
    store = _choice(env, "CACHE_STORE", CACHE_STORES, "") or None
    url = (env.get("REDIS_URL") or "").strip() or None
    if store is not None and url is None:
        raise ValueError(f"CACHE_STORE={store} needs REDIS_URL")
    if store is not None and url is not None:
        from aigw.state.redis_store import redis_url

        redis_url(url, False)  # a malformed URL fails the start, not the first request
    return {
        "cache_store": store,
        "redis_url": url,
        "redis_tls_enabled": _bool(env, "REDIS_TLS_ENABLED", False),
        "redis_mode": _choice(env, "REDIS_MODE", ("standalone", "cluster"), "standalone"),
        "redis_timeout_ms": _int(env, "REDIS_TIMEOUT_MS", 50, 1),
    }


def _header_safe_secret(env: Mapping[str, str], name: str) -> str | None:
    """A key sent in a header: surrounding whitespace (a trailing newline from a secrets file)
    dropped; anything a header cannot carry fails the start, naming the setting, not the key."""
    value = (env.get(name) or "").strip()
    if not value:
        return None
    if any(ord(c) < 0x20 or ord(c) > 0x7E for c in value):
        raise ValueError(f"{name} holds characters an HTTP header cannot carry")
    return value


LOG_STORES_LATER = ("s3", "s3_assume", "wasabi", "gcs", "netapp", "s3_custom", "azure", "mongo")


def _log_folder(env: Mapping[str, str], shell: ShellDefaults) -> str | None:
    store = (env.get("LOG_STORE") or "").strip().lower()
    if store and store != "folder":
        # Never a deployment that believes it logs and drops every record.
        known = store in LOG_STORES_LATER
        raise ValueError(f"LOG_STORE={store} is {'not available in this build yet' if known else 'unknown'}; "
                         "unset it (or set LOG_STORE=folder) to log to LOG_FOLDER")
    folder = (env.get("LOG_FOLDER") or "").strip()
    if folder:
        return folder
    return "logs" if store == "folder" or shell.logs_to_folder else None


def _semantic_cache(env: Mapping[str, str]) -> dict[str, Any]:
    subdomain = (env.get("SEMCACHE_PINECONE_SUBDOMAIN") or "").strip() or None
    url = (env.get("SEMCACHE_VECTOR_STORE_URL") or "").strip() or None
    if url is None and subdomain is not None:
        # The index host without its ".pinecone.io": "my-index-abc123.svc.us-east-1-aws".
        url = f"https://{subdomain.removesuffix('.pinecone.io')}.pinecone.io"
    api_key = _header_safe_secret(env, "VECTOR_STORE_API_KEY")
    if url is not None and api_key is None:
        raise ValueError("a Pinecone vector store (SEMCACHE_PINECONE_SUBDOMAIN) needs VECTOR_STORE_API_KEY")
    raw_threshold = (env.get("SEMCACHE_SIMILARITY_THRESHOLD") or "").strip()
    try:
        threshold = float(raw_threshold) if raw_threshold else 0.95
    except ValueError:
        raise ValueError(f"SEMCACHE_SIMILARITY_THRESHOLD must be a number, got {raw_threshold!r}") from None
    if not 0 < threshold <= 1:
        raise ValueError("SEMCACHE_SIMILARITY_THRESHOLD must be above 0 and at most 1")
    return {
        "openai_api_key": _header_safe_secret(env, "OPENAI_API_KEY"),
        "semcache_embeddings_url": (env.get("SEMCACHE_EMBEDDINGS_URL") or "").strip() or "https://api.openai.com/v1",
        "semcache_embedding_model": (env.get("SEMCACHE_EMBEDDING_MODEL") or "").strip() or "text-embedding-3-small",
        "semcache_pinecone_subdomain": subdomain,
        "semcache_vector_store_url": url,
        "vector_store_api_key": api_key,
        "semcache_threshold": threshold,
        "semcache_timeout_ms": _int(env, "SEMCACHE_TIMEOUT_MS", 2000, 1),
    }


@dataclass(frozen=True)
class Settings:
    # Auth mode: "none" (local default) or "api_key" (x-portkey-api-key checked against key hashes).
    auth_mode: str = "none"
    # SHA-256 hashes of the gateway keys accepted when auth_mode is "api_key".
    gateway_api_key_hashes: frozenset[str] = frozenset()
    # This gateway's own public base URL (seed 000's GATEWAY_BASEPATH).
    gateway_basepath: str | None = None
    service_name: str = "aigw"
    shell: str = LOCAL.name
    max_body_bytes: int = 16 * MIB
    max_header_bytes: int = 64 * 1024
    # Time to receive a request body once its headers are in, and to hand a response to a
    # client that stopped reading; past either the connection is closed.
    request_body_timeout_ms: int = 30_000
    response_write_timeout_ms: int = 30_000
    max_response_bytes: int = LOCAL.max_response_bytes
    trusted_custom_hosts: frozenset[str] = LOCAL.trusted_custom_hosts
    # Retry backoff: base * 2**n with full jitter, capped; Retry-After above the cap is not waited for.
    retry_base_ms: int = 200
    retry_max_backoff_ms: int = 10_000
    retry_after_cap_ms: int = 60_000
    # Provider calls: one pool per execution environment, bounded per host so that one slow
    # host cannot starve the others; every call has a total and an idle (between bytes) bound.
    upstream_pool_size: int = 256
    upstream_pool_per_host: int = 64
    upstream_connect_timeout_ms: int = 10_000
    upstream_timeout_ms: int = 600_000
    upstream_idle_timeout_ms: int = 120_000
    upstream_client: str = LOCAL.upstream_client
    # The cache store (sticky routing, circuit breaker, response cache): None is the embedded
    # in-process store; "redis", "aws-elastic-cache" and "custom" are Redis at redis_url.
    cache_store: str | None = None
    redis_url: str | None = field(default=None, repr=False)  # may carry a password
    redis_tls_enabled: bool = False
    redis_mode: str = "standalone"
    # Bound on each Redis command, connecting included: a dead Redis costs a request at most this.
    redis_timeout_ms: int = 50
    # The semantic cache: OpenAI embeddings (no key: semantic configs cache exact matches only)
    # and Pinecone (no index named: an in-process vector index).
    openai_api_key: str | None = field(default=None, repr=False)
    semcache_embeddings_url: str = "https://api.openai.com/v1"
    semcache_embedding_model: str = "text-embedding-3-small"
    semcache_pinecone_subdomain: str | None = None
    semcache_vector_store_url: str | None = None
    vector_store_api_key: str | None = field(default=None, repr=False)
    semcache_threshold: float = 0.95
    semcache_timeout_ms: int = 2000
    # Request logs: a folder of JSON documents (the local server's default), or none.
    log_folder: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], shell: ShellDefaults) -> Settings:
        """Settings of ``shell`` (its defaults chosen by the shell, never guessed), from ``env``."""
        trusted = env.get("TRUSTED_CUSTOM_HOSTS")
        auth_mode = _choice(env, "AUTH_MODE", ("none", "api_key"), "none")
        hashes = _key_hashes(env)  # validated in every mode: a typo fails the start, not a later switch
        if auth_mode == "api_key" and not hashes:
            # Fail closed: a gateway told to require keys must never start accepting any key.
            raise ValueError("AUTH_MODE=api_key needs GATEWAY_API_KEY_HASHES or GATEWAY_API_KEYS_FILE "
                             "(SHA-256 hashes of the accepted keys; see `python -m aigw.auth hash`)")
        return cls(
            auth_mode=auth_mode,
            gateway_api_key_hashes=hashes,
            gateway_basepath=env.get("GATEWAY_BASEPATH") or None,
            service_name=env.get("SERVICE_NAME") or "aigw",
            shell=shell.name,
            max_body_bytes=_int(env, "MAX_REQUEST_BODY_BYTES", cls.max_body_bytes, 1),
            max_header_bytes=_int(env, "MAX_REQUEST_HEADER_BYTES", cls.max_header_bytes, 1024),
            request_body_timeout_ms=_int(env, "REQUEST_BODY_TIMEOUT_MS", cls.request_body_timeout_ms, 1),
            response_write_timeout_ms=_int(env, "RESPONSE_WRITE_TIMEOUT_MS", cls.response_write_timeout_ms, 1),
            max_response_bytes=_int(env, "MAX_RESPONSE_BODY_BYTES", shell.max_response_bytes, 1),
            trusted_custom_hosts=shell.trusted_custom_hosts if trusted is None else parse_trusted_hosts(trusted),
            retry_base_ms=_int(env, "RETRY_BASE_MS", cls.retry_base_ms),
            retry_max_backoff_ms=_int(env, "RETRY_MAX_BACKOFF_MS", cls.retry_max_backoff_ms),
            retry_after_cap_ms=_int(env, "RETRY_AFTER_CAP_MS", cls.retry_after_cap_ms),
            upstream_pool_size=_int(env, "UPSTREAM_POOL_SIZE", cls.upstream_pool_size, 1),
            upstream_pool_per_host=_int(env, "UPSTREAM_POOL_PER_HOST", cls.upstream_pool_per_host, 1),
            upstream_connect_timeout_ms=_int(env, "UPSTREAM_CONNECT_TIMEOUT_MS", cls.upstream_connect_timeout_ms, 1),
            upstream_timeout_ms=_int(env, "UPSTREAM_TIMEOUT_MS", cls.upstream_timeout_ms, 1),
            upstream_idle_timeout_ms=_int(env, "UPSTREAM_IDLE_TIMEOUT_MS", cls.upstream_idle_timeout_ms, 1),
            upstream_client=_choice(env, "UPSTREAM_CLIENT", ("aiohttp", "stdlib"), shell.upstream_client),
            **_cache_store(env),
            **_semantic_cache(env),
            log_folder=_log_folder(env, shell),
        )
