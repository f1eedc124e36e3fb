"""The http.client transport against a raw loopback server that counts connections."""

import asyncio
import socket
import threading
import time

import pytest

from aigw.upstream.stdlib_transport import StdlibTransport, _proxy_for
from aigw.upstream.transport import TransportError


async def read_all(response):
    parts = []
    while chunk := await response.next_chunk():
        parts.append(chunk)
    return b"".join(parts)

TRUSTED = frozenset({"127.0.0.1"})
OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


class RawServer:
    """Answers each request with OK; `close_after` closes a connection after that many answers
    without saying so (a stale keep-alive); `hang` never answers."""

    def __init__(self, close_after=None, hang=False, delay_s=0.0):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.close_after, self.hang, self.delay_s = close_after, hang, delay_s
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        answered = 0
        with conn:
            buf = b""
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    _, buf = buf.split(b"\r\n\r\n", 1)
                    if self.hang:
                        continue
                    time.sleep(self.delay_s)
                    conn.sendall(OK)
                    answered += 1
                    if self.close_after and answered >= self.close_after:
                        return

    def close(self):
        self.sock.close()


async def get(transport, port):
    response = await transport.request("GET", f"http://127.0.0.1:{port}/v1/models", {}, None)
    return response.status, await read_all(response)


async def test_connections_are_reused():
    server = RawServer()
    transport = StdlibTransport(TRUSTED, 5)
    for _ in range(3):
        assert await get(transport, server.port) == (200, b"{}")
    assert server.connections == 1
    await transport.close()
    server.close()


async def test_a_stale_keep_alive_is_retried_once_on_a_new_connection():
    server = RawServer(close_after=1)
    transport = StdlibTransport(TRUSTED, 5)
    assert await get(transport, server.port) == (200, b"{}")
    await asyncio.sleep(0.05)  # the server has closed the idle connection meanwhile
    assert await get(transport, server.port) == (200, b"{}")
    assert server.connections == 2
    server.close()


async def test_a_timeout_aborts_the_blocked_call_and_the_transport_stays_usable():
    hanging, healthy = RawServer(hang=True), RawServer()
    transport = StdlibTransport(TRUSTED, 5)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await get(transport, hanging.port)
    assert await get(transport, healthy.port) == (200, b"{}")
    hanging.close()
    healthy.close()


async def test_connection_refused_is_a_transport_error_without_the_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(TransportError) as info:
        await get(StdlibTransport(TRUSTED, 5), port)
    assert str(port) not in str(info.value)


async def test_untrusted_loopback_is_refused_at_connect_time():
    server = RawServer()
    with pytest.raises(TransportError):
        await get(StdlibTransport(frozenset(), 5), server.port)
    assert server.connections == 0
    server.close()


@pytest.mark.parametrize(
    "env, scheme, host, expected",
    [
        ({}, "https", "api.openai.com", None),
        ({"HTTPS_PROXY": "http://proxy:3128"}, "https", "api.openai.com", "http://proxy:3128"),
        ({"https_proxy": "http://p:1"}, "https", "api.openai.com", "http://p:1"),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "openai.com,localhost"}, "https", "api.openai.com", None),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "*"}, "https", "x.example", None),
        ({"HTTP_PROXY": "http://p:1"}, "https", "api.openai.com", None),
        ({"HTTP_PROXY": "http://p:1", "NO_PROXY": "example.org"}, "http", "notexample.com", "http://p:1"),
    ],
)
def test_proxy_from_environment(monkeypatch, env, scheme, host, expected):
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert _proxy_for(scheme, host) == expected


async def test_through_a_proxy_the_connect_timeout_is_not_a_read_timeout(monkeypatch):
    # GIVEN a "proxy" (it answers the absolute-URL request itself) that answers after 1 s
    server = RawServer(delay_s=1.0)
    for name in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
    # WHEN the connect timeout is far shorter than that
    transport = StdlibTransport(TRUSTED, 0.2)
    response = await transport.request("GET", "http://provider.example/v1/models", {}, None)
    # THEN the slow answer still arrives
    assert response.status == 200 and await read_all(response) == b"{}"
    server.close()


async def test_an_abandoned_connection_never_sends_its_request():
    from aigw.upstream.stdlib_transport import _abort, _exchange

    server = RawServer()
    transport = StdlibTransport(TRUSTED, 5)
    _, conn, _ = transport._connection("http", "127.0.0.1", server.port)
    _abort(conn)  # the gateway gave up while a worker thread was still connecting
    with pytest.raises(ConnectionAbortedError):
        _exchange(conn, "GET", "/v1/models", {}, None)
    assert server.connections == 0
    server.close()


def test_non_ascii_provider_header_values_are_dropped():
    from aigw.upstream.attempt import response_headers

    assert response_headers({"x-region": "caf\xe9", "x-ok": "1", "content-length": "2"}) == {"x-ok": "1"}
