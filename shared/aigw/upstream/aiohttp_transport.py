"""The aiohttp transport: one pooled session per event loop, created on first use (never at import).

The egress proxy is chosen here (``proxy_env``), not by aiohttp's trust_env, which looks
proxies (and ~/.netrc) up in a thread on every request. With the SSRF guard on, the host of
a proxied request is resolved and checked here and aiohttp is handed the checked IP
("pinned"): the proxy is asked for that IP (CONNECT ip:port, or an absolute-form URL),
while TLS verifies the certificate against the name (server_hostname) and Host names it.
aiohttp keys its pool by server_hostname too, so a pinned TLS connection serves only its name.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver
from yarl import URL

from aigw.upstream import proxy_env
from aigw.upstream.resolver import GuardedResolver
from aigw.upstream.transport import TransportError

if TYPE_CHECKING:
    from aigw.upstream.pool_stats import PoolStats


class _Response:
    __slots__ = ("_raw", "status", "headers")

    def __init__(self, raw: aiohttp.ClientResponse) -> None:
        self._raw = raw
        self.status = raw.status
        self.headers = {k.lower(): v for k, v in raw.headers.items()}

    async def next_chunk(self) -> bytes:
        try:
            chunk = await self._raw.content.readany()
        except (aiohttp.ClientError, OSError) as exc:
            self._raw.close()
            raise TransportError(type(exc).__name__) from exc
        except asyncio.CancelledError:
            self._raw.close()  # half-read: the connection cannot go back to the pool
            raise
        if not chunk:
            self._raw.release()  # read to its end: the connection goes back to the pool
        return chunk

    def ended(self) -> bool:
        if self._raw.content.at_eof():
            self._raw.release()
            return True
        return False

    def close(self) -> None:
        self._raw.close()


class AiohttpTransport:
    def __init__(self, trusted_hosts: frozenset[str] | None, pool_size: int, pool_per_host: int,
                 connect_timeout_s: float) -> None:
        self._trusted = trusted_hosts
        self._pool_size, self._pool_per_host = max(1, pool_size), max(1, pool_per_host)
        self._connect_timeout_s = connect_timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._proxies = proxy_env.from_env()  # here, so that a malformed proxy URL fails at startup
        self._guard: GuardedResolver | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            resolver: AbstractResolver
            if self._trusted is None:
                resolver, self._guard = DefaultResolver(), None
            else:
                resolver = self._guard = GuardedResolver(self._trusted, egress_hosts=self._proxies.hosts)
            connector = aiohttp.TCPConnector(
                limit=self._pool_size, limit_per_host=self._pool_per_host, ttl_dns_cache=300, resolver=resolver
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # connect: waiting for a pool slot plus connecting, so a saturated pool fails in time.
                timeout=aiohttp.ClientTimeout(total=None, connect=self._connect_timeout_s,
                                              sock_connect=self._connect_timeout_s),
                skip_auto_headers=("User-Agent",),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            )
            self._loop = loop
        return self._session

    async def request(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> _Response:
        session = self._get_session()
        target: str | URL = url
        proxy: str | None = None
        server_hostname: str | None = None
        try:
            if self._proxies:  # parsed only where an egress proxy is configured
                parsed = URL(url)
                host = parsed.host or ""
                chosen = self._proxies.select(parsed.scheme, host)
                proxy = chosen.url if chosen is not None else None
                # A client's host that is also a proxy's name must not get the proxy's exemption.
                if self._guard is not None and (chosen is not None or host in self._proxies.hosts):
                    target, headers, server_hostname = await self._pin(self._guard, parsed, headers)
            raw = await session.request(method, target, data=body, headers=headers, allow_redirects=False,
                                        proxy=proxy, server_hostname=server_hostname)
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportError(type(exc).__name__) from exc
        return _Response(raw)

    @staticmethod
    async def _pin(guard: GuardedResolver, url: URL, headers: dict[str, str]) -> tuple[URL, dict[str, str], str | None]:
        """The URL with its host replaced by a checked address; Host and TLS keep the name."""
        host = url.host or ""
        checked = await guard.resolve_checked(host, url.port or 0, socket.AF_UNSPEC)
        server_hostname = host.rstrip(".") if url.scheme == "https" else None
        return url.with_host(checked[0]["host"]), {**headers, "Host": url.host_port_subcomponent or host}, server_hostname

    def pool_stats(self) -> PoolStats:
        from aigw.upstream.pool_stats import PoolStats

        # aiohttp has no public counters: these are its connector's own books (pinned by a test).
        connector = self._session.connector if self._session is not None and not self._session.closed else None
        acquired = getattr(connector, "_acquired", ())
        per_host = getattr(connector, "_acquired_per_host", {})
        waiters = getattr(connector, "_waiters", {})
        return PoolStats(in_use=len(acquired), limit=self._pool_size,
                         busiest_host_in_use=max(map(len, per_host.values()), default=0),
                         per_host_limit=self._pool_per_host, waiting=sum(map(len, waiters.values())))

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def create(trusted_hosts: frozenset[str] | None, pool_size: int, pool_per_host: int,
           connect_timeout_s: float) -> AiohttpTransport:
    return AiohttpTransport(trusted_hosts, pool_size, pool_per_host, connect_timeout_s)
