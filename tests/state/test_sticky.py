"""Sticky decisions: L1, store, deterministic weighted pick, windows, failures, instances."""

import asyncio

import pytest

from aigw.config.parse import parse_config
from aigw.state.memory import MemoryStore
from aigw.state.sticky import HIT, NEW, REPICK, StickyState, identifier, rendezvous, window
from aigw.state.store import StoreUnavailable
from tests.state.conftest import redis_store

TRUSTED = frozenset()


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def lb(weights=(1, 1), ttl=300, fields=("metadata.user_id",), keys=None):
    keys = keys or [f"sk-target-{i}-0123456789" for i in range(len(weights))]
    return parse_config({"strategy": {"mode": "loadbalance", "sticky": {"enabled": True, "hash_fields": list(fields),
                                                                       "ttl": ttl}},
                         "targets": [{"provider": "openai", "api_key": k, "weight": w} for k, w in zip(keys, weights, strict=True)]},
                        TRUSTED)


def ident(user: str) -> bytes:
    return identifier(("metadata.user_id",), {"metadata": {"user_id": user}})


async def two(picking):
    """(index, how) of a pick, without the failed set."""
    index, how, _ = await picking
    return index, how


def state(store=None, clock=None):
    clock = clock or Clock()
    store = store or MemoryStore(clock)
    return StickyState(lambda: store, clock), store, clock


class DownStore:
    async def get(self, key):
        raise StoreUnavailable("down")

    async def set(self, key, value, ttl_s, *, only_if_absent=False):
        raise StoreUnavailable("down")


def test_the_identifier_hashes_the_named_values_only():
    fields = ("metadata.user_id", "headers.x-portkey-api-key", "params.response_format.type")
    a = {"metadata": {"user_id": "u1", "other": "x"}, "headers": {"x-portkey-api-key": "pk-1"},
         "params": {"response_format": {"type": "json_object"}}}
    b = {**a, "metadata": {"user_id": "u1", "other": "y"}}
    assert identifier(fields, a) == identifier(fields, b)
    assert identifier(fields, a) != identifier(fields, {**a, "headers": {"x-portkey-api-key": "pk-2"}})
    assert identifier(fields, a) != identifier(fields, {**a, "params": {}})
    assert identifier(("headers.X-Portkey-Api-Key",), a) == identifier(("headers.x-portkey-api-key",), a)
    assert identifier(("metadata.user_id",), {}) == identifier(("metadata.user_id",), {"metadata": {"user_id": None}})


@pytest.mark.parametrize("weights", [(1, 3), (1, 1, 2), (5, 0, 5)])
def test_the_deterministic_pick_follows_the_weights(weights):
    node = lb(weights)
    n = 20_000
    counts = [0] * len(weights)
    for i in range(n):
        counts[rendezvous(node, ident(f"user-{i}"), 7)] += 1
    total = sum(weights)
    for count, weight in zip(counts, weights, strict=True):
        # binomial sd <= 0.0035 at n = 20 000: 0.02 is more than five of them
        assert abs(count / n - weight / total) < 0.02, (counts, weights)


async def test_an_identifier_sticks_new_first_then_hit():
    sticky, _, _ = state()
    node = lb()
    picks = [await two(sticky.pick(node, ident("alice"))) for _ in range(20)]
    assert picks[0][1] == NEW and {p[1] for p in picks[1:]} == {HIT}
    assert len({p[0] for p in picks}) == 1


async def test_identifiers_spread_and_each_sticks_across_l1_expiry():
    sticky, _, clock = state()
    node = lb()
    first = {u: (await two(sticky.pick(node, ident(u))))[0] for u in map(str, range(200))}
    assert 60 < sum(first.values()) < 140  # both targets in use
    within = {u for u in first if window(ident(u), 300, clock.now)[1] > 6}  # the others' windows end
    assert len(within) > 180
    clock.now += 6  # past L1: answered by the store
    again = {u: await two(sticky.pick(node, ident(u))) for u in within}
    assert {u: p[0] for u, p in again.items()} == {u: first[u] for u in within}
    assert {p[1] for p in again.values()} == {HIT}


async def test_two_instances_without_a_shared_store_pick_alike():
    a, _, clock = state()
    b, _, _ = state(clock=clock)
    node = lb((1, 2, 3))
    for u in map(str, range(300)):
        assert (await two(a.pick(node, ident(u))))[0] == (await two(b.pick(node, ident(u))))[0]


async def test_after_the_ttl_window_a_new_pick_happens():
    sticky, _, clock = state()
    node = lb(ttl=60)
    users = list(map(str, range(200)))
    before = {u: (await two(sticky.pick(node, ident(u))))[0] for u in users}
    ends = {u: window(ident(u), 60, clock.now)[1] for u in users}
    assert all(0 < left <= 60 for left in ends.values())  # windows are offset per identifier
    assert len({round(left) for left in ends.values()}) > 20
    clock.now += 61
    after = {u: await two(sticky.pick(node, ident(u))) for u in users}
    assert {p[1] for p in after.values()} == {NEW}
    changed = sum(before[u] != after[u][0] for u in users)
    assert 50 < changed < 150  # re-salted: about half move with two equal targets


async def test_a_changed_target_list_selects_again():
    sticky, _, _ = state()
    assert (await two(sticky.pick(lb(), ident("bob"))))[1] == NEW
    assert (await two(sticky.pick(lb(), ident("bob"))))[1] == HIT  # same list parsed again: same key
    three = lb((1, 1, 1))
    assert (await two(sticky.pick(three, ident("bob"))))[1] == NEW


async def test_a_failed_target_moves_the_identifier_for_everyone_sharing_the_store():
    clock = Clock()
    store = MemoryStore(clock)
    a, _, _ = state(store, clock)
    b, _, _ = state(store, clock)
    node = lb((1, 1, 1))
    index, _ = await two(a.pick(node, ident("carol")))
    await a.failed(node, ident("carol"), index)
    moved, how = await two(a.pick(node, ident("carol")))
    assert moved != index and how == REPICK
    assert await two(b.pick(node, ident("carol"))) == (moved, REPICK)  # the other instance reads the store
    await a.failed(node, ident("carol"), moved)
    third, _ = await two(a.pick(node, ident("carol")))
    assert third not in (index, moved)  # every target that failed in this window is skipped


async def test_a_single_target_that_fails_stays_chosen():
    sticky, _, _ = state()
    node = lb((1,))
    await sticky.failed(node, ident("dan"), 0)
    assert await two(sticky.pick(node, ident("dan"))) == (0, NEW)


async def test_when_the_store_is_down_the_pick_is_the_deterministic_one():
    up, _, clock = state()
    down, _, _ = state(DownStore(), clock)
    node = lb((1, 2))
    for u in map(str, range(100)):
        assert (await two(up.pick(node, ident(u))))[0] == (await two(down.pick(node, ident(u))))[0]


async def test_nothing_stored_holds_a_key_or_a_hashed_value_in_clear():
    sticky, store, _ = state()
    node = lb(fields=("headers.x-portkey-api-key",), keys=["sk-secret-target-0123", "sk-secret-other-4567"])
    sources = {"headers": {"x-portkey-api-key": "pk-live-gateway-key-0123456789"}}
    await two(sticky.pick(node, identifier(("headers.x-portkey-api-key",), sources)))
    dumped = repr(store._entries) + repr(sticky._l1)
    for secret in ("pk-live-gateway-key", "sk-secret-target", "sk-secret-other"):
        assert secret not in dumped


async def test_concurrent_first_requests_on_many_instances_converge_on_redis(redis_server):
    clock = Clock()
    stores = [redis_store(redis_server.url) for _ in range(4)]
    for s in stores:
        await s.connect()
    instances = [StickyState(lambda s=s: s, clock) for s in stores]
    node = lb((1, 1, 1, 1))
    picks = await asyncio.gather(*(inst.pick(node, ident("erin")) for inst in instances for _ in range(5)))
    assert len({p[0] for p in picks}) == 1
    assert [p[1] for p in picks].count(NEW) >= 1
    keys = redis_server.client().keys("aigw:sticky:*")
    assert len(keys) == 1
    for s in stores:
        await s.close()


async def test_stickiness_survives_a_redis_outage_and_its_return(redis_server):
    clock = Clock()
    store = redis_store(redis_server.url)
    await store.connect()
    sticky = StickyState(lambda: store, clock)
    node = lb((1, 1, 1))
    users = list(map(str, range(60)))
    users = [u for u in users if window(ident(u), 300, clock.now)[1] > 20]  # windows that outlast the test
    before = {u: (await two(sticky.pick(node, ident(u))))[0] for u in users}
    redis_server.kill()
    clock.now += 6  # past L1
    during = {u: (await two(sticky.pick(node, ident(u))))[0] for u in users}
    redis_server.restart()
    clock.now += 6
    store.availability._next_probe = 0.0  # let the next call probe at once (the store runs on real time)
    after = {u: (await two(sticky.pick(node, ident(u))))[0] for u in users}
    assert before == during == after
    await store.close()


async def test_an_open_circuit_is_passed_over_without_moving_the_identifier():
    sticky, _, _ = state()
    node = lb((1, 1, 1))
    decided, _ = await two(sticky.pick(node, ident("fay")))
    detour, how = await two(sticky.pick(node, ident("fay"), frozenset({decided})))
    assert detour != decided and how == REPICK
    assert await two(sticky.pick(node, ident("fay"))) == (decided, HIT)  # back once the circuit closed


def test_targets_differing_only_in_provider_options_share_the_identifiers():
    node = parse_config({"strategy": {"mode": "loadbalance", "sticky": {"enabled": True, "hash_fields": ["metadata.u"]}},
                         "targets": [{"provider": "azure-openai", "api_key": "k-0123456789", "resource_name": "r",
                                      "deployment_id": d} for d in ("east", "west")]}, TRUSTED)
    picks = [rendezvous(node, ident(f"user-{i}"), 1) for i in range(2000)]
    assert 0.45 < picks.count(0) / 2000 < 0.55


def test_identical_entries_still_split_the_identifiers():
    picks = [rendezvous(lb(keys=["sk-same-0123456789"] * 2), ident(f"user-{i}"), 1) for i in range(2000)]
    assert 0.45 < picks.count(0) / 2000 < 0.55


def test_the_fingerprint_lives_on_the_config_not_in_a_global_cache():
    import gc
    import weakref

    from aigw.state import fingerprint

    node = lb()
    fingerprint.fingerprint(node)
    ref = weakref.ref(node)
    del node
    gc.collect()
    assert ref() is None


async def test_failures_remembered_by_the_pick_outlive_l1():
    sticky, _, clock = state()
    node = lb((1, 1, 1))
    first, _, _ = await sticky.pick(node, ident("gus"))
    await sticky.failed(node, ident("gus"), first)
    clock.now += 6  # past L1: the next pick reads the store
    second, how, failed = await sticky.pick(node, ident("gus"))
    assert how == REPICK and failed == {first} and second != first
    clock.now += 6  # a long LLM call: L1 forgot again before it failed
    await sticky.failed(node, ident("gus"), second, failed)
    third, _, _ = await sticky.pick(node, ident("gus"))
    assert third not in (first, second)


async def test_open_circuits_win_over_failures_when_together_they_cover_everything():
    sticky, _, _ = state()
    node = lb((1, 1))
    first, _, _ = await sticky.pick(node, ident("hal"))
    await sticky.failed(node, ident("hal"), first)
    other = 1 - first
    index, how, _ = await sticky.pick(node, ident("hal"), frozenset({other}))  # the other one is open
    assert index == first and how == REPICK


def test_requests_without_any_identifying_value_have_no_identifier():
    assert identifier(("metadata.user_id", "params.user"), {"metadata": {}, "params": {}}) is None
    assert identifier(("metadata.user_id", "params.user"), {"metadata": {}, "params": {"user": "u"}}) is not None
