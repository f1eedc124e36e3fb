"""The ``http.client`` transport, for per-route Lambda functions (one request at a time).

Blocking calls run in the transport's own thread pool, as large as the connection pool (a
connection in use occupies at most one thread), so a host that never answers cannot take the
threads the other hosts need either; the async core is unchanged. Connections are bounded
in total and per host, and idle keep-alive ones are kept per host (``pool``). Connecting,
sending and reading the head (and a small body) is one thread hop.

A request is sent again only when it provably did not reach the provider, or is safe to
repeat: an idle connection is checked (a non-blocking peek) before reuse, so one the server
closed while the function was frozen is replaced before anything goes out on it. If a reused
connection still breaks after the request was written, only GET and HEAD are sent once more:
a POST may already have reached the provider (and been billed).

Hand-written glue over the standard library because the pooled clients (aiohttp, urllib3,
httpx) cost 50-210 ms of import in a function whose whole cold-start budget is 300 ms.
"""

from __future__ import annotations

import asyncio
import http.client
import ssl
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from aigw.upstream import proxy_env
from aigw.upstream.pool import Pool
from aigw.upstream.proxy_env import Proxy
from aigw.upstream.stdlib_connection import UpstreamConnection, abort, idle_alive
from aigw.upstream.transport import TransportError

if TYPE_CHECKING:
    from aigw.upstream.pool_stats import PoolStats

T = TypeVar("T")
_CHUNK = 64 * 1024
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
_ERRORS = (OSError, http.client.HTTPException)
_RESENDABLE = frozenset({"GET", "HEAD"})  # safe methods: sending one twice changes nothing
Key = tuple[str, str, int, Proxy | None]


class _Response:
    __slots__ = ("_transport", "_key", "_conn", "_raw", "_prefetched", "status", "headers")

    def __init__(self, transport: StdlibTransport, key: Key, conn: UpstreamConnection | None,
                 raw: http.client.HTTPResponse, prefetched: bytes | None) -> None:
        # ``conn`` is None when the body was read with the head: the connection is back in the pool.
        self._transport, self._key, self._conn, self._raw = transport, key, conn, raw
        self._prefetched = prefetched
        self.status = raw.status
        self.headers = {k.lower(): v for k, v in raw.getheaders()}

    async def next_chunk(self) -> bytes:
        if self._prefetched is not None:
            chunk, self._prefetched = self._prefetched, None
            return chunk
        conn = self._conn
        if conn is None:
            return b""
        try:
            chunk = await self._transport.in_thread(self._raw.read1, _CHUNK)
        except BaseException as exc:  # cancellation too: the connection is half-read
            self.close()
            if isinstance(exc, _ERRORS):
                raise TransportError(type(exc).__name__) from exc
            raise
        if not chunk:
            self._raw.read()  # at the end already (no I/O): marks the response closed, for reuse
            self._conn = None
            self._transport.give_back(self._key, conn, self._raw)
        return chunk

    def ended(self) -> bool:
        return self._prefetched is None and self._conn is None

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._transport.discard(self._key, conn)


class StdlibTransport:
    def __init__(self, trusted_hosts: frozenset[str] | None, connect_timeout_s: float, *,
                 pool_size: int, pool_per_host: int) -> None:
        self._trusted = trusted_hosts
        self._connect_timeout_s = connect_timeout_s
        self._proxies = proxy_env.from_env()
        # Built once per execution environment: loading the CA store is most of its cost.
        self._ssl = ssl.create_default_context()
        self._ssl.set_alpn_protocols(["http/1.1"])
        self._pool: Pool[Key, UpstreamConnection] = Pool(pool_size, pool_per_host, idle_alive, _close)
        self._threads = max(1, pool_size)
        self._executor: Executor | None = None

    async def request(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> _Response:
        parts = urlsplit(url)
        scheme, host = parts.scheme, parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        proxy = self._proxies.select(scheme, host) if self._proxies else None
        key = (scheme, host, port, proxy)
        resend = method in _RESENDABLE
        while True:
            conn = await self._pool.acquire(key, self._connect_timeout_s)
            reused = conn is not None
            try:
                if conn is None:
                    conn = UpstreamConnection(scheme, host, port, timeout=self._connect_timeout_s,
                                              trusted=self._trusted, proxy=proxy, context=self._ssl)
                raw, prefetched = await self.in_thread(_exchange, conn, method, path, headers, body)
            except BaseException as exc:  # cancellation too: never leave a slot or a socket behind
                if conn is None:
                    self._pool.release(key, None, False)
                else:
                    self.discard(key, conn)
                if reused and resend and isinstance(exc, _STALE):
                    resend = False
                    continue  # a safe request on a connection that died under it: once more, on a new one
                if isinstance(exc, _ERRORS):
                    raise TransportError(type(exc).__name__) from exc
                raise
            if prefetched is None:
                return _Response(self, key, conn, raw, None)
            self.give_back(key, conn, raw)
            return _Response(self, key, None, raw, prefetched)

    def give_back(self, key: Key, conn: UpstreamConnection, raw: http.client.HTTPResponse) -> None:
        """A response read to its end: its connection is kept for the next request, unless it is closing."""
        self._pool.release(key, conn, raw.isclosed() and not raw.will_close)

    def discard(self, key: Key, conn: UpstreamConnection) -> None:
        """Abandon a connection in use (a worker thread may be blocked on it) and free its slot."""
        abort(conn)
        self._pool.release(key, None, False)

    async def in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            from concurrent.futures import ThreadPoolExecutor  # on first use: not in the import time

            self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix="aigw-upstream")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def pool_stats(self) -> PoolStats:
        return self._pool.stats()

    async def close(self) -> None:
        self._pool.close_idle()
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)


def _close(conn: UpstreamConnection) -> None:
    conn.close()


def _exchange(conn: UpstreamConnection, method: str, path: str, headers: dict[str, str],
              body: bytes | None) -> tuple[http.client.HTTPResponse, bytes | None]:
    """Connect if new, send the request and read the head; a small body of known length is read
    too, in the same thread hop (each hop costs a loop round trip on a Lambda's one request)."""
    conn.send_request(method, path, headers, body)
    raw = conn.getresponse()
    if raw.length is not None and raw.length <= _CHUNK:
        return raw, raw.read()
    return raw, None


def create(trusted_hosts: frozenset[str] | None, pool_size: int, pool_per_host: int,
           connect_timeout_s: float) -> StdlibTransport:
    return StdlibTransport(trusted_hosts, connect_timeout_s, pool_size=pool_size, pool_per_host=pool_per_host)
