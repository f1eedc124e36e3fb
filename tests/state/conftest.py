"""Stores under test: the embedded one and Redis standalone, TLS-only and cluster, all real."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from aigw.settings import Settings
from aigw.state.memory import MemoryStore
from aigw.state.redis_store import RedisStore
from aigw.state.store import Store

# Generous for a loaded test machine; production uses REDIS_TIMEOUT_MS (50 ms).
TEST_TIMEOUT_S = 1.0


def redis_store(url: str, *, cluster: bool = False, tls: bool = False, clock=time.monotonic) -> RedisStore:
    return RedisStore(url, tls=tls, cluster=cluster, timeout_s=TEST_TIMEOUT_S, clock=clock)


@pytest.fixture(params=["memory", "redis", "redis-tls", "redis-cluster"])
async def any_store(request, monkeypatch) -> AsyncIterator[Store]:
    """Each store kind in turn, connected and empty."""
    kind = request.param
    store: Store
    if kind == "memory":
        store = MemoryStore(time.monotonic)
    elif kind == "redis":
        store = redis_store(request.getfixturevalue("redis_server").url)
    elif kind == "redis-tls":
        server = request.getfixturevalue("redis_tls_server")
        monkeypatch.setenv("SSL_CERT_FILE", server.ca_file)  # the system trust store, as in production
        store = redis_store(server.url)
    else:
        store = redis_store(request.getfixturevalue("redis_cluster").url, cluster=True)
    connect = getattr(store, "connect", None)
    if connect is not None:
        await connect()
    yield store
    await store.close()


@pytest.fixture
def client():
    """A plain HTTP client for the gateway the test starts."""
    with httpx.Client(timeout=30) as c:
        yield c


@pytest.fixture(params=["embedded", "redis", "redis-tls", "redis-cluster"])
def backend_settings(request, monkeypatch) -> Settings:
    """Gateway settings for each cache store in turn: the behavioural tests run on all four."""
    kind = request.param
    if kind == "embedded":
        return Settings()
    if kind == "redis-tls":
        server = request.getfixturevalue("redis_tls_server")
        monkeypatch.setenv("SSL_CERT_FILE", server.ca_file)  # the system trust store, as in production
    else:
        server = request.getfixturevalue("redis_cluster" if kind == "redis-cluster" else "redis_server")
    return replace(Settings(), cache_store="redis", redis_url=server.url, redis_timeout_ms=500,
                   redis_mode="cluster" if kind == "redis-cluster" else "standalone")
