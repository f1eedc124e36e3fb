"""The aiohttp transport: one pooled session per event loop, created on first use (never at import)."""

from __future__ import annotations

import asyncio
import os

import aiohttp

from aigw.upstream.resolver import GuardedResolver
from aigw.upstream.transport import TransportError


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
            raise TransportError(type(exc).__name__) from exc
        if not chunk:
            self._raw.release()  # read to its end: the connection goes back to the pool
        return chunk

    def close(self) -> None:
        self._raw.close()


def _proxies_configured() -> bool:
    # trust_env makes aiohttp look up proxies (and ~/.netrc) on every request: measured here it
    # doubled the gateway's CPU per request. Only pay for it where an egress proxy is set.
    return any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"))


class AiohttpTransport:
    def __init__(self, trusted_hosts: frozenset[str], pool_size: int, connect_timeout_s: float) -> None:
        self._trusted = trusted_hosts
        self._pool_size = pool_size
        self._connect_timeout_s = connect_timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            connector = aiohttp.TCPConnector(
                limit=self._pool_size, ttl_dns_cache=300, resolver=GuardedResolver(self._trusted)
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout_s),
                skip_auto_headers=("User-Agent",),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=_proxies_configured(),
            )
            self._loop = loop
        return self._session

    async def request(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> _Response:
        session = self._get_session()
        try:
            raw = await session.request(method, url, data=body, headers=headers, allow_redirects=False)
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportError(type(exc).__name__) from exc
        return _Response(raw)

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def create(trusted_hosts: frozenset[str], pool_size: int, connect_timeout_s: float) -> AiohttpTransport:
    return AiohttpTransport(trusted_hosts, pool_size, connect_timeout_s)
