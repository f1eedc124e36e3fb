"""The Redis store (``CACHE_STORE`` = ``redis``, ``aws-elastic-cache`` or ``custom``): standalone,
TLS (``rediss://`` or ``REDIS_TLS_ENABLED``) or cluster (``REDIS_MODE=cluster``, the URL being the
cluster's configuration endpoint).

One client per execution environment (per event loop), reused across invocations. redis-py is
imported on first use, in a thread (``import redis.asyncio`` costs ~250 ms here): a route
function's init never pays it, and until the import is done the store is "unavailable", which
callers already handle (sticky keeps its deterministic pick, the cache is bypassed); the local
server connects at startup. Every command is bounded by ``timeout_s`` (connect included) and is
not retried, so a dead Redis costs a request at most that; while Redis is down, one request per
second probes it and the others skip it at once (``Availability``). redis-py reconnects on the
next command once Redis is back. TLS is verified against the system trust store, which honours
``SSL_CERT_FILE``; hostnames are checked.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from aigw.state.availability import Availability
from aigw.state.store import StoreUnavailable, request_budget

T = TypeVar("T")
DEFAULT_PORT = 6379


def redis_url(url: str, tls: bool) -> str:
    """``url`` with a scheme: ElastiCache shows endpoints as ``host:port``; TLS turns ``redis://``
    into ``rediss://`` (a ``rediss://`` URL is TLS whatever the flag says)."""
    url = url.strip()
    if "://" not in url:
        url = f"redis://{url}"
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("redis", "rediss"):
        raise ValueError("REDIS_URL must be redis://, rediss:// or host:port")
    if tls and scheme == "redis":
        url = "rediss://" + url.split("://", 1)[1]
    return url


class _RedisPy:
    """What this store uses of redis-py, imported together (in a thread)."""

    def __init__(self) -> None:
        self.Redis = importlib.import_module("redis.asyncio").Redis
        self.RedisCluster = importlib.import_module("redis.asyncio.cluster").RedisCluster
        self.Retry = importlib.import_module("redis.asyncio.retry").Retry
        self.NoBackoff = importlib.import_module("redis.backoff").NoBackoff
        exceptions = importlib.import_module("redis.exceptions")
        self.ConnectionError = exceptions.ConnectionError
        # What says "Redis is not there": an outage (one warning, probes until it is back).
        # RedisClusterException (a cluster that lost its masters) is no RedisError in redis-py.
        self.outage: tuple[type[BaseException], ...] = (
            exceptions.ConnectionError, exceptions.TimeoutError, exceptions.RedisClusterException,
            exceptions.ClusterDownError, exceptions.TryAgainError, OSError, TimeoutError)


# The longest expiry the store sets: values a config could ask for beyond it (a sticky TTL, a
# cooldown) are refused by the parser, and anything else is clamped rather than sent to Redis
# as a PX it refuses.
MAX_TTL_MS = 366 * 24 * 3600 * 1000

class RedisStore:
    def __init__(self, url: str, *, tls: bool, cluster: bool, timeout_s: float,
                 clock: Callable[[], float]) -> None:
        self._url = redis_url(url, tls)
        self._cluster = cluster
        self._timeout_s = timeout_s
        self.availability = Availability("redis", clock)
        self._client: Any = None
        self._client_loop: asyncio.AbstractEventLoop | None = None  # the loop the client belongs to
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop of the connect in progress
        self._connecting: asyncio.Future[None] | None = None
        self._outage: tuple[type[BaseException], ...] = ()

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "socket_connect_timeout": self._timeout_s,
            "socket_timeout": self._timeout_s,
            "health_check_interval": 0,
            # No CLIENT SETINFO on each new connection: two round trips less before the first
            # command, which matters when a connection is made inside a command's bound.
            "driver_info": None,
            "protocol": 2,  # RESP2: no HELLO round trip on each new connection
        }
        if self._url.startswith("rediss://"):
            options.update(ssl_cert_reqs="required", ssl_check_hostname=True)
        return options

    async def connect(self) -> None:
        """Import redis-py (in a thread) and build the client (a cluster's also learns the slot
        map). Idempotent per event loop; concurrent callers share one attempt.
        StoreUnavailable if Redis cannot be reached (the store then connects on a later use)."""
        loop = asyncio.get_running_loop()
        if self._client is not None and self._client_loop is loop:
            return
        if self._connecting is None or self._connecting.done() or self._loop is not loop:
            self._loop = loop
            self._connecting = asyncio.ensure_future(self._connect(loop))
            self._connecting.add_done_callback(_consume)
        await asyncio.shield(self._connecting)

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            redis = await loop.run_in_executor(None, _RedisPy)
        except Exception as exc:  # redis-py missing or broken: logged once, retried on later use
            self.availability.failed(exc)
            raise StoreUnavailable(type(exc).__name__) from None
        # One retry, on a broken connection only: a pooled connection that died with a Redis
        # restart nobody noticed fails its first command. Never on a timeout: a dead or
        # unreachable node costs one timeout, not several.
        retry = redis.Retry(redis.NoBackoff(), 1, supported_errors=(redis.ConnectionError,))
        options = self._options()
        client: Any
        try:
            if self._cluster:
                client = redis.RedisCluster.from_url(self._url, retry=retry, **options)
                # Learn the slot map now, once: commands racing to do it on first use fail each
                # other (measured: 2 of 3 bursts of 8 concurrent first commands failed).
                try:
                    async with asyncio.timeout(self._timeout_s):
                        await client.initialize()
                except BaseException:
                    await _close_quietly(client)
                    raise
            else:
                client = redis.Redis.from_url(self._url, retry=retry, **options)
        except Exception as exc:  # whatever redis-py raises: never past the store
            self.availability.failed(exc)
            raise StoreUnavailable(type(exc).__name__) from None
        # A client of another loop (tests run several) is dropped, not closed: its connections
        # belong to that loop, which may be gone.
        self._client, self._client_loop, self._outage = client, loop, redis.outage

    def _ready(self) -> Any:
        """The client, or StoreUnavailable while it is still being made (started here)."""
        loop = asyncio.get_running_loop()
        if self._client is not None and self._client_loop is loop:
            return self._client
        if self._connecting is None or self._connecting.done() or self._loop is not loop:
            self._loop = loop
            self._connecting = asyncio.ensure_future(self._connect(loop))
            self._connecting.add_done_callback(_consume)
        raise StoreUnavailable("connecting")

    async def _run(self, op: Callable[[Any], Awaitable[T]]) -> T:
        if not self.availability.usable():
            raise StoreUnavailable("down")
        client = self._ready()
        budget = request_budget.get()
        bound = self._timeout_s if budget is None else min(self._timeout_s, budget.left_s)
        if bound <= 0:
            raise StoreUnavailable("budget")  # this request has used its time in the store
        by_budget = bound < self._timeout_s
        started = time.monotonic()
        try:
            async with asyncio.timeout(bound):
                if not self.availability.up:
                    # This call probes a Redis that was down: its pooled connections died with it,
                    # and the first command on one would fail although Redis is back.
                    await self._drop_connections(client)
                result = await op(client)
        except Exception as exc:  # whatever redis-py raises: never past the store
            if by_budget and isinstance(exc, TimeoutError):
                raise StoreUnavailable("budget") from None  # the request's time ran out, not Redis
            if isinstance(exc, self._outage):
                self.availability.failed(exc)
            # Anything else (a command Redis refused) fails this call only, not the store.
            raise StoreUnavailable(type(exc).__name__) from None
        finally:
            if budget is not None:
                budget.left_s -= time.monotonic() - started
        self.availability.succeeded()
        return result

    async def _drop_connections(self, client: Any) -> None:
        if self._cluster:
            await client.aclose()  # the next command learns the slot map again, on new connections
        else:
            await client.connection_pool.disconnect()

    async def get(self, key: str) -> bytes | None:
        value: bytes | None = await self._run(lambda c: c.get(key))
        return value

    async def set(self, key: str, value: bytes, ttl_s: float, *, only_if_absent: bool = False) -> bool:
        ms = _ttl_ms(ttl_s)
        return bool(await self._run(lambda c: c.set(key, value, px=ms, nx=only_if_absent)))

    async def delete(self, key: str) -> None:
        await self._run(lambda c: c.delete(key))

    async def incr(self, key: str, ttl_s: float) -> int:
        ms = _ttl_ms(ttl_s)

        async def op(c: Any) -> int:
            # One round trip: created with its expiry (never an immortal counter), then counted.
            pipe = c.pipeline(transaction=True)
            pipe.set(key, 0, px=ms, nx=True)
            pipe.incr(key)
            results = await pipe.execute()
            return int(results[-1])

        return await self._run(op)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._client_loop is asyncio.get_running_loop():
            await _close_quietly(client)


async def _close_quietly(client: Any) -> None:
    try:
        await client.aclose()
    except Exception:  # closing a client whose server is gone: nothing to recover
        pass


def _ttl_ms(ttl_s: float) -> int:
    return min(MAX_TTL_MS, max(1, int(ttl_s * 1000)))


def _consume(future: asyncio.Future[None]) -> None:
    """A failed background connect (the import, say) is retried by the next call; never an
    'exception was never retrieved' warning."""
    if not future.cancelled():
        future.exception()
