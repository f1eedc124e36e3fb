"""Connection slots of the stdlib transport: bounded in total and per host, idle ones kept.

Every connection, in use or idle, holds a slot. A request takes an idle connection of its
key (the most recent: the likeliest still open, and checked with ``alive`` first), else a slot
for a new one (closing an idle connection of another key when only the total bound is in the
way), else waits, without blocking the loop, for at most its timeout. A request to another
host is never queued behind these waiters: the per-host bound is what keeps one host that
never answers from taking every connection (and every worker thread).

Runs on the event loop's thread only (acquire and release are called from coroutines and
callbacks of the one loop), so there is no lock on the hot path.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Generic, TypeVar

from aigw.upstream.transport import TransportError

if TYPE_CHECKING:
    from aigw.upstream.pool_stats import PoolStats

K = TypeVar("K", bound=Hashable)
C = TypeVar("C")


class Pool(Generic[K, C]):
    def __init__(self, limit: int, per_key: int, alive: Callable[[C], bool], close: Callable[[C], None]) -> None:
        self._limit, self._per_key = max(1, limit), max(1, per_key)
        self._alive, self._close = alive, close
        self._busy: dict[K, int] = {}  # keys with connections in use only
        self._idle: dict[K, list[C]] = {}  # keys with idle connections only; insertion order ~ age
        self._busy_total = self._idle_total = 0
        # Futures resolve to an idle connection handed over, or None: a slot reserved for a new one.
        self._waiters: deque[tuple[K, asyncio.Future[C | None]]] = deque()

    async def acquire(self, key: K, timeout: float) -> C | None:
        """An idle connection for ``key``, or None: a slot is yours, open a new connection.
        Either way ``release`` must follow, once."""
        granted, conn = self._take(key)
        if granted:
            return conn
        future: asyncio.Future[C | None] = asyncio.get_running_loop().create_future()
        waiter = (key, future)
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await future
        except BaseException as exc:
            if future.done() and not future.cancelled():
                # Granted just as the caller gave up (timeout, cancellation): pass it on.
                got = future.result()
                self.release(key, got, got is not None)
            else:
                future.cancel()
                self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise TransportError("pool exhausted: no connection free within the connect timeout") from None
            raise

    def release(self, key: K, conn: C | None, reusable: bool) -> None:
        """Give back the slot of ``conn`` (None: of a connection already closed): kept idle when
        ``reusable``, else closed."""
        if conn is not None and reusable:
            for waiter in self._waiters:
                # Handed over as it is (it just worked: no need to check it). A done future is a
                # waiter being cancelled: it removes itself.
                if waiter[0] == key and not waiter[1].done():
                    self._waiters.remove(waiter)
                    waiter[1].set_result(conn)
                    return
        self._unbusy(key)
        if conn is not None and reusable:
            self._idle.setdefault(key, []).append(conn)
            self._idle_total += 1
        elif conn is not None:
            self._close(conn)
        if self._waiters:
            self._dispatch()

    def stats(self) -> PoolStats:
        from aigw.upstream.pool_stats import PoolStats  # see there: not at import

        return PoolStats(in_use=self._busy_total, limit=self._limit,
                         busiest_host_in_use=max(self._busy.values(), default=0),
                         per_host_limit=self._per_key, waiting=len(self._waiters))

    def close_idle(self) -> None:
        idle, self._idle, self._idle_total = self._idle, {}, 0
        for conns in idle.values():
            for conn in conns:
                self._close(conn)

    def _take(self, key: K) -> tuple[bool, C | None]:
        """Without waiting: (True, idle connection), (True, None) for a new slot, or (False, None)."""
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            self._idle_total -= 1
            if not idle:
                del self._idle[key]
            if self._alive(conn):
                self._make_busy(key)
                return True, conn
            self._close(conn)  # closed by the server while idle: its slot is free again
        if self._busy.get(key, 0) >= self._per_key:
            return False, None
        if self._busy_total + self._idle_total >= self._limit and not self._evict_idle():
            return False, None
        self._make_busy(key)
        return True, None

    def _evict_idle(self) -> bool:
        if not self._idle:
            return False
        key = next(iter(self._idle))  # the key idle the longest
        conns = self._idle[key]
        self._close(conns.pop(0))
        self._idle_total -= 1
        if not conns:
            del self._idle[key]
        return True

    def _dispatch(self) -> None:
        for waiter in list(self._waiters):
            key, future = waiter
            if future.done():
                continue
            granted, conn = self._take(key)
            if granted:
                self._waiters.remove(waiter)
                future.set_result(conn)

    def _make_busy(self, key: K) -> None:
        self._busy[key] = self._busy.get(key, 0) + 1
        self._busy_total += 1

    def _unbusy(self, key: K) -> None:
        left = self._busy[key] - 1
        if left:
            self._busy[key] = left
        else:
            del self._busy[key]
        self._busy_total -= 1
