"""The real-Redis fixtures (tests/support/redis_servers.py), checked with redis-py."""

from __future__ import annotations

import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster

from tests.support.redis_servers import HOST, RedisCluster, RedisServer, no_retries


def test_a_standalone_server_answers_and_keeps_values(redis_server: RedisServer) -> None:
    # GIVEN a client built from the fixture's URL
    assert redis_server.url == f"redis://{HOST}:{redis_server.port}"
    with redis.Redis.from_url(redis_server.url, retry=no_retries()) as client:
        # WHEN a value is written
        assert client.ping()
        client.set("greeting", "hi")
        # THEN it reads back
        assert client.get("greeting") == b"hi"


def test_kill_fails_commands_and_restart_serves_again_on_the_same_port_empty(redis_server: RedisServer) -> None:
    # GIVEN a connected client and a stored value
    url = redis_server.url
    with redis.Redis.from_url(url, retry=no_retries(), socket_timeout=2) as client:
        client.set("greeting", "hi")
        # WHEN the server is killed
        redis_server.kill()
        # THEN commands fail at once
        assert not redis_server.running
        with pytest.raises(redis.ConnectionError):
            client.ping()
        # WHEN it is restarted
        redis_server.restart()
        # THEN the same client reconnects to the same URL, and the data is gone
        assert redis_server.url == url
        assert client.ping()
        assert client.get("greeting") is None


def test_the_tls_server_refuses_plaintext(redis_tls_server: RedisServer) -> None:
    # GIVEN a plaintext client aimed at the TLS port
    with redis.Redis(host=HOST, port=redis_tls_server.port, retry=no_retries(), socket_timeout=2) as client:
        # WHEN it pings THEN the server closes the connection
        with pytest.raises(redis.ConnectionError):
            client.ping()


def test_the_tls_server_accepts_tls_verified_against_the_generated_ca(redis_tls_server: RedisServer) -> None:
    # GIVEN a TLS client trusting only the generated CA (hostname checked against the IP SAN)
    assert redis_tls_server.url == f"rediss://{HOST}:{redis_tls_server.port}"
    with redis.Redis.from_url(redis_tls_server.url, ssl_ca_certs=redis_tls_server.ca_file,
                              retry=no_retries()) as client:
        # WHEN a value is written THEN it reads back
        client.set("greeting", "hi")
        assert client.get("greeting") == b"hi"


async def test_the_tls_server_is_trusted_through_ssl_cert_file_only(redis_tls_server: RedisServer,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an asyncio client using the default trust store, as the gateway does
    url = redis_tls_server.url
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    untrusting = redis.asyncio.Redis.from_url(url, retry=no_retries())
    # WHEN the generated CA is not in it THEN verification fails
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        await untrusting.ping()
    await untrusting.aclose()
    # WHEN SSL_CERT_FILE names the CA THEN the same kind of client connects
    monkeypatch.setenv("SSL_CERT_FILE", redis_tls_server.ca_file)
    trusting = redis.asyncio.Redis.from_url(url, retry=no_retries())
    try:
        assert await trusting.ping()
    finally:
        await trusting.aclose()


async def test_the_cluster_client_spreads_keys_over_every_node_and_reads_them_back(redis_cluster: RedisCluster) -> None:
    # GIVEN a cluster client configured with the first node only (the configuration endpoint)
    client = redis.asyncio.cluster.RedisCluster.from_url(redis_cluster.url, retry=no_retries())
    try:
        await client.initialize()  # reads the slot map, which get_node_from_key needs
        keys = [f"key:{i}" for i in range(12)]
        ports = {client.get_node_from_key(key).port for key in keys}  # type: ignore[union-attr]
        assert ports == {node.port for node in redis_cluster.nodes}  # the keys land on all three masters
        # WHEN each key is written
        for key in keys:
            await client.set(key, key.upper())
        # THEN each reads back, and every node holds some of them
        assert [await client.get(key) for key in keys] == [key.upper().encode() for key in keys]
    finally:
        await client.aclose()
    for node in redis_cluster.nodes:
        with node.client() as direct:
            assert 0 < direct.dbsize() < len(keys)


def test_a_killed_cluster_fails_commands_and_works_again_once_restarted(redis_cluster: RedisCluster) -> None:
    # GIVEN a cluster client that has discovered the slots, and a stored value
    with redis.cluster.RedisCluster.from_url(redis_cluster.url, retry=no_retries()) as client:
        client.set("greeting", "hi")
        # WHEN every node is killed THEN commands fail
        redis_cluster.kill()
        with pytest.raises((redis.RedisError, redis.exceptions.RedisClusterException)):
            client.get("greeting")
        # WHEN the cluster is restarted (same ports, same slot ranges, empty)
        redis_cluster.restart()
        # THEN the same client works again
        assert client.get("greeting") is None
        client.set("greeting", "again")
        assert client.get("greeting") == b"again"


def test_the_cluster_fixture_starts_each_test_empty_and_ok(redis_cluster: RedisCluster) -> None:
    # GIVEN the session cluster after the tests above wrote to it and killed it
    # THEN every node is up, in cluster_state:ok, and empty
    assert redis_cluster.healthy()
    for node in redis_cluster.nodes:
        with node.client() as direct:
            assert direct.dbsize() == 0
