"""Circuit-breaker state: when circuits open and close, shared through the store or in process."""

import pytest

from aigw.config.parse import parse_config
from aigw.state.breaker import RECHECK_S, BreakerState
from aigw.state.memory import MemoryStore
from aigw.state.store import StoreUnavailable
from tests.state.conftest import redis_store

TRUSTED = frozenset()


class Clock:
    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def node(cb, n=2):
    return parse_config({"strategy": {"mode": "fallback"}, "cb_config": cb,
                         "targets": [{"provider": "openai", "api_key": f"sk-t{i}-0123456789"} for i in range(n)]},
                        TRUSTED)


COUNT = {"failure_threshold": 3, "cooldown_interval": 30_000}


class CountingStore(MemoryStore):
    def __init__(self, clock):
        super().__init__(clock)
        self.gets = 0

    async def get(self, key):
        self.gets += 1
        return await super().get(key)


class DownStore:
    async def get(self, key):
        raise StoreUnavailable("down")

    async def set(self, key, value, ttl_s, *, only_if_absent=False):
        raise StoreUnavailable("down")

    async def incr(self, key, ttl_s):
        raise StoreUnavailable("down")


def breakers(store=None, clock=None):
    clock = clock or Clock()
    store = store if store is not None else MemoryStore(clock)
    return BreakerState(lambda: store, clock), clock


async def test_the_threshold_of_failures_opens_the_circuit_for_the_cooldown():
    state, clock = breakers()
    n = node(COUNT)
    assert [await state.record(n, 0, 503) for _ in range(3)] == [False, False, True]
    assert await state.open_children(n) == {0}
    clock.now += 29.9
    assert await state.open_children(n) == {0}
    clock.now += 0.2
    assert await state.open_children(n) == frozenset()  # closed after the cooldown


async def test_successes_and_other_statuses_do_not_count():
    state, _ = breakers()
    n = node({**COUNT, "failure_status_codes": [503]})
    for status in (200, 500, 429, 200, 500, 503, 503):
        await state.record(n, 0, status)
    assert await state.open_children(n) == frozenset()  # two 503s: under the threshold of three
    await state.record(n, 1, 503)
    assert await state.open_children(n) == frozenset()  # each child counts for itself


async def test_the_failure_share_opens_once_the_window_has_enough_requests():
    state, _ = breakers()
    n = node({"failure_threshold_percentage": 50, "minimum_requests": 4, "cooldown_interval": 30_000})
    assert await state.record(n, 0, 500) is False  # 1 of 1 failed, but only one request so far
    assert await state.record(n, 0, 200) is False
    assert await state.record(n, 0, 200) is False
    assert await state.record(n, 0, 500) is True  # 2 of 4: 50%
    assert await state.open_children(n) == {0}


async def test_failures_are_counted_per_window_of_the_cooldown_length():
    state, clock = breakers()
    n = node(COUNT)
    clock.now = 30 * 1000  # at the start of a window
    await state.record(n, 0, 503)
    await state.record(n, 0, 503)
    clock.now += 30  # the next window: counts start again
    assert await state.record(n, 0, 503) is False


async def test_instances_sharing_a_store_agree_within_a_second():
    clock = Clock()
    store = CountingStore(clock)
    a, _ = breakers(store, clock)
    b, _ = breakers(store, clock)
    n = node(COUNT)
    assert await b.open_children(n) == frozenset()
    for _ in range(3):
        await a.record(n, 0, 502)
    assert await a.open_children(n) == {0}
    gets = store.gets
    assert await b.open_children(n) == frozenset()  # b checked less than a second ago
    assert store.gets == gets  # ...and did not ask the store again
    clock.now += RECHECK_S
    assert await b.open_children(n) == {0}


async def test_without_a_reachable_store_each_instance_counts_for_itself():
    state, _ = breakers(DownStore())
    n = node(COUNT)
    for _ in range(3):
        await state.record(n, 1, 500)
    assert await state.open_children(n) == {1}


@pytest.mark.parametrize("cluster", [False, True])
async def test_on_redis_one_instance_opening_is_seen_by_another(request, cluster):
    server = request.getfixturevalue("redis_cluster" if cluster else "redis_server")
    clock = Clock()
    stores = [redis_store(server.url, cluster=cluster) for _ in range(2)]
    for s in stores:
        await s.connect()
    a, b = (BreakerState(lambda s=s: s, clock) for s in stores)
    n = node(COUNT)
    for _ in range(3):
        await a.record(n, 0, 503)
    assert await b.open_children(n) == {0}
    for s in stores:
        await s.close()


async def test_cached_and_skipped_answers_do_not_count():
    from aigw.context import AttemptSource
    from aigw.state.breaker import BreakerRequest

    state, _ = breakers()
    view = BreakerRequest(state, lambda target: None)
    n = node(COUNT)

    class Answer:
        def __init__(self, status, source):
            self.status, self.source = status, source

    for source in (AttemptSource.CACHE, AttemptSource.SKIPPED, AttemptSource.UNCALLABLE):
        for _ in range(3):
            await view.record(n, 0, Answer(503, source))
    assert await state.open_children(n) == frozenset()
    for _ in range(3):
        await view.record(n, 0, Answer(503, AttemptSource.PROVIDER))
    assert await state.open_children(n) == {0}
