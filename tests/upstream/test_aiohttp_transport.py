import pytest

from aigw.upstream.aiohttp_transport import AiohttpTransport
from aigw.upstream.transport import TransportError
from tests.upstream.raw_server import RawServer

PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy")


async def read_all(response):
    parts = []
    while chunk := await response.next_chunk():
        parts.append(chunk)
    return b"".join(parts)


async def test_connection_refused_is_a_transport_error_and_the_pool_is_reused(fake_provider):
    transport = AiohttpTransport(frozenset({"127.0.0.1"}), pool_size=4, pool_per_host=4, connect_timeout_s=5)
    for _ in range(3):
        r = await transport.request("GET", fake_provider.base_url + "/v1/models", {"authorization": "Bearer sk-x-0123456"}, None)
        assert r.status == 200 and (await read_all(r)).startswith(b"{")
    connector = transport._session.connector  # one keep-alive connection served all three
    assert sum(len(v) for v in connector._conns.values()) == 1
    with pytest.raises(TransportError):
        await transport.request("GET", "http://127.0.0.1:1/v1/models", {}, None)
    await transport.close()


async def test_the_proxy_comes_from_proxy_env_not_aiohttps_per_request_lookup(monkeypatch):
    # GIVEN a "proxy" (it answers the absolute-URL request itself)
    server = RawServer()
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
    transport = AiohttpTransport(frozenset({"127.0.0.1"}), pool_size=4, pool_per_host=4, connect_timeout_s=5)
    # WHEN a plain-http provider is called
    response = await transport.request("GET", "http://127.0.0.1:9/v1/models", {}, None)
    assert response.status == 200 and await read_all(response) == b"{}"
    # THEN the proxy was asked in absolute form for the checked address, Host naming the target
    head = server.requests[0][0]
    assert head.startswith(b"GET http://127.0.0.1:9/v1/models HTTP/1.1\r\n")
    assert b"\r\nHost: 127.0.0.1:9\r\n" in head + b"\r\n"
    assert transport._session.trust_env is False
    await transport.close()
    server.close()


async def test_a_whole_body_read_in_one_step_ends_and_frees_its_connection(fake_provider):
    # GIVEN answers small enough to arrive in one read
    transport = AiohttpTransport(frozenset({"127.0.0.1"}), pool_size=4, pool_per_host=4, connect_timeout_s=5)
    for _ in range(3):
        r = await transport.request("GET", fake_provider.base_url + "/v1/models", {"authorization": "Bearer sk-x-0123456"}, None)
        # WHEN one chunk is read: the body is complete, no second read needed
        assert (await r.next_chunk()).endswith(b"}")
        assert r.ended()
    # THEN each connection went back to the pool: one served all three
    assert sum(len(v) for v in transport._session.connector._conns.values()) == 1
    await transport.close()


async def test_a_body_still_arriving_has_not_ended():
    server = RawServer(partial=True)
    transport = AiohttpTransport(None, pool_size=4, pool_per_host=4, connect_timeout_s=5)
    r = await transport.request("GET", f"http://127.0.0.1:{server.port}/", {}, None)
    assert await r.next_chunk() and not r.ended()
    r.close()
    await transport.close()
    server.close()
