"""The ``http.client`` transport, for per-route Lambda functions (one request at a time).

Blocking calls run in the loop's default thread pool, so the async core is unchanged.
One idle keep-alive connection is kept per (scheme, host, port, proxy); a request that
finds its reused connection closed by the server (stale keep-alive after the execution
environment was frozen) is sent once more on a fresh connection, as browsers do.
Hand-written glue over the standard library because the pooled clients (aiohttp, urllib3,
httpx) cost 50-210 ms of import in a function whose whole cold-start budget is 300 ms.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from aigw.custom_host import allowed_addresses
from aigw.upstream.transport import TransportError

T = TypeVar("T")
_CHUNK = 64 * 1024
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
_ERRORS = (OSError, http.client.HTTPException)
Key = tuple[str, str, int, str | None]


def _guarded_socket(host: str, port: int, timeout: float, trusted: frozenset[str]) -> socket.socket:
    """Resolve, keep only the addresses the SSRF guard allows, connect to the first that answers."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    allowed = set(allowed_addresses(host, [info[4][0] for info in infos], trusted))
    last: OSError | None = None
    for family, kind, proto, _, address in infos:
        if address[0] not in allowed:
            continue
        sock = socket.socket(family, kind, proto)
        sock.settimeout(timeout)  # connect timeout only: a model may think for minutes
        try:
            sock.connect(address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(None)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    raise last or OSError(f"could not connect to {host}")


def _check_cancelled(conn: http.client.HTTPConnection) -> None:
    """The caller gave up while this thread was busy (e.g. connecting): do not go on to send."""
    if getattr(conn, "aigw_cancelled", False):
        conn.close()
        raise ConnectionAbortedError("request abandoned by the gateway")


class _GuardedHTTPConnection(http.client.HTTPConnection):
    trusted: frozenset[str] = frozenset()

    def connect(self) -> None:
        self.sock = _guarded_socket(self.host, self.port, self.timeout, self.trusted)  # type: ignore[arg-type]
        _check_cancelled(self)


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    trusted: frozenset[str] = frozenset()

    def connect(self) -> None:
        sock = _guarded_socket(self.host, self.port, self.timeout, self.trusted)  # type: ignore[arg-type]
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]
        _check_cancelled(self)


class _ProxiedHTTPConnection(http.client.HTTPConnection):
    """To an egress proxy (configured egress, not user input, so not address-checked): the
    connect timeout must not stay on as the read timeout."""

    def connect(self) -> None:
        super().connect()
        self.sock.settimeout(None)
        _check_cancelled(self)


class _ProxiedHTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()  # CONNECT tunnel through the proxy, then TLS to the provider
        self.sock.settimeout(None)
        _check_cancelled(self)


class _Response:
    def __init__(self, transport: StdlibTransport, key: Key, conn: http.client.HTTPConnection,
                 raw: http.client.HTTPResponse, prefetched: bytes | None) -> None:
        self._transport, self._key, self._conn, self._raw = transport, key, conn, raw
        self._done = False  # the body was read to its end and the connection given back
        self._prefetched = prefetched
        self.status = raw.status
        self.headers = {k.lower(): v for k, v in raw.getheaders()}

    async def next_chunk(self) -> bytes:
        if self._done:
            return b""
        if self._prefetched is not None:
            # A small body read whole along with the headers: no second thread hop.
            chunk, self._prefetched = self._prefetched, None
            self._finish()
            return chunk
        try:
            chunk = await _in_thread(self._conn, self._raw.read1, _CHUNK)
        except _ERRORS as exc:
            self.close()
            raise TransportError(type(exc).__name__) from exc
        if not chunk:
            self._raw.read()  # at the end already (no I/O): marks the response closed, for reuse
            self._finish()
        return chunk

    def _finish(self) -> None:
        self._done = True
        self._transport.give_back(self._key, self._conn, self._raw)

    def close(self) -> None:
        if not self._done:
            _abort(self._conn)


def _abort(conn: http.client.HTTPConnection) -> None:
    """Close a connection another thread may be blocked on (shutdown wakes a blocked recv; the
    flag stops a thread still connecting from sending the request afterwards)."""
    conn.aigw_cancelled = True  # type: ignore[attr-defined]
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    conn.close()


async def _in_thread(conn: http.client.HTTPConnection, fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking call in the pool; if the caller gives up (timeout, client gone), abort the connection."""
    try:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
    except asyncio.CancelledError:
        _abort(conn)
        raise


class StdlibTransport:
    def __init__(self, trusted_hosts: frozenset[str], connect_timeout_s: float) -> None:
        self._connect_timeout_s = connect_timeout_s
        # Built once per execution environment: loading the CA store is most of its cost.
        self._ssl = ssl.create_default_context()
        self._ssl.set_alpn_protocols(["http/1.1"])
        self._idle: dict[Key, http.client.HTTPConnection] = {}
        self._lock = threading.Lock()
        self._http = type("GuardedHTTP", (_GuardedHTTPConnection,), {"trusted": trusted_hosts})
        self._https = type("GuardedHTTPS", (_GuardedHTTPSConnection,), {"trusted": trusted_hosts})

    def give_back(self, key: Key, conn: http.client.HTTPConnection, raw: http.client.HTTPResponse) -> None:
        if raw.will_close or not raw.isclosed():
            conn.close()
            return
        with self._lock:
            old = self._idle.pop(key, None)
            self._idle[key] = conn
        if old is not None:
            old.close()

    def _connection(self, scheme: str, host: str, port: int) -> tuple[Key, http.client.HTTPConnection, bool]:
        proxy = _proxy_for(scheme, host)
        key = (scheme, host, port, proxy)
        with self._lock:
            conn = self._idle.pop(key, None)
        if conn is not None:
            return key, conn, True
        timeout = self._connect_timeout_s
        if proxy is not None:
            proxy_url = urlsplit(proxy)
            conn = _ProxiedHTTPConnection(proxy_url.hostname or "", proxy_url.port or 80, timeout=timeout) \
                if scheme == "http" else \
                _ProxiedHTTPSConnection(proxy_url.hostname or "", proxy_url.port or 80, timeout=timeout, context=self._ssl)
            if scheme == "https":
                conn.set_tunnel(host, port)
        elif scheme == "https":
            conn = self._https(host, port, timeout=timeout, context=self._ssl)
        else:
            conn = self._http(host, port, timeout=timeout)
        return key, conn, False

    async def request(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> _Response:
        parts = urlsplit(url)
        scheme, host = parts.scheme, parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        while True:
            key, conn, reused = self._connection(scheme, host, port)
            path = url if (key[3] is not None and scheme == "http") else target
            try:
                raw, prefetched = await _in_thread(conn, _exchange, conn, method, path, headers, body)
            except _STALE as exc:
                conn.close()
                if reused:
                    continue  # the server closed an idle connection: once more on a new one
                raise TransportError(type(exc).__name__) from exc
            except _ERRORS as exc:
                conn.close()
                raise TransportError(type(exc).__name__) from exc
            return _Response(self, key, conn, raw, prefetched)

    async def close(self) -> None:
        with self._lock:
            idle, self._idle = list(self._idle.values()), {}
        for conn in idle:
            conn.close()


def _exchange(conn: http.client.HTTPConnection, method: str, path: str, headers: dict[str, str],
              body: bytes | None) -> tuple[http.client.HTTPResponse, bytes | None]:
    """Send the request and read the head; a small body of known length is read too, in the same
    thread hop (each hop costs a loop round trip on a Lambda's one request)."""
    _check_cancelled(conn)
    conn.request(method, path, body=body, headers=headers)
    raw = conn.getresponse()
    if raw.length is not None and raw.length <= _CHUNK:
        return raw, raw.read()
    return raw, None


def _env(name: str) -> str | None:
    return os.environ.get(name.lower()) or os.environ.get(name.upper()) or None


def _proxy_for(scheme: str, host: str) -> str | None:
    """HTTP(S)_PROXY honouring NO_PROXY (comma-separated hosts or domain suffixes, or "*"),
    the convention aiohttp's trust_env and curl follow. (urllib.request has this, at ~25 ms of import.)"""
    proxy = _env(f"{scheme}_proxy")
    if not proxy:
        return None
    for entry in (_env("no_proxy") or "").split(","):
        entry = entry.strip().lower().lstrip(".")
        if entry == "*" or (entry and (host == entry or host.endswith("." + entry))):
            return None
    return proxy


def create(trusted_hosts: frozenset[str], pool_size: int, connect_timeout_s: float) -> StdlibTransport:
    return StdlibTransport(trusted_hosts, connect_timeout_s)
