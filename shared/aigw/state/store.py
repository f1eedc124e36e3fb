"""The cache store: a small async key-value interface with per-key expiry.

Sticky routing, the circuit breaker and the response cache keep their state here. Two
implementations sit behind it: ``MemoryStore`` (in-process, the default: ``make run`` needs no
Redis; on Lambda it lives per execution environment) and ``RedisStore`` (standalone, TLS or
cluster), chosen by ``CACHE_STORE``. A store that cannot answer raises ``StoreUnavailable``;
callers then degrade (sticky keeps its deterministic pick, the cache is bypassed), never fail.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from aigw.settings import Settings

# Every key the gateway writes starts with this, so a shared Redis can hold other data too.
PREFIX = "aigw:"


class StoreBudget:
    """How much time in the store one request has left, across all its commands (a slow but
    live Redis then costs a request about ``REDIS_TIMEOUT_MS`` in all, however many commands
    sticky, the breaker and the cache need)."""

    __slots__ = ("left_s",)

    def __init__(self, seconds: float) -> None:
        self.left_s = seconds


# Set per request by the proxy (a context variable: each request is its own task); unset, only
# each command's own bound applies.
request_budget: ContextVar[StoreBudget | None] = ContextVar("aigw_store_budget", default=None)


class StoreUnavailable(Exception):
    """The store did not answer in time, or is known to be down: degrade, do not fail."""


class Store(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float, *, only_if_absent: bool = False) -> bool:
        """Store ``value`` for ``ttl_s`` seconds; with ``only_if_absent``, only if the key has no
        live value (atomically). Whether it was stored."""
        ...

    async def delete(self, key: str) -> None: ...

    async def incr(self, key: str, ttl_s: float) -> int:
        """Add one to the counter at ``key`` (created at 0 with ``ttl_s``); the new count."""
        ...

    async def close(self) -> None: ...


def store_from_settings(settings: Settings, clock: Callable[[], float]) -> Store:
    """The store ``settings`` name. The Redis module (and redis-py) is imported only when chosen:
    a route function without ``CACHE_STORE`` imports nothing of redis."""
    if settings.cache_store is None:
        from aigw.state.memory import MemoryStore

        return MemoryStore(clock)
    from aigw.state.redis_store import RedisStore

    assert settings.redis_url is not None  # Settings refuses CACHE_STORE without REDIS_URL
    return RedisStore(settings.redis_url, tls=settings.redis_tls_enabled, cluster=settings.redis_mode == "cluster",
                      timeout_s=settings.redis_timeout_ms / 1000, clock=clock)
