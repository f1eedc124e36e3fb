"""How the gateway talks HTTP to providers: a small interface with two implementations.

- ``aiohttp`` (``aiohttp_transport``): one pooled ``ClientSession`` per event loop, for the
  concurrent servers (local, Lambda Web Adapter). Measured here as a bare pass-through:
  ~0.6 ms p50 added sequentially and ~1 ms at 8 concurrent, against httpx's ~1.7 and ~10 ms.
- ``stdlib`` (``stdlib_transport``): ``http.client`` in a worker thread, for the per-route
  Lambda functions, which serve one request at a time: importing aiohttp costs ~210 ms of
  a 300 ms cold-start budget there (half of it TLS contexts built at import), http.client ~20 ms.

Both keep connections alive between requests of an execution environment, bound their pool in
total and per host (one host that never answers cannot take every connection), honour
HTTP(S)_PROXY / NO_PROXY (``proxy_env``) and, unless built with ``trusted_hosts=None``, apply
the connect-time SSRF check to every address they connect to, through a proxy too.

``trusted_hosts=None`` is for the gateway's own infrastructure (control plane, queue, stores):
operator-configured addresses that may be private, and never a client's input.

Timeouts are the caller's: it wraps ``request`` and ``next_chunk`` in ``asyncio.timeout``.
A cancelled call aborts its connection and frees its pool slot at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from aigw.upstream.pool_stats import PoolStats


class TransportError(Exception):
    """The provider could not be reached, or the connection broke. Never carries the URL or headers."""


class UpstreamResponse(Protocol):
    status: int
    headers: Mapping[str, str]  # lower-case names

    async def next_chunk(self) -> bytes:
        """The next bytes as they arrive; b"" at a clean end (the connection goes back to the
        pool); TransportError if the stream broke."""
        ...

    def ended(self) -> bool:
        """Whether the body has been read to its end, so that no next_chunk() is needed (the
        connection then goes back to the pool): a whole answer is read in one step."""
        ...

    def close(self) -> None:
        """Abandon the response (and its connection)."""
        ...


class Transport(Protocol):
    async def request(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> UpstreamResponse: ...

    def pool_stats(self) -> PoolStats: ...

    async def close(self) -> None: ...


_IMPLEMENTATIONS = {"aiohttp": "aigw.upstream.aiohttp_transport", "stdlib": "aigw.upstream.stdlib_transport"}


def make_transport(name: str, trusted_hosts: frozenset[str] | None, pool_size: int, pool_per_host: int,
                   connect_timeout_s: float) -> Transport:
    """``trusted_hosts``: what the SSRF guard lets through although private; None: no guard at all."""
    module = _IMPLEMENTATIONS.get(name)
    if module is None:
        raise ValueError(f"UPSTREAM_CLIENT must be one of {', '.join(_IMPLEMENTATIONS)}, got {name!r}")
    factory = import_module(module).create  # imported only when chosen: cold start
    transport: Transport = factory(trusted_hosts=trusted_hosts, pool_size=pool_size, pool_per_host=pool_per_host,
                   connect_timeout_s=connect_timeout_s)
    return transport
