"""The stdlib transport's connection slots, with stand-in connections (strings)."""

import asyncio

import pytest

from aigw.upstream.pool import Pool
from aigw.upstream.pool_stats import PoolStats
from aigw.upstream.transport import TransportError


def make_pool(limit=10, per_key=2, dead=()):
    closed: list[str] = []
    return Pool(limit, per_key, alive=lambda c: c not in dead, close=closed.append), closed


async def test_the_per_key_bound_makes_that_key_wait_but_not_the_others():
    pool, _ = make_pool(per_key=2)
    assert await pool.acquire("a", 1) is None and await pool.acquire("a", 1) is None  # two new slots
    waiting = asyncio.create_task(pool.acquire("a", 1))
    await asyncio.sleep(0)
    assert await pool.acquire("b", 1) is None  # another host gets through at once
    assert pool.stats() == PoolStats(in_use=3, limit=10, busiest_host_in_use=2, per_host_limit=2, waiting=1)
    pool.release("a", "a1", True)  # handed straight to the waiter
    assert await waiting == "a1"
    assert pool.stats().waiting == 0


async def test_waiting_longer_than_the_timeout_is_pool_exhausted():
    pool, _ = make_pool(per_key=1)
    await pool.acquire("a", 1)
    with pytest.raises(TransportError, match="pool exhausted"):
        await pool.acquire("a", 0.05)
    assert pool.stats().waiting == 0


async def test_the_total_bound_closes_an_idle_connection_of_another_key_rather_than_wait():
    pool, closed = make_pool(limit=2, per_key=2)
    assert await pool.acquire("a", 1) is None
    pool.release("a", "a1", True)  # idle now, still holding a slot
    assert await pool.acquire("b", 1) is None
    assert await pool.acquire("b", 1) is None  # the total bound is reached: a1 makes room
    assert closed == ["a1"]
    with pytest.raises(TransportError):
        await pool.acquire("c", 0.05)


async def test_idle_connections_are_reused_most_recent_first_and_dead_ones_dropped():
    pool, closed = make_pool(per_key=3, dead={"a2"})
    for _ in range(3):
        await pool.acquire("a", 1)
    for conn in ("a1", "a3", "a2"):
        pool.release("a", conn, True)
    assert await pool.acquire("a", 1) == "a3"  # a2, the most recent, is dead: closed, its slot freed
    assert closed == ["a2"]
    assert await pool.acquire("a", 1) == "a1"
    assert await pool.acquire("a", 1) is None  # a new one in a2's place
    assert pool.stats().in_use == 3


async def test_a_slot_granted_to_a_waiter_that_gave_up_is_passed_on():
    pool, _ = make_pool(per_key=1)
    await pool.acquire("a", 1)
    waiting = asyncio.create_task(pool.acquire("a", 1))
    await asyncio.sleep(0)
    pool.release("a", "a1", True)  # granted to the waiter...
    waiting.cancel()  # ...which is cancelled before it could run
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert pool.stats().in_use == 0
    assert await pool.acquire("a", 1) == "a1"


async def test_a_cancelled_waiter_leaves_no_trace():
    pool, _ = make_pool(per_key=1)
    await pool.acquire("a", 1)
    waiting = asyncio.create_task(pool.acquire("a", 1))
    await asyncio.sleep(0)
    waiting.cancel()
    pool.release("a", None, False)  # dispatched while the cancelled waiter is still queued
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert pool.stats() == PoolStats(in_use=0, limit=10, busiest_host_in_use=0, per_host_limit=1, waiting=0)
