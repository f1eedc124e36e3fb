"""The connect-time half of the SSRF guard: what a hostname resolves to is checked too.

``aigw.custom_host`` judges the URL a client sends without DNS; a public-looking name can
still resolve to 10.x or to the metadata address (or rebind to it later). This resolver
wraps aiohttp's and drops every non-public address of a name that is not trusted, before
aiohttp connects. IP literals never reach a resolver: the URL guard has judged them.
"""

from __future__ import annotations

import socket
from ipaddress import ip_address

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from aigw.custom_host import ip_refusal, is_trusted


class GuardedResolver(AbstractResolver):
    def __init__(self, trusted_hosts: frozenset[str], inner: AbstractResolver | None = None) -> None:
        self._trusted = trusted_hosts
        self._inner = inner if inner is not None else DefaultResolver()

    def _allowed(self, address: str) -> bool:
        try:
            ip = ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        return ip_refusal(ip) is None or is_trusted(ip, self._trusted)

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if is_trusted(host.lower().rstrip("."), self._trusted):
            return results
        allowed = [r for r in results if self._allowed(r["host"])]
        if not allowed:
            # aiohttp reports this as a connection (DNS) error: the attempt becomes a 502.
            raise OSError(f"{host} resolves only to non-public addresses")
        return allowed

    async def close(self) -> None:
        await self._inner.close()
