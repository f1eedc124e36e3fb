"""Root fixtures. Keep small: feature-specific fixtures belong in sub-folder conftest files."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.fakes.provider_server import FakeProvider

if TYPE_CHECKING:  # imported in the fixtures: `import redis` costs ~0.2 s, paid only by tests using Redis
    from tests.support.redis_servers import RedisCluster, RedisServer, TlsFiles


@pytest.fixture(scope="session")
def fake_provider_server() -> Iterator[FakeProvider]:
    """One fake provider server (OpenAI / Azure / Anthropic wire formats) for the whole session."""
    with FakeProvider() as server:
        yield server


@pytest.fixture
def fake_provider(fake_provider_server: FakeProvider) -> Iterator[FakeProvider]:
    """The session fake provider, with scripts and recorded requests cleared for this test."""
    fake_provider_server.reset()
    yield fake_provider_server


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh, empty redis-server on a free loopback port (``.url``, ``.kill()``, ``.restart()``)."""
    from tests.support.redis_servers import RedisServer

    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A throwaway CA and a certificate it signed for 127.0.0.1 and localhost."""
    from tests.support.redis_servers import make_tls_files

    return make_tls_files(tmp_path_factory.mktemp("redis-tls"))


@pytest.fixture
def redis_tls_server(redis_tls_files: TlsFiles) -> Iterator[RedisServer]:
    """A fresh TLS-only redis-server (``rediss://`` ``.url``); trust it through ``.ca_file``."""
    from tests.support.redis_servers import RedisServer

    with RedisServer(tls=redis_tls_files) as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster_session() -> Iterator[RedisCluster]:
    """The session's three-master Redis Cluster (slow to form: ~2 s). Tests take ``redis_cluster``."""
    from tests.support.redis_servers import RedisCluster

    with RedisCluster() as cluster:
        yield cluster


@pytest.fixture
def redis_cluster(redis_cluster_session: RedisCluster) -> RedisCluster:
    """The session cluster, emptied for this test (and formed again first if a test left it down)."""
    redis_cluster_session.reset()
    return redis_cluster_session
