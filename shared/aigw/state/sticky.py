"""Sticky load balancing: requests with the same identifier go to the same target.

The identifier is a hash of the values of the strategy's ``hash_fields`` (``metadata.user_id``,
``headers.x-portkey-api-key``, ``params.stream``...); values are only ever hashed, so a key named
there is never stored or logged. Where the identifier goes is decided, in this order, by:

1. L1, in process: the last decision for this identifier on this node, for a few seconds.
   A hit costs a hash and a dict lookup (microseconds).
2. The cache store (Redis when configured): the decision shared by every instance.
3. A deterministic weighted pick derived from the identifier: weighted rendezvous hashing
   (each target scores ``-ln(u) / weight`` with ``u`` a hash of target, identifier and time
   window; the lowest wins), so the share of identifiers per target follows the weights, and
   every instance picks the same target with or without the store. It is stored with
   set-if-absent, so concurrent first requests converge on one target.

Time is cut into windows of ``ttl`` seconds, offset per identifier (so identifiers do not all
move at once); a stored decision lives until its window ends, and the next window re-salts the
pick. A stored decision therefore always equals the deterministic one unless a failure moved
it: a Redis outage does not flip anyone, nor does Redis coming back. When the chosen target fails
(the request falls back past it, or it is the answer's failure), the identifier is moved to the
next target of its rendezvous order, excluding every target that failed in this window, and the
next request goes there. The key includes a fingerprint of the node's targets: change the list
and identifiers are picked again (rendezvous moves only those whose target changed, as far as
the weights allow).
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from aigw.config.model import Target
from aigw.state.fingerprint import fingerprint
from aigw.state.store import PREFIX, Store, StoreUnavailable

HIT = "HIT"  # the identifier's target was already decided (L1 or store)
NEW = "NEW"  # first request of this identifier in this window: picked now
REPICK = "REPICK"  # the decided target failed earlier: this request went to the next one

L1_TTL_S = 5.0
L1_MAX_ENTRIES = 10_000

_l1_entry = tuple[float, int, frozenset[int]]  # (expires at, target index, failed indexes)


def identifier(fields: tuple[str, ...], sources: Mapping[str, Mapping[str, Any]]) -> bytes | None:
    """The hash of the named fields' values (a missing value hashes as null); None when every
    one is missing: such requests share nothing to stick by, and are balanced as without sticky."""
    h = hashlib.blake2b(digest_size=16)
    found = False
    for path in fields:
        source, _, rest = path.partition(".")
        value: Any
        if source == "headers":  # names are case-insensitive: so is the identifier
            path = "headers." + rest.lower()
            value = sources.get("headers", {}).get(rest.lower())
        else:
            value = sources.get(source)
            for part in rest.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
        found = found or value is not None
        h.update(path.encode())
        h.update(b"\0")
        h.update(orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str))
        h.update(b"\0")
    return h.digest() if found else None


def window(ident: bytes, ttl_s: int, now: float) -> tuple[int, float]:
    """The identifier's current window and the seconds left in it."""
    offset = int.from_bytes(ident[:4], "big") % ttl_s
    index = math.floor((now + offset) / ttl_s)
    return index, (index + 1) * ttl_s - offset - now


def rendezvous(node: Target, ident: bytes, window_index: int, exclude: frozenset[int] = frozenset()) -> int:
    """The weighted rendezvous pick among ``node``'s targets (lowest ``-ln(u)/weight``)."""
    _, salts = fingerprint(node)
    suffix = ident + window_index.to_bytes(8, "big", signed=True)
    best, best_score = -1, math.inf
    for i, target in enumerate(node.targets):
        if target.weight <= 0 or i in exclude:
            continue
        u = (int.from_bytes(hashlib.blake2b(salts[i] + suffix, digest_size=8).digest(), "big") + 0.5) / 2.0**64
        score = -math.log(u) / target.weight
        if score < best_score:
            best, best_score = i, score
    if best < 0:  # every target excluded (or weightless): the plain pick, as if nothing failed
        return rendezvous(node, ident, window_index) if exclude else 0
    return best


def _encode(index: int, failed: frozenset[int]) -> bytes:
    return f"{index}:{','.join(map(str, sorted(failed)))}".encode()


def _decode(raw: bytes, count: int) -> tuple[int, frozenset[int]] | None:
    try:
        head, _, tail = raw.decode().partition(":")
        index = int(head)
        failed = frozenset(int(x) for x in tail.split(",") if x)
    except ValueError:
        return None
    return (index, failed) if 0 <= index < count else None


class StickyState:
    """Per gateway: the L1 and the store, shared by every request."""

    def __init__(self, store: Callable[[], Store], clock: Callable[[], float]) -> None:
        self._store, self._clock = store, clock
        self._l1: OrderedDict[bytes, _l1_entry] = OrderedDict()

    def _key(self, node: Target, ident: bytes) -> bytes:
        whole, _ = fingerprint(node)
        return hashlib.blake2b(whole + ident, digest_size=16).digest()

    @staticmethod
    def _store_key(key: bytes) -> str:
        return f"{PREFIX}sticky:{{{key.hex()}}}"  # a hash tag: one slot whatever grows beside it

    def _remember(self, key: bytes, index: int, failed: frozenset[int], now: float, left: float) -> None:
        l1 = self._l1
        l1[key] = (now + min(L1_TTL_S, left), index, failed)
        l1.move_to_end(key)
        if len(l1) > L1_MAX_ENTRIES:
            l1.popitem(last=False)

    async def pick(self, node: Target, ident: bytes,
                   skip: frozenset[int] = frozenset()) -> tuple[int, str, frozenset[int]]:
        """The index of the target for ``ident``, how it was decided (HIT, NEW, REPICK), and the
        targets that failed it in this window. A target in ``skip`` (its circuit is open) is
        passed over for now, without changing what is stored: the identifier returns to it once
        the circuit closes."""
        index, how, failed = await self._decided(node, ident)
        if index in skip:
            assert node.strategy is not None and node.strategy.sticky is not None
            win, _ = window(ident, node.strategy.sticky.ttl_s, self._clock())
            detour = rendezvous(node, ident, win, failed | skip)
            if detour in skip:  # failures and open circuits cover everything: avoid the open ones
                detour = rendezvous(node, ident, win, skip)
            return detour, REPICK, failed
        return index, how, failed

    async def _decided(self, node: Target, ident: bytes) -> tuple[int, str, frozenset[int]]:
        assert node.strategy is not None and node.strategy.sticky is not None
        now = self._clock()
        win, left = window(ident, node.strategy.sticky.ttl_s, now)
        key = self._key(node, ident)
        cached = self._l1.get(key)
        if cached is not None and cached[0] > now:
            return cached[1], (REPICK if cached[2] else HIT), cached[2]
        count = len(node.targets)
        try:
            store, store_key = self._store(), self._store_key(key)
            decided = await store.get(store_key)
            found = _decode(decided, count) if decided is not None else None
            if found is None:
                index = rendezvous(node, ident, win)
                if await store.set(store_key, _encode(index, frozenset()), left, only_if_absent=True):
                    found, how = (index, frozenset()), NEW
                else:  # another request decided first: follow it
                    again = await store.get(store_key)
                    found = (_decode(again, count) if again is not None else None) or (index, frozenset())
                    how = REPICK if found[1] else HIT
            else:
                how = REPICK if found[1] else HIT
        except StoreUnavailable:
            found, how = (rendezvous(node, ident, win), frozenset()), NEW
        self._remember(key, found[0], found[1], now, left)
        return found[0], how, found[1]

    def for_request(self, sources: Mapping[str, Mapping[str, Any]]) -> StickyRequest:
        return StickyRequest(self, sources)

    async def failed(self, node: Target, ident: bytes, index: int, known: frozenset[int] = frozenset()) -> None:
        """The target at ``index`` failed: move the identifier to the next one for this window.
        ``known``: the targets that had failed it when it was picked (the pick may be older
        than L1's memory: an LLM call can take longer than that)."""
        assert node.strategy is not None and node.strategy.sticky is not None
        now = self._clock()
        win, left = window(ident, node.strategy.sticky.ttl_s, now)
        key = self._key(node, ident)
        cached = self._l1.get(key)
        failed = known | (cached[2] if cached is not None and cached[0] > now else frozenset()) | {index}
        if len(failed) >= len(node.targets):
            failed = frozenset({index})  # all failed in turn: start the round again
        nxt = rendezvous(node, ident, win, failed)
        if nxt == index:
            return  # nowhere else to go
        self._remember(key, nxt, failed, now, left)
        try:
            await self._store().set(self._store_key(key), _encode(nxt, failed), left)
        except StoreUnavailable:
            pass  # this instance remembers it (L1); the others keep their pick until the window ends


class StickyRequest:
    """One request's view: the values its identifier is made of, and the decisions taken."""

    __slots__ = ("_state", "_sources", "_idents", "_failed", "decisions")

    def __init__(self, state: StickyState, sources: Mapping[str, Mapping[str, Any]]) -> None:
        self._state, self._sources = state, sources
        self._idents: dict[str, bytes | None] = {}
        self._failed: dict[str, frozenset[int]] = {}  # per node: what had failed when it was picked
        self.decisions: list[tuple[str, str]] = []  # (node path, HIT | NEW | REPICK)

    def _ident(self, node: Target) -> bytes | None:
        if node.path not in self._idents:
            assert node.strategy is not None and node.strategy.sticky is not None
            self._idents[node.path] = identifier(node.strategy.sticky.hash_fields, self._sources)
        return self._idents[node.path]

    async def pick(self, node: Target, skip: frozenset[int] = frozenset()) -> Target | None:
        ident = self._ident(node)
        if ident is None:
            return None  # nothing to stick by: the router balances this request as usual
        index, how, failed = await self._state.pick(node, ident, skip)
        self._failed[node.path] = failed
        self.decisions.append((node.path, how))
        return node.targets[index]

    async def failed(self, node: Target, chosen: Target) -> None:
        ident = self._ident(node)
        if ident is None:
            return
        index = next(i for i, t in enumerate(node.targets) if t is chosen)
        await self._state.failed(node, ident, index, self._failed.get(node.path, frozenset()))
