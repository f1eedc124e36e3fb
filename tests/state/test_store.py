"""The store contract, the same for the embedded store and every Redis deployment."""

import asyncio

from aigw.state.store import PREFIX


async def eventually_gone(store, key, within_s=3.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + within_s
    while await store.get(key) is not None:
        assert loop.time() < end, f"{key} did not expire"
        await asyncio.sleep(0.02)


async def test_set_get_delete(any_store):
    key = PREFIX + "t:{a}"
    assert await any_store.get(key) is None
    assert await any_store.set(key, b"v1", 60)
    assert await any_store.get(key) == b"v1"
    assert await any_store.set(key, b"v2", 60)
    assert await any_store.get(key) == b"v2"
    await any_store.delete(key)
    assert await any_store.get(key) is None


async def test_set_if_absent_only_the_first_wins(any_store):
    key = PREFIX + "t:{nx}"
    results = await asyncio.gather(*(any_store.set(key, str(i).encode(), 60, only_if_absent=True) for i in range(8)))
    assert results.count(True) == 1
    winner = results.index(True)
    assert await any_store.get(key) == str(winner).encode()


async def test_values_expire(any_store):
    key = PREFIX + "t:{ttl}"
    await any_store.set(key, b"v", 0.15)
    assert await any_store.get(key) == b"v"
    await eventually_gone(any_store, key)
    assert await any_store.set(key, b"again", 60, only_if_absent=True)  # an expired key is absent


async def test_counters_count_and_expire_with_their_first_ttl(any_store):
    key = PREFIX + "t:{n}"
    assert [await any_store.incr(key, 0.3) for _ in range(3)] == [1, 2, 3]
    await eventually_gone(any_store, key)
    assert await any_store.incr(key, 60) == 1


async def test_keys_in_many_slots(any_store):
    keys = [f"{PREFIX}t:{{{i}}}" for i in range(50)]  # spread over the cluster's three masters
    for i, key in enumerate(keys):
        await any_store.set(key, str(i).encode(), 60)
    assert [await any_store.get(k) for k in keys] == [str(i).encode() for i in range(50)]


async def test_the_embedded_store_is_bounded_in_bytes_and_keeps_what_is_used():
    from aigw.state.memory import MemoryStore

    store = MemoryStore(lambda: 0.0, max_bytes=10_000)
    await store.set("sticky", b"1", 60)
    for i in range(50):
        await store.set(f"answer-{i}", b"x" * 1000, 60)
        assert await store.get("sticky") == b"1"  # used all along: never the one evicted
    assert store._bytes <= 10_000 and await store.get("answer-0") is None and await store.get("answer-49")
    assert await store.set("huge", b"x" * 20_000, 60) and await store.get("huge") is None  # too big: not kept
    assert await store.get("sticky") == b"1"
