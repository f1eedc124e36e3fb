"""Circuit breaker: a target that keeps failing is skipped until its cooldown ends.

``cb_config`` on a node applies to it and below (a child's own replaces it). At a fallback or
loadbalance node, each child with a breaker has its own state, keyed by the node's fingerprint
and the child's position, so every instance sharing the cache store agrees (without a store, or
while it is down, each instance counts for itself in process).

Counting: requests and failures (a status in ``failure_status_codes``, after the child's own
retries) are counted in fixed windows as long as the cooldown. A failure opens the circuit when
the window's failures reach ``failure_threshold``, or when the window has at least
``minimum_requests`` requests and its failure share reaches ``failure_threshold_percentage``.
An open circuit stays open for ``cooldown_interval`` ms, then closes (no half-open state: the
next window counts afresh). Each instance re-reads a child's open state from the store at most
once a second.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable

from aigw.config.model import Target
from aigw.context import AttemptSource
from aigw.state.fingerprint import fingerprint
from aigw.state.memory import MemoryStore
from aigw.state.store import PREFIX, Store, StoreUnavailable

RECHECK_S = 1.0
_L1_MAX = 10_000


class BreakerState:
    """Per gateway: the open states seen lately, the store, and an in-process fallback."""

    def __init__(self, store: Callable[[], Store], clock: Callable[[], float]) -> None:
        self._store, self._clock = store, clock
        self._local = MemoryStore(clock)
        self._seen: dict[bytes, tuple[float, float]] = {}  # key -> (checked at, open until)

    @staticmethod
    def _key(node: Target, index: int) -> bytes:
        whole, _ = fingerprint(node)
        return hashlib.blake2b(whole + index.to_bytes(2, "big"), digest_size=16).digest()

    async def _open_until(self, key: str) -> float:
        """Until when the circuit is open, as the store or this instance knows (an instance that
        opened it while the store was down still skips it)."""
        local = await self._local.get(key)
        try:
            shared = await self._store().get(key)
        except StoreUnavailable:
            shared = None
        return max((float(raw) for raw in (local, shared) if raw is not None), default=0.0)

    async def _incr(self, key: str, ttl_s: float) -> int:
        try:
            return await self._store().incr(key, ttl_s)
        except StoreUnavailable:
            return await self._local.incr(key, ttl_s)

    async def _set(self, key: str, value: bytes, ttl_s: float) -> None:
        await self._local.set(key, value, ttl_s)  # this instance skips it at once, store or not
        try:
            await self._store().set(key, value, ttl_s)
        except StoreUnavailable:
            pass

    def _remember(self, key: bytes, checked: float, until: float) -> None:
        if len(self._seen) >= _L1_MAX:
            self._seen.clear()
        self._seen[key] = (checked, until)

    async def open_children(self, node: Target) -> frozenset[int]:
        """The positions of ``node``'s children whose circuit is open now."""
        now = self._clock()
        open_ones = []
        for index, child in enumerate(node.targets):
            if child.breaker is None:
                continue
            key = self._key(node, index)
            seen = self._seen.get(key)
            if seen is None or now - seen[0] >= RECHECK_S:
                until = await self._open_until(f"{PREFIX}cb:{{{key.hex()}}}:open")
                self._remember(key, now, until)
            else:
                until = seen[1]
            if until > now:
                open_ones.append(index)
        return frozenset(open_ones)

    def for_request(self, skipped: Callable[[Target], None]) -> BreakerRequest:
        return BreakerRequest(self, skipped)

    async def record(self, node: Target, index: int, status: int) -> bool:
        """Count one answer of the child at ``index``; whether it opened the circuit."""
        config = node.targets[index].breaker
        if config is None:
            return False
        now = self._clock()
        cooldown_s = config.cooldown_ms / 1000
        key = self._key(node, index).hex()
        window = math.floor(now / cooldown_s)
        ttl_s = 2 * cooldown_s
        requests = await self._incr(f"{PREFIX}cb:{{{key}}}:r:{window}", ttl_s)
        if status not in config.failure_status_codes:
            return False
        failures = await self._incr(f"{PREFIX}cb:{{{key}}}:f:{window}", ttl_s)
        by_count = config.failure_threshold is not None and failures >= config.failure_threshold
        by_share = (config.failure_threshold_percentage is not None and requests >= config.minimum_requests
                    and failures * 100 >= config.failure_threshold_percentage * requests)
        if not (by_count or by_share):
            return False
        until = now + cooldown_s
        await self._set(f"{PREFIX}cb:{{{key}}}:open", repr(until).encode(), cooldown_s)
        self._remember(bytes.fromhex(key), now, until)
        return True


class BreakerRequest:
    """One request's view for the router; ``skipped`` is told about each child it skips."""

    __slots__ = ("_state", "_skipped")

    def __init__(self, state: BreakerState, skipped: Callable[[Target], None]) -> None:
        self._state, self._skipped = state, skipped

    async def open_children(self, node: Target) -> frozenset[int]:
        open_ones = await self._state.open_children(node)
        if len(open_ones) == len(node.targets):
            return frozenset()  # every circuit open: try them all rather than fail without a call
        for index in sorted(open_ones):
            self._skipped(node.targets[index])
        return open_ones

    async def record(self, node: Target, index: int, attempt: object) -> None:
        # Only real calls count: a cached answer or a skipped target says nothing of its health.
        if getattr(attempt, "source", AttemptSource.PROVIDER) is not AttemptSource.PROVIDER:
            return
        await self._state.record(node, index, getattr(attempt, "status", 0))
