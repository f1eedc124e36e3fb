"""The embedded store: a bounded in-process dict with expiry (no Redis needed).

Entries expire lazily (checked on read). The least recently used are dropped past
``max_entries`` or ``max_bytes`` (keys and values together), so neither a flood of keys nor a
few large cached answers can grow memory without bound. Atomicity is free: nothing here awaits.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

DEFAULT_MAX_ENTRIES = 50_000
DEFAULT_MAX_BYTES = 128 * 1024 * 1024


class MemoryStore:
    def __init__(self, clock: Callable[[], float], max_entries: int = DEFAULT_MAX_ENTRIES,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._clock = clock
        self._max_entries, self._max_bytes = max_entries, max_bytes
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0

    @staticmethod
    def _size(key: str, value: bytes) -> int:
        return len(key) + len(value) + 64  # the entry's own overhead, roughly

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= self._size(key, entry[1])

    def _live(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)  # recently used: kept longest
        return entry[1]

    def _put(self, key: str, value: bytes, expires_at: float) -> None:
        self._drop(key)
        size = self._size(key, value)
        if size > self._max_bytes:
            return  # never evict everything for one value that cannot fit anyway
        entries = self._entries
        entries[key] = (expires_at, value)
        self._bytes += size
        while len(entries) > self._max_entries or self._bytes > self._max_bytes:
            old, (_, old_value) = entries.popitem(last=False)
            self._bytes -= self._size(old, old_value)

    async def get(self, key: str) -> bytes | None:
        return self._live(key)

    async def set(self, key: str, value: bytes, ttl_s: float, *, only_if_absent: bool = False) -> bool:
        if only_if_absent and self._live(key) is not None:
            return False
        self._put(key, value, self._clock() + ttl_s)
        return True

    async def delete(self, key: str) -> None:
        self._drop(key)

    async def incr(self, key: str, ttl_s: float) -> int:
        current = self._live(key)
        if current is None:
            self._put(key, b"1", self._clock() + ttl_s)
            return 1
        count = int(current) + 1
        self._put(key, str(count).encode(), self._entries[key][0])  # keeps the expiry it was created with
        return count

    async def close(self) -> None:
        self._entries.clear()
        self._bytes = 0
