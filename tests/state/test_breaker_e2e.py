"""Circuit breakers through the local server: a failing target stops being called."""

import json
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from aigw.settings import Settings
from tests.fakes.provider_server import FakeProvider, Reply
from tests.support.local_gateway import LocalGateway


@pytest.fixture
def failing() -> Iterator[FakeProvider]:
    """A provider that answers every call with 503."""
    with FakeProvider() as fake:
        fake.script_all(*[Reply(status=503, json={"error": {"message": "overloaded"}})] * 50)
        yield fake


def config(failing, healthy):
    return {"strategy": {"mode": "fallback"}, "cb_config": {"failure_threshold": 2, "cooldown_interval": 30_000},
            "targets": [{"provider": "openai", "api_key": "sk-cb-0123456789", "custom_host": fake.base_url + "/v1"}
                        for fake in (failing, healthy)]}


def post(client, base_url, failing, healthy):
    r = client.post(base_url + "/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                    headers={"x-portkey-config": json.dumps(config(failing, healthy))})
    assert r.status_code == 200 and r.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    return r


def test_after_the_threshold_the_failing_target_is_skipped(fake_provider, failing, backend_settings):
    with LocalGateway(backend_settings) as gw, httpx.Client(timeout=30) as client:
        for _ in range(5):
            post(client, gw.base_url, failing, fake_provider)
    assert len(failing.requests) == 2  # two failures opened the circuit: not called again
    assert len(fake_provider.requests) == 5


def test_instances_on_redis_share_an_open_circuit(fake_provider, failing, redis_server):
    settings = replace(Settings(), cache_store="redis", redis_url=redis_server.url, redis_timeout_ms=200)
    with LocalGateway(settings) as one, LocalGateway(settings) as two, httpx.Client(timeout=30) as client:
        for _ in range(2):
            post(client, one.base_url, failing, fake_provider)
        for _ in range(3):
            post(client, two.base_url, failing, fake_provider)
    assert len(failing.requests) == 2
