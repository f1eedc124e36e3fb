"""The embedded store: a bounded in-process dict with expiry (no Redis needed).

Entries expire lazily (checked on read) and the oldest are dropped past ``max_entries``, so a
flood of distinct keys cannot grow memory without bound. Atomicity is free: nothing here awaits.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

DEFAULT_MAX_ENTRIES = 50_000


class MemoryStore:
    def __init__(self, clock: Callable[[], float], max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._clock = clock
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def _live(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[key]
            return None
        return entry[1]

    def _put(self, key: str, value: bytes, ttl_s: float) -> None:
        entries = self._entries
        entries[key] = (self._clock() + ttl_s, value)
        entries.move_to_end(key)
        while len(entries) > self._max:
            entries.popitem(last=False)

    async def get(self, key: str) -> bytes | None:
        return self._live(key)

    async def set(self, key: str, value: bytes, ttl_s: float, *, only_if_absent: bool = False) -> bool:
        if only_if_absent and self._live(key) is not None:
            return False
        self._put(key, value, ttl_s)
        return True

    async def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    async def incr(self, key: str, ttl_s: float) -> int:
        current = self._live(key)
        if current is None:
            self._put(key, b"1", ttl_s)
            return 1
        count = int(current) + 1
        expires = self._entries[key][0]  # a counter keeps the expiry it was created with
        self._entries[key] = (expires, str(count).encode())
        return count

    async def close(self) -> None:
        self._entries.clear()
