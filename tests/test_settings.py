import pytest

from aigw.adapters.asgi import GatewayApp
from aigw.settings import Settings


def test_defaults_need_no_environment():
    s = Settings.from_env({})
    assert s.auth_mode == "none" and s.gateway_basepath is None
    assert s.trusted_custom_hosts == frozenset({"127.0.0.1", "::1", "localhost"})


def test_values_are_read_under_their_names():
    s = Settings.from_env({
        "AUTH_MODE": "api_key", "GATEWAY_BASEPATH": "https://gw.example.com", "SERVICE_NAME": "edge",
        "MAX_REQUEST_BODY_BYTES": "1024", "MAX_REQUEST_HEADER_BYTES": "2048", "TRUSTED_CUSTOM_HOSTS": "10.0.0.0/8, ollama.corp",
        "RETRY_BASE_MS": "50", "RETRY_MAX_BACKOFF_MS": "500", "RETRY_AFTER_CAP_MS": "900",
        "UPSTREAM_POOL_SIZE": "8", "UPSTREAM_CONNECT_TIMEOUT_MS": "750",
    })
    assert (s.auth_mode, s.gateway_basepath, s.service_name) == ("api_key", "https://gw.example.com", "edge")
    assert (s.max_body_bytes, s.max_header_bytes) == (1024, 2048)
    assert "10.0.0.0/8" in s.trusted_custom_hosts and "ollama.corp" in s.trusted_custom_hosts
    assert (s.retry_base_ms, s.retry_max_backoff_ms, s.retry_after_cap_ms) == (50, 500, 900)
    assert (s.upstream_pool_size, s.upstream_connect_timeout_ms) == (8, 750)
    assert Settings.from_env({"TRUSTED_CUSTOM_HOSTS": ""}).trusted_custom_hosts == frozenset()


@pytest.mark.parametrize("env", [{"AUTH_MODE": "magic"}, {"MAX_REQUEST_BODY_BYTES": "lots"}, {"TRUSTED_CUSTOM_HOSTS": "10.0.0.0/33"}])
def test_misconfiguration_fails_at_start_up(env, monkeypatch):
    with pytest.raises(ValueError):
        Settings.from_env(env)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError):
        GatewayApp({})  # the shells build their settings when they start


def test_loopback_is_not_trusted_by_default_on_lambda():
    assert Settings.from_env({"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"}).trusted_custom_hosts == frozenset()
    explicit = Settings.from_env({"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001", "TRUSTED_CUSTOM_HOSTS": "10.0.0.0/8"})
    assert explicit.trusted_custom_hosts == frozenset({"10.0.0.0/8"})


def test_trace_ids_are_uuid4():
    import uuid

    from aigw.proxy import new_trace_id

    ids = {new_trace_id() for _ in range(100)}
    assert len(ids) == 100 and all(uuid.UUID(i).version == 4 for i in ids)
