"""RedisStore beyond the contract: TLS verification, outages, slow servers, lazy import."""

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from aigw.state.redis_store import redis_url
from aigw.state.store import PREFIX, StoreUnavailable
from tests.state.conftest import redis_store

REPO = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("given, tls, expected", [
    ("redis://h:6379", False, "redis://h:6379"),
    ("redis://h:6379", True, "rediss://h:6379"),
    ("rediss://h:6379/0", False, "rediss://h:6379/0"),
    ("my-cache.abc123.use1.cache.amazonaws.com:6379", True, "rediss://my-cache.abc123.use1.cache.amazonaws.com:6379"),
    ("h", False, "redis://h"),
])
def test_urls_get_their_scheme(given, tls, expected):
    assert redis_url(given, tls) == expected


def test_other_schemes_are_refused():
    with pytest.raises(ValueError):
        redis_url("http://h:6379", False)


async def test_tls_is_verified_against_the_system_trust_store(redis_tls_server, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    untrusted = redis_store(redis_tls_server.url)
    await untrusted.connect()
    with pytest.raises(StoreUnavailable):  # a self-signed CA nobody trusts: the handshake fails
        await untrusted.get(PREFIX + "x")
    await untrusted.close()
    monkeypatch.setenv("SSL_CERT_FILE", redis_tls_server.ca_file)
    trusted = redis_store(redis_tls_server.url)
    await trusted.connect()
    assert await trusted.set(PREFIX + "x", b"1", 60)
    await trusted.close()


async def test_plain_redis_url_with_tls_enabled_speaks_tls(redis_tls_server, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", redis_tls_server.ca_file)
    store = redis_store(redis_tls_server.url.replace("rediss://", "redis://"), tls=True)
    await store.connect()
    assert await store.set(PREFIX + "x", b"1", 60)
    await store.close()


async def test_before_it_is_connected_the_store_is_unavailable_then_connects_by_itself(redis_server):
    store = redis_store(redis_server.url)
    with pytest.raises(StoreUnavailable, match="connecting"):
        await store.get(PREFIX + "x")
    for _ in range(200):  # the import runs in a thread; the next calls find the client
        try:
            assert await store.get(PREFIX + "x") is None
            break
        except StoreUnavailable:
            await asyncio.sleep(0.01)
    else:
        pytest.fail("the store never connected")
    await store.close()


async def test_an_outage_is_logged_once_skipped_between_probes_and_recovered_from(redis_server, caplog):
    clock = FakeClock()
    store = redis_store(redis_server.url, clock=clock)
    await store.connect()
    assert await store.set(PREFIX + "k", b"1", 60)
    redis_server.kill()
    caplog.set_level(logging.WARNING, logger="aigw")
    with pytest.raises(StoreUnavailable) as first:
        await store.get(PREFIX + "k")
    assert str(first.value) != "down"  # this call tried Redis
    for _ in range(20):  # within the probe interval: nobody waits on a dead Redis
        with pytest.raises(StoreUnavailable, match="^down$"):
            await store.get(PREFIX + "k")
    clock.now += 1.5
    with pytest.raises(StoreUnavailable) as probe:  # one probe per interval, still down
        await store.get(PREFIX + "k")
    assert str(probe.value) != "down"
    redis_server.restart()
    clock.now += 1.5
    assert await store.get(PREFIX + "k") is None  # reconnected by itself (the restart lost the data)
    events = [json.loads(r.getMessage()) for r in caplog.records if r.name == "aigw"]
    assert [e["event"] for e in events] == ["cache_store_unavailable", "cache_store_recovered"]
    assert events[0]["store"] == "redis" and "127.0.0.1" not in caplog.text  # no URL (it may hold a password)
    await store.close()


async def test_a_server_that_never_answers_costs_one_timeout():
    with socket.socket() as silent:  # accepts connections (the kernel does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        store = redis_store(f"redis://127.0.0.1:{port}")
        store._timeout_s = 0.05
        await store.connect()
        with pytest.raises(StoreUnavailable):
            await store.get(PREFIX + "x")
        with pytest.raises(StoreUnavailable, match="^down$"):
            await store.get(PREFIX + "x")
        await store.close()


def _imports(env_extra: dict[str, str]) -> dict[str, bool]:
    code = (
        "import importlib.util, sys, json\n"
        "spec = importlib.util.spec_from_file_location('app', 'functions/chat_completions/app.py')\n"
        "app = importlib.util.module_from_spec(spec); spec.loader.exec_module(app)\n"
        "print(json.dumps({'redis': any(m == 'redis' or m.startswith('redis.') for m in sys.modules)}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("CACHE_STORE", "REDIS_URL")}
    env.update(env_extra, PYTHONPATH=str(REPO / "shared"))
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_route_function_imports_nothing_of_redis_at_init_with_or_without_a_cache_store():
    assert _imports({}) == {"redis": False}
    assert _imports({"CACHE_STORE": "redis", "REDIS_URL": "redis://127.0.0.1:1"}) == {"redis": False}


async def test_a_command_redis_refuses_fails_that_call_only(redis_server):
    store = redis_store(redis_server.url)
    await store.connect()
    await store.set(PREFIX + "text", b"not a number", 60)
    with pytest.raises(StoreUnavailable):
        await store.incr(PREFIX + "text", 60)  # WRONGTYPE/not an integer: Redis answered
    assert store.availability.up
    assert await store.get(PREFIX + "text") == b"not a number"
    assert await store.set(PREFIX + "far", b"1", 10**15)  # clamped, never a PX Redis refuses
    await store.close()


async def test_a_request_shares_one_time_budget_across_its_commands(redis_server):
    from aigw.state.store import StoreBudget, request_budget

    store = redis_store(redis_server.url)
    await store.connect()
    budget = StoreBudget(0.5)
    request_budget.set(budget)
    assert await store.set(PREFIX + "b", b"1", 60)
    assert 0 < budget.left_s < 0.5  # each command's time is taken from it
    budget.left_s = 0
    with pytest.raises(StoreUnavailable, match="budget"):
        await store.get(PREFIX + "b")
    assert store.availability.up  # a spent budget is no outage
    request_budget.set(None)
    await store.close()


async def test_the_certificate_must_name_the_host(tmp_path, monkeypatch):
    from tests.support.redis_servers import RedisServer, make_tls_files

    files = make_tls_files(tmp_path, names=("cache.example",))  # a trusted CA, another host's name
    with RedisServer(tls=files) as server:
        monkeypatch.setenv("SSL_CERT_FILE", server.ca_file)
        store = redis_store(server.url)
        await store.connect()
        with pytest.raises(StoreUnavailable):
            await store.get(PREFIX + "x")
        await store.close()


async def test_a_request_out_of_budget_is_no_outage(redis_server):
    from aigw.state.store import StoreBudget, request_budget

    store = redis_store(redis_server.url)
    await store.connect()
    request_budget.set(StoreBudget(0.00001))  # less than any command takes: the budget, not Redis, runs out
    with pytest.raises(StoreUnavailable, match="budget"):
        await store.get(PREFIX + "x")
    request_budget.set(None)
    assert store.availability.up
    await store.close()


async def test_a_broken_redis_py_is_reported_and_never_raised(redis_server, monkeypatch, caplog):
    from aigw.state import redis_store as module

    def broken():
        raise ImportError("no redis here")

    monkeypatch.setattr(module, "_RedisPy", broken)
    store = redis_store(redis_server.url)
    caplog.set_level(logging.WARNING, logger="aigw")
    with pytest.raises(StoreUnavailable):
        await store.connect()
    assert not store.availability.up and "ImportError" in caplog.text
