import pytest

from aigw.adapters.local import create_app
from aigw.settings import AZURE, LAMBDA_ROUTE, LOCAL, Settings


def test_defaults_need_no_environment():
    s = Settings.from_env({}, LOCAL)
    assert s.auth_mode == "none" and s.gateway_basepath is None
    assert s.trusted_custom_hosts == frozenset({"127.0.0.1", "::1", "localhost"})


KEY_HASH = "sha256:" + "ab" * 32


def test_values_are_read_under_their_names():
    s = Settings.from_env({
        "AUTH_MODE": "api_key", "GATEWAY_API_KEY_HASHES": KEY_HASH, "GATEWAY_BASEPATH": "https://gw.example.com", "SERVICE_NAME": "edge",
        "MAX_REQUEST_BODY_BYTES": "1024", "MAX_REQUEST_HEADER_BYTES": "2048", "TRUSTED_CUSTOM_HOSTS": "10.0.0.0/8, ollama.corp",
        "RETRY_BASE_MS": "50", "RETRY_MAX_BACKOFF_MS": "500", "RETRY_AFTER_CAP_MS": "900",
        "UPSTREAM_POOL_SIZE": "8", "UPSTREAM_CONNECT_TIMEOUT_MS": "750", "UPSTREAM_POOL_PER_HOST": "4",
        "UPSTREAM_TIMEOUT_MS": "9000", "UPSTREAM_IDLE_TIMEOUT_MS": "3000", "MAX_RESPONSE_BODY_BYTES": "4096",
        "REQUEST_BODY_TIMEOUT_MS": "1500", "RESPONSE_WRITE_TIMEOUT_MS": "2500", "UPSTREAM_CLIENT": "stdlib",
    }, LOCAL)
    assert (s.auth_mode, s.gateway_basepath, s.service_name) == ("api_key", "https://gw.example.com", "edge")
    assert (s.max_body_bytes, s.max_header_bytes) == (1024, 2048)
    assert "10.0.0.0/8" in s.trusted_custom_hosts and "ollama.corp" in s.trusted_custom_hosts
    assert (s.retry_base_ms, s.retry_max_backoff_ms, s.retry_after_cap_ms) == (50, 500, 900)
    assert (s.upstream_pool_size, s.upstream_connect_timeout_ms, s.upstream_pool_per_host) == (8, 750, 4)
    assert (s.upstream_timeout_ms, s.upstream_idle_timeout_ms, s.max_response_bytes) == (9000, 3000, 4096)
    assert (s.request_body_timeout_ms, s.response_write_timeout_ms, s.upstream_client) == (1500, 2500, "stdlib")
    assert s.gateway_api_key_hashes == frozenset({"ab" * 32})
    assert Settings.from_env({"TRUSTED_CUSTOM_HOSTS": ""}, LOCAL).trusted_custom_hosts == frozenset()


@pytest.mark.parametrize("env", [
    {"AUTH_MODE": "magic"}, {"MAX_REQUEST_BODY_BYTES": "lots"}, {"TRUSTED_CUSTOM_HOSTS": "10.0.0.0/33"},
    {"UPSTREAM_CLIENT": "curl"}, {"UPSTREAM_POOL_PER_HOST": "0"},
    # Fail closed: a gateway told to require keys refuses to start without any accepted key.
    {"AUTH_MODE": "api_key"}, {"AUTH_MODE": "api_key", "GATEWAY_API_KEY_HASHES": "not-a-hash"},
    {"AUTH_MODE": "api_key", "GATEWAY_API_KEYS_FILE": "/nonexistent/keys.txt"},
])
def test_misconfiguration_fails_at_start_up(env, monkeypatch):
    with pytest.raises(ValueError):
        Settings.from_env(env, LOCAL)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError):
        create_app()  # the local shell builds its settings when it starts


def test_key_hashes_come_from_a_file_too(tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# team a\n{KEY_HASH}  # ci\n\n{'cd' * 32}\n")
    s = Settings.from_env({"AUTH_MODE": "api_key", "GATEWAY_API_KEYS_FILE": str(keys)}, LOCAL)
    assert s.gateway_api_key_hashes == frozenset({"ab" * 32, "cd" * 32})


def test_each_shell_chooses_its_defaults_explicitly():
    # GIVEN no environment at all (the platform is never guessed from it)
    lam, azure, local = (Settings.from_env({}, shell) for shell in (LAMBDA_ROUTE, AZURE, LOCAL))
    # THEN loopback is trusted only by the local server: on Lambda it is the Runtime API, on Azure
    # the host's own services
    assert local.trusted_custom_hosts == frozenset({"127.0.0.1", "::1", "localhost"})
    assert lam.trusted_custom_hosts == frozenset() and azure.trusted_custom_hosts == frozenset()
    assert Settings.from_env({"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"}, LOCAL).trusted_custom_hosts == local.trusted_custom_hosts
    assert (lam.upstream_client, local.upstream_client) == ("stdlib", "aiohttp")
    assert lam.max_response_bytes < 6 * 1024 * 1024 < local.max_response_bytes
    explicit = Settings.from_env({"TRUSTED_CUSTOM_HOSTS": "10.0.0.0/8"}, LAMBDA_ROUTE)
    assert explicit.trusted_custom_hosts == frozenset({"10.0.0.0/8"})


def test_trace_ids_are_uuid4():
    import uuid

    from aigw.context import new_trace_id

    ids = {new_trace_id() for _ in range(100)}
    assert len(ids) == 100 and all(uuid.UUID(i).version == 4 for i in ids)


def test_cache_store_settings():
    from aigw.settings import LOCAL, Settings

    default = Settings.from_env({}, LOCAL)
    assert default.cache_store is None and default.redis_timeout_ms == 50
    s = Settings.from_env({"CACHE_STORE": "aws-elastic-cache", "REDIS_URL": "cache.example:6379",
                           "REDIS_TLS_ENABLED": "true", "REDIS_MODE": "cluster", "REDIS_TIMEOUT_MS": "80"}, LOCAL)
    assert (s.cache_store, s.redis_url, s.redis_tls_enabled, s.redis_mode, s.redis_timeout_ms) == (
        "aws-elastic-cache", "cache.example:6379", True, "cluster", 80)
    assert "cache.example" not in repr(s)  # the URL may carry a password


@pytest.mark.parametrize("env, message", [
    ({"CACHE_STORE": "redis"}, "REDIS_URL"),
    ({"CACHE_STORE": "memcached", "REDIS_URL": "redis://h"}, "CACHE_STORE"),
    ({"CACHE_STORE": "redis", "REDIS_URL": "http://h"}, "REDIS_URL"),
    ({"REDIS_MODE": "sentinel"}, "REDIS_MODE"),
    ({"REDIS_TLS_ENABLED": "maybe"}, "REDIS_TLS_ENABLED"),
    ({"SEMCACHE_PINECONE_SUBDOMAIN": "idx-abc.svc.us-east-1-aws"}, "VECTOR_STORE_API_KEY"),
    ({"SEMCACHE_SIMILARITY_THRESHOLD": "1.5"}, "SEMCACHE_SIMILARITY_THRESHOLD"),
    ({"SEMCACHE_SIMILARITY_THRESHOLD": "high"}, "SEMCACHE_SIMILARITY_THRESHOLD"),
])
def test_cache_misconfiguration_fails_at_start(env, message):
    from aigw.settings import LOCAL, Settings

    with pytest.raises(ValueError, match=message):
        Settings.from_env(env, LOCAL)


def test_semantic_cache_settings():
    from aigw.settings import LOCAL, Settings

    s = Settings.from_env({"OPENAI_API_KEY": "sk-embed-0123456789", "SEMCACHE_PINECONE_SUBDOMAIN":
                           "idx-abc.svc.us-east-1-aws", "VECTOR_STORE_API_KEY": "pc-0123456789"}, LOCAL)
    assert s.semcache_vector_store_url == "https://idx-abc.svc.us-east-1-aws.pinecone.io"
    assert s.semcache_threshold == 0.95 and s.semcache_embedding_model == "text-embedding-3-small"
    assert "sk-embed" not in repr(s) and "pc-0123456789" not in repr(s)


def test_service_keys_are_stripped_and_header_safe():
    from aigw.settings import LOCAL, Settings

    s = Settings.from_env({"OPENAI_API_KEY": "sk-embed-0123456789\n", "SEMCACHE_PINECONE_SUBDOMAIN": "idx",
                           "VECTOR_STORE_API_KEY": " pc-0123456789 "}, LOCAL)
    assert s.openai_api_key == "sk-embed-0123456789" and s.vector_store_api_key == "pc-0123456789"
    with pytest.raises(ValueError, match="OPENAI_API_KEY") as info:
        Settings.from_env({"OPENAI_API_KEY": "sk-a\nsk-b"}, LOCAL)
    assert "sk-a" not in str(info.value)


def test_log_settings():
    from aigw.settings import LAMBDA_ROUTE, LAMBDA_STREAM, LOCAL, Settings

    assert Settings.from_env({}, LOCAL).log_folder is None  # opt-in until its cost is brought down
    assert Settings.from_env({}, LAMBDA_ROUTE).log_folder is None and Settings.from_env({}, LAMBDA_STREAM).log_folder is None
    assert Settings.from_env({"LOG_FOLDER": "/var/log/aigw"}, LOCAL).log_folder == "/var/log/aigw"
    assert Settings.from_env({"LOG_STORE": "folder"}, LOCAL).log_folder == "logs"
    with pytest.raises(ValueError, match="LOG_STORE=s3 is not available in this build yet"):
        Settings.from_env({"LOG_STORE": "s3"}, LOCAL)
    with pytest.raises(ValueError, match="LOG_STORE=nosql is unknown"):
        Settings.from_env({"LOG_STORE": "nosql"}, LOCAL)
