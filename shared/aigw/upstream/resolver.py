"""The connect-time half of the SSRF guard: what a hostname resolves to is checked too.

``aigw.custom_host`` judges the URL a client sends without DNS; a public-looking name can
still resolve to 10.x or to the metadata address (or rebind to it later). This resolver
wraps aiohttp's and drops every non-public address of a name that is not trusted, before
aiohttp connects. IP literals never reach a resolver: the URL guard has judged them.

The egress proxies' own names are the exception: configured by the operator, never by a
client, they may be private. The transport makes sure no client-supplied host reaches
``resolve`` under such a name (it resolves those with ``resolve_checked`` itself).
"""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from aigw.custom_host import allowed_addresses


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, with ``allowed_addresses`` applied to every answer but the proxies'."""

    def __init__(self, trusted_hosts: frozenset[str], inner: AbstractResolver | None = None, *,
                 egress_hosts: frozenset[str] = frozenset()) -> None:
        self._trusted = trusted_hosts
        self._inner = inner if inner is not None else DefaultResolver()
        self._egress = egress_hosts

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if host in self._egress:
            return await self._inner.resolve(host, port, family)
        return await self.resolve_checked(host, port, family)

    async def resolve_checked(self, host: str, port: int = 0,
                              family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        keep = set(allowed_addresses(host, [r["host"] for r in results], self._trusted))
        return [r for r in results if r["host"] in keep]

    async def close(self) -> None:
        await self._inner.close()
