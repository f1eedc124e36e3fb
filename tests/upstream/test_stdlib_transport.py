"""The http.client transport against a raw loopback server that counts connections and requests."""

import asyncio
import socket

import pytest

from aigw.upstream.stdlib_connection import UpstreamConnection, abort, idle_alive
from aigw.upstream.stdlib_transport import StdlibTransport, _exchange
from aigw.upstream.transport import TransportError
from tests.upstream.raw_server import RawServer

TRUSTED = frozenset({"127.0.0.1"})


async def read_all(response):
    parts = []
    while chunk := await response.next_chunk():
        parts.append(chunk)
    return b"".join(parts)


async def call(transport, port, method="GET", body=None):
    response = await transport.request(method, f"http://127.0.0.1:{port}/v1/models", {}, body)
    return response.status, await read_all(response)


async def test_connections_are_reused():
    server = RawServer()
    transport = StdlibTransport(TRUSTED, 5, pool_size=8, pool_per_host=8)
    for _ in range(3):
        assert await call(transport, server.port) == (200, b"{}")
    assert server.connections == 1
    await transport.close()
    server.close()


async def test_an_idle_connection_the_server_closed_is_replaced_before_anything_is_sent():
    # GIVEN a server that closes each connection after one answer, without saying so
    server = RawServer(close_after=1)
    transport = StdlibTransport(TRUSTED, 5, pool_size=8, pool_per_host=8)
    assert await call(transport, server.port, "POST", b"{}") == (200, b"{}")
    await asyncio.sleep(0.05)  # the server has closed the idle connection meanwhile
    # WHEN the next POST comes THEN it goes out once, on a new connection, and succeeds
    assert await call(transport, server.port, "POST", b"{}") == (200, b"{}")
    assert (server.connections, server.methods) == (2, ["POST", "POST"])
    assert transport.pool_stats().in_use == 0
    server.close()


async def test_a_post_that_reached_the_provider_is_never_sent_twice():
    # GIVEN a server that reads the second request in full, then closes without answering
    server = RawServer(drop_at=2)
    transport = StdlibTransport(TRUSTED, 5, pool_size=8, pool_per_host=8)
    assert await call(transport, server.port, "POST", b'{"n":1}') == (200, b"{}")
    # WHEN a POST goes out on the reused keep-alive connection and no answer comes
    with pytest.raises(TransportError):
        await call(transport, server.port, "POST", b'{"n":2}')
    # THEN it was sent exactly once (it may have been billed), and nothing leaks
    assert [body for _, body in server.requests] == [b'{"n":1}', b'{"n":2}']
    assert server.connections == 1
    assert transport.pool_stats().in_use == 0
    server.close()


async def test_a_get_on_a_reused_connection_that_died_is_sent_once_more():
    server = RawServer(drop_at=2)
    transport = StdlibTransport(TRUSTED, 5, pool_size=8, pool_per_host=8)
    assert await call(transport, server.port) == (200, b"{}")
    assert await call(transport, server.port) == (200, b"{}")  # safe to repeat: repeated on a new connection
    assert (server.methods, server.connections) == (["GET", "GET", "GET"], 2)
    server.close()


async def test_idle_keep_alive_connections_are_kept_up_to_the_per_host_bound():
    server = RawServer(delay_s=0.1)
    transport = StdlibTransport(TRUSTED, 5, pool_size=8, pool_per_host=3)
    for _ in range(2):
        assert await asyncio.gather(*(call(transport, server.port) for _ in range(3))) == [(200, b"{}")] * 3
    assert server.connections == 3  # the second round reused all three
    await transport.close()
    server.close()


@pytest.mark.parametrize("dontwait", [True, False])  # False: platforms without MSG_DONTWAIT
def test_idle_alive_sees_a_closed_or_chattering_peer(monkeypatch, dontwait):
    if not dontwait:
        monkeypatch.setattr("aigw.upstream.stdlib_connection._DONTWAIT", 0)

    def conn_on(sock):
        conn = UpstreamConnection("http", "127.0.0.1", 80, timeout=1, trusted=None, proxy=None, context=None)
        conn.sock = sock
        return conn

    mine, peer = socket.socketpair()
    assert idle_alive(conn_on(mine)) is True
    assert mine.gettimeout() is None  # left blocking, as the transport uses it
    peer.sendall(b"HTTP/1.1 408 Request Timeout\r\n\r\n")  # bytes nobody asked for
    assert idle_alive(conn_on(mine)) is False
    mine2, peer2 = socket.socketpair()
    peer2.close()
    assert idle_alive(conn_on(mine2)) is False
    assert idle_alive(conn_on(None)) is False
    for s in (mine, peer, mine2):
        s.close()


async def test_a_timeout_aborts_the_blocked_call_and_the_transport_stays_usable():
    hanging, healthy = RawServer(hang=True), RawServer()
    transport = StdlibTransport(TRUSTED, 5, pool_size=8, pool_per_host=8)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await call(transport, hanging.port)
    assert transport.pool_stats().in_use == 0
    assert await call(transport, healthy.port) == (200, b"{}")
    hanging.close()
    healthy.close()


async def test_connection_refused_is_a_transport_error_without_the_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    transport = StdlibTransport(TRUSTED, 5, pool_size=8, pool_per_host=8)
    with pytest.raises(TransportError) as info:
        await call(transport, port)
    assert str(port) not in str(info.value)
    assert transport.pool_stats().in_use == 0


async def test_untrusted_loopback_is_refused_at_connect_time():
    server = RawServer()
    with pytest.raises(TransportError):
        await call(StdlibTransport(frozenset(), 5, pool_size=8, pool_per_host=8), server.port)
    assert server.connections == 0
    server.close()


async def test_through_a_proxy_the_connect_timeout_is_not_a_read_timeout(monkeypatch):
    # GIVEN a "proxy" (it answers the absolute-URL request itself) that answers after 1 s
    server = RawServer(delay_s=1.0)
    for name in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
    # WHEN the connect timeout is far shorter than that
    transport = StdlibTransport(TRUSTED, 0.2, pool_size=8, pool_per_host=8)
    response = await transport.request("GET", "http://127.0.0.1:9/v1/models", {}, None)
    # THEN the slow answer still arrives; the proxy was asked in absolute form, Host naming the target
    assert response.status == 200 and await read_all(response) == b"{}"
    head = server.requests[0][0]
    assert head.startswith(b"GET http://127.0.0.1:9/v1/models HTTP/1.1\r\n") and b"\r\nHost: 127.0.0.1:9\r\n" in head + b"\r\n"
    server.close()


async def test_an_abandoned_connection_never_sends_its_request():
    server = RawServer()
    conn = UpstreamConnection("http", "127.0.0.1", server.port, timeout=5, trusted=TRUSTED, proxy=None, context=None)
    abort(conn)  # the gateway gave up while a worker thread was still connecting
    with pytest.raises(ConnectionAbortedError):
        _exchange(conn, "GET", "/v1/models", {}, None)
    assert server.connections == 0
    server.close()


def test_non_ascii_provider_header_values_are_dropped():
    from aigw.calls.provider_request import response_headers

    assert response_headers({"x-region": "caf\xe9", "x-ok": "1", "content-length": "2"}) == {"x-ok": "1"}


async def test_a_whole_body_read_in_one_step_ends_and_frees_its_connection():
    server = RawServer()
    transport = StdlibTransport(TRUSTED, 5, pool_size=8, pool_per_host=8)
    for _ in range(3):
        response = await transport.request("GET", f"http://127.0.0.1:{server.port}/v1/models", {}, None)
        assert await response.next_chunk() == b"{}" and response.ended()
    assert server.connections == 1
    await transport.close()
    server.close()


async def test_a_body_still_arriving_has_not_ended():
    server = RawServer(partial=True)
    transport = StdlibTransport(TRUSTED, 5, pool_size=8, pool_per_host=8)
    response = await transport.request("GET", f"http://127.0.0.1:{server.port}/v1/models", {}, None)
    assert await response.next_chunk() and not response.ended()
    response.close()
    await transport.close()
    server.close()
